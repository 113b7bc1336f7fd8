# Loading and resource errors: the extension refuses to load outside
# shared_preload_libraries, and a missing worker slot is a clear error.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# Not preloaded: loading the library (directly or through CREATE EXTENSION)
# fails with a hint.
my $plain = PostgreSQL::Test::Cluster->new('not_preloaded');
$plain->init;
$plain->start;
my ($ret, $out, $err) = $plain->psql('postgres', "LOAD 'child_txn'");
isnt($ret, 0, 'LOAD fails without shared_preload_libraries');
like($err, qr/child_txn must be loaded via shared_preload_libraries/,
	'error says how it must be loaded');
like($err, qr/HINT:  Add child_txn to shared_preload_libraries/, 'with a hint');
($ret, $out, $err) = $plain->psql('postgres', 'CREATE EXTENSION child_txn');
isnt($ret, 0, 'CREATE EXTENSION fails without shared_preload_libraries');
like($err, qr/must be loaded via shared_preload_libraries/, 'same error');
$plain->stop;

# No background worker slot: an error with SQLSTATE 53000 (insufficient_resources) and a hint naming
# max_worker_processes, not a hang and not a lost write reported as done.
my $node = PostgreSQL::Test::Cluster->new('no_workers');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'child_txn'");
$node->append_conf('postgresql.conf', "max_worker_processes = 0");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION child_txn');
$node->safe_psql('postgres', 'CREATE TABLE t (a int)');
($ret, $out, $err) = $node->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT child_txn.run('INSERT INTO t VALUES (1)')");
isnt($ret, 0, 'run fails without a worker slot');
like($err, qr/ERROR:  53000: could not start a child transaction: no background worker slot is free/,
	'insufficient resources error');
like($err, qr/HINT:  Raise max_worker_processes \(currently 0\)/,
	'hint names max_worker_processes');
is($node->safe_psql('postgres', 'SELECT count(*) FROM t'), '0', 'nothing written');
is($node->safe_psql('postgres', 'SELECT count(*) FROM child_txn.children'),
	'0', 'the slot was given back');
$node->stop;

# child_txn.max_workers bounds the pool: a child that finds every worker
# busy waits up to child_txn.worker_wait_timeout, then fails clearly.
$node = PostgreSQL::Test::Cluster->new('one_child');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'child_txn'");
$node->append_conf('postgresql.conf', "child_txn.max_workers = 1");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION child_txn');
($ret, $out, $err) = $node->psql('postgres',
	"SET child_txn.worker_wait_timeout = '300ms'; "
	  . "SELECT child_txn.run(\$\$SELECT child_txn.run('SELECT 1')\$\$)");
isnt($ret, 0, 'a second open child fails when max_workers = 1');
like($err, qr/all 1 child transaction workers are busy/, 'with a clear message');
like($err, qr/child_txn.max_workers/, 'naming the setting');
unlike($err, qr/still open|leak/, 'and the failed start leaves nothing behind');
$node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'child_txn worker' "
	  . "AND state IS DISTINCT FROM 'idle'")
  or die 'the pool did not become idle';
($ret, $out, $err) = $node->psql('postgres',
	"BEGIN; SET child_txn.worker_wait_timeout = '300ms'; "
	  . "SELECT child_txn.begin(); SAVEPOINT s; "
	  . "SELECT child_txn.begin(); ROLLBACK TO s; COMMIT;",
	on_error_stop => 0);
like($err, qr/all 1 child transaction workers are busy/,
	'inside a transaction block, the second begin() waits and fails');
like($err, qr/child transaction \d+ was still open/,
	'the first child is rolled back with a warning at commit');
unlike($err, qr/leak|child transaction \d+ was still open.*\n.*child transaction \d+ was still open/s,
	'only the first child is reported, no segment leaks');
is($node->safe_psql('postgres', "SELECT child_txn.run('SELECT 1')"), '1',
	'one child still works');

# child_txn.spin_wait only shortens waits: with polling off, and with long
# polls, children and group commit work, and a cancel still ends the wait
# for a child at once.
$node->safe_psql('postgres', 'CREATE TABLE g (a int)');
for my $spin (0, 10000)
{
	$node->safe_psql('postgres',
		"ALTER SYSTEM SET child_txn.spin_wait = $spin; SELECT pg_reload_conf()");
	$node->poll_query_until('postgres',
		"SELECT current_setting('child_txn.spin_wait') = '$spin'")
	  or die "spin_wait = $spin was not loaded";
	is( $node->safe_psql(
			'postgres',
			"SELECT child_txn.run('INSERT INTO g VALUES ($spin)'); "
			  . "SELECT child_txn.append('g', ROW($spin + 1)::g); "
			  . "SELECT count(*) FROM g WHERE a IN ($spin, $spin + 1)"),
		"1\n\n2",
		"spin_wait = $spin: a child and a group-commit write are durable");
	my $t0 = time();
	($ret, $out, $err) = $node->psql('postgres',
		"SET statement_timeout = '300ms'; "
		  . "SELECT child_txn.run('SELECT pg_sleep(60)')");
	like($err, qr/canceling statement due to statement timeout/,
		"spin_wait = $spin: statement_timeout cancels the wait for a child");
	cmp_ok(time() - $t0, '<', 30, "spin_wait = $spin: and does so promptly");
	is($node->safe_psql('postgres', "SELECT child_txn.run('SELECT 1')"),
		'1', "spin_wait = $spin: the worker serves the next child");
}
$node->stop;

done_testing();
