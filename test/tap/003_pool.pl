# The worker pool across processes: idle workers exit after
# child_txn.worker_idle_timeout, an idle worker of another database is
# retired to make room, and no exiting worker leaves a lock behind.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('pool');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'child_txn'");
$node->append_conf('postgresql.conf', "child_txn.max_workers = 1");
$node->append_conf('postgresql.conf', "child_txn.worker_idle_timeout = '300ms'");
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE other');
for my $db ('postgres', 'other')
{
	$node->safe_psql($db, 'CREATE EXTENSION child_txn');
	$node->safe_psql($db, 'CREATE TABLE t (a int)');
}

my $workers = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'child_txn worker'";
# Execution locks whose holder is gone would be leaked lock-table entries.
my $stale = "SELECT count(*) FROM pg_locks l WHERE locktype = 'userlock' AND classid = 17236 "
  . "AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = l.pid)";

is($node->safe_psql('postgres', "SELECT child_txn.run('INSERT INTO t VALUES (1)')"),
	'1', 'a child runs');
is($node->safe_psql('postgres', $workers), '1', 'its worker stays in the pool');
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'child_txn worker'", 't'),
	'the idle worker exits after worker_idle_timeout');
is($node->safe_psql('postgres', $stale), '0', 'and leaves no lock behind');
is($node->safe_psql('postgres', "SELECT child_txn.run('INSERT INTO t VALUES (2)')"),
	'1', 'a new worker serves the next child');

# The only slot holds an idle worker of database postgres; a child in
# database other retires it and gets a worker of its own.
$node->safe_psql('postgres', "ALTER SYSTEM SET child_txn.worker_idle_timeout = 0");
$node->reload;
is($node->safe_psql('postgres', "SELECT child_txn.run('INSERT INTO t VALUES (3)')"),
	'1', 'a worker for postgres');
is($node->safe_psql('other', "SELECT child_txn.run('INSERT INTO t VALUES (4)')"),
	'1', 'a child in another database retires it and runs');
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'child_txn worker' "
		  . "AND datname = 'other'", 't'),
	'one worker, of database other');
is($node->safe_psql('postgres', $stale), '0', 'no lock left behind by the retired worker');
is($node->safe_psql('postgres', "SELECT child_txn.run('INSERT INTO t VALUES (5)')"),
	'1', 'and back again');
is($node->safe_psql('postgres', 'SELECT string_agg(a::text, \',\' ORDER BY a) FROM t'),
	'1,2,3,5', 'every child committed in postgres');
is($node->safe_psql('other', 'SELECT string_agg(a::text, \',\' ORDER BY a) FROM t'),
	'4', 'and in other');

# A session reuses the shared memory segments of its children: many
# children in a row leave only a few segments behind (counted from inside
# the session, while it still holds them).
my $count = "SELECT count(*) FROM pg_ls_dir('/dev/shm') f WHERE f LIKE 'PostgreSQL.%'";
my $grown = $node->safe_psql('postgres',
	"CREATE TEMP TABLE n AS $count; "
	  . "DO \$\$ BEGIN FOR i IN 1 .. 300 LOOP PERFORM child_txn.run('SELECT 1'); END LOOP; END \$\$; "
	  . "SELECT ($count) - (SELECT * FROM n)");
ok($grown <= 6, "300 children in one session leave few segments (grew by $grown)");

# SQL that waits until no child worker is left (one was just terminated).
my $until_no_worker = q{
DO $$ BEGIN
  FOR i IN 1 .. 3000 LOOP
    PERFORM pg_stat_clear_snapshot();
    EXIT WHEN NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'child_txn worker');
    PERFORM pg_sleep(0.01);
  END LOOP;
END $$;
};

# A worker taken from the pool is woken by its child's first request.  If
# it dies before that, a first request too large for the queue must fail
# promptly, not wait for a reader that never comes.
$node->safe_psql('postgres', "SELECT child_txn.run('SELECT 1')");
my ($ret, $out, $err) = $node->psql('postgres', q{
SET statement_timeout = '60s';
BEGIN;
SELECT child_txn.begin() AS h \gset
SELECT pg_terminate_backend(worker_pid) FROM child_txn.children WHERE handle = :h;
} . $until_no_worker . q{
SELECT child_txn.exec(:h, 'SELECT 1 /* ' || repeat('x', 100000) || ' */');
});
like($err, qr/child transaction \d+ ended abnormally/,
	'a large first request to a worker that died unwoken fails');
unlike($err, qr/statement timeout/, 'at once, not at statement_timeout');

# The same, with a small first request, after another worker has taken the
# dead worker's slot: the parent must not wait on the new worker's
# execution lock (the lock tag carries the slot's generation).
$node->safe_psql('postgres',
	"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'child_txn worker'");
$node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'child_txn worker'");
($ret, $out, $err) = $node->psql('postgres', q{
SET statement_timeout = '60s';
SELECT child_txn.run('SELECT 1');
BEGIN;
SELECT child_txn.begin() AS h \gset
SELECT pg_terminate_backend(worker_pid) FROM child_txn.children WHERE handle = :h;
} . $until_no_worker . q{
SELECT child_txn.run('SELECT 1');
SELECT child_txn.exec(:h, 'SELECT 1');
});
like($err, qr/child transaction \d+ ended abnormally/,
	'a first request to a worker that died unwoken fails when its slot has a new worker');
unlike($err, qr/statement timeout/, 'at once, not at statement_timeout');

# Children talk to their parent in the database encoding, whatever the
# parent's client_encoding and whatever a previous child on the same worker
# did to its own (a SET LOCAL undone at its commit re-applies the parent's).
$node->safe_psql('postgres',
	"CREATE DATABASE utf8db ENCODING 'UTF8' LOCALE 'C' TEMPLATE template0");
$node->safe_psql('utf8db', 'CREATE EXTENSION child_txn');
my $enc = $node->safe_psql('utf8db', q{
SET client_encoding = 'LATIN1';
SELECT child_txn.run($$SET LOCAL client_encoding = 'UTF8'$$);
BEGIN;
SELECT child_txn.begin() AS h \gset
SELECT enc, c = chr(233), octet_length(c)
  FROM child_txn.query(:h, $$SELECT pg_client_encoding(), chr(233)$$) AS t(enc text, c text);
SELECT enc, c = chr(233), octet_length(c)
  FROM child_txn.query(:h, $$SELECT set_config('client_encoding', 'LATIN1', false),
                                   pg_client_encoding(), chr(233)$$)
       AS t(s text, enc text, c text);
SELECT child_txn.rollback(:h);
COMMIT;
});
is($enc, "0\nUTF8|t|2\nUTF8|t|2\n",
	'a child answers in the database encoding, also after setting client_encoding itself');

$node->stop;
done_testing();
