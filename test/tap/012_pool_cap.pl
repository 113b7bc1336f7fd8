# child_txn.max_workers_per_pool: one (database, login role) pool cannot take
# more workers than that; its next child waits for one of them (bounded by
# child_txn.worker_wait_timeout), while other roles still get workers.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('pool_cap');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'child_txn'");
$node->append_conf('postgresql.conf', "child_txn.max_workers = 4");
$node->append_conf('postgresql.conf', "child_txn.max_workers_per_pool = 2");
$node->append_conf('postgresql.conf', "child_txn.worker_idle_timeout = 0");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION child_txn;
	CREATE ROLE app1 LOGIN;
	CREATE ROLE app2 LOGIN;
	CREATE TABLE t (a int);
	GRANT INSERT ON t TO app1;
});


# app1 holds two open children: its pool is at the cap.
my $holder = $node->background_psql('postgres', extra_params => ['-U', 'app1']);
$holder->query_safe(q{
	BEGIN;
	SELECT child_txn.begin() AS h1 \gset
	SELECT child_txn.exec(:h1, 'SELECT 1');
	SELECT child_txn.begin() AS h2 \gset
	SELECT child_txn.exec(:h2, 'SELECT 1');
});
is($node->safe_psql('postgres',
	"SELECT count(*) FROM child_txn.children WHERE usename = 'app1'"),
	'2', 'app1 has two children open');

# Another session of app1 waits, then fails with 53000 naming the cap.
my ($ret, $stdout, $stderr) = $node->psql('postgres',
	"SET child_txn.worker_wait_timeout = '300ms'; SELECT child_txn.run('SELECT 1')",
	extra_params => ['-U', 'app1']);
isnt($ret, 0, "a third child of app1 does not get a worker");
like($stderr, qr/the 2 child transaction workers allowed per database and role are busy/,
	'the error names the per-pool cap');

# app2 is not held up by app1's cap: free slots remain.
is($node->safe_psql('postgres', "SELECT child_txn.run('SELECT 1')",
	extra_params => ['-U', 'app2']), '1', 'another role still gets a worker');

# A waiting child of app1 gets a worker once one of app1's is free.
my $waiter = $node->background_psql('postgres', extra_params => ['-U', 'app1']);
$waiter->query_until(qr/started/,
	"\\echo started\nSET child_txn.worker_wait_timeout = '5min';\n"
	  . "SELECT child_txn.run('INSERT INTO t VALUES (1)') AS waited;\n");
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE usename = 'app1' "
	  . "AND query LIKE '%AS waited%' AND wait_event_type = 'Extension'"),
	'the next child of app1 waits');
is($node->safe_psql('postgres', 'SELECT count(*) FROM t'), '0', 'nothing written yet');
$holder->query_safe(q{SELECT child_txn.commit(:h1)});
ok($node->poll_query_until('postgres', 'SELECT count(*) = 1 FROM t'),
	'and runs once app1 ended a child');

# Without the cap, app1 can take a third worker while it holds two.
$node->safe_psql('postgres', 'ALTER SYSTEM SET child_txn.max_workers_per_pool = 0');
$node->reload;
ok($node->poll_query_until('postgres', 'SHOW child_txn.max_workers_per_pool', '0'),
	'the cap is lifted');
$holder->query_safe(q{
	SELECT child_txn.begin() AS h3 \gset
	SELECT child_txn.exec(:h3, 'SELECT 1');
});
is($node->safe_psql('postgres', "SELECT child_txn.run('SELECT 1')",
	extra_params => ['-U', 'app1']), '1', 'child_txn.max_workers_per_pool = 0: no cap');
$holder->query_safe(q{SELECT child_txn.commit(:h2); SELECT child_txn.commit(:h3); COMMIT;});
$holder->quit;
$waiter->quit;

$node->stop;
done_testing();
