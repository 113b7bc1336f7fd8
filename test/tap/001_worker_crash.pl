# A child worker killed in the middle of a statement: the parent gets an
# error promptly instead of hanging, the server stays up (SIGTERM) or
# recovers (SIGKILL), and nothing the child did is committed.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(time sleep);

my $node = PostgreSQL::Test::Cluster->new('crash');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'child_txn'");
$node->append_conf('postgresql.conf', "max_worker_processes = 16");
$node->append_conf('postgresql.conf', "restart_after_crash = on");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION child_txn');
$node->safe_psql('postgres', 'CREATE TABLE t (id int, note text)');

# Start a parent whose child inserts a row and then sleeps; return the psql
# harness, its output buffers and the child worker's pid.
sub start_parent
{
	my ($note) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[
			'psql', '-X', '-v', 'ON_ERROR_STOP=1', '-d',
			$node->connstr('postgres'), '-c',
			"SELECT child_txn.run(\$\$INSERT INTO t VALUES (1, '$note'); SELECT pg_sleep(120)\$\$)"
		],
		'>', \$out, '2>', \$err);
	my $pid = '';
	for (my $i = 0; $i < 300 && $pid eq ''; $i++)
	{
		$pid = $node->safe_psql('postgres',
			"SELECT worker_pid FROM child_txn.children WHERE state = 'running' "
			  . "AND wait_event = 'PgSleep'");
		sleep(0.1) if $pid eq '';
	}
	return ($h, \$out, \$err, $pid);
}

# SIGTERM: the child is terminated like any backend; the parent gets the
# child's FATAL as an ordinary ERROR.
{
	my ($h, $out, $err, $pid) = start_parent('sigterm');
	isnt($pid, '', 'child worker is running a statement');
	my $t0 = time();
	kill 'TERM', $pid;
	$h->finish;
	my $elapsed = time() - $t0;
	ok($elapsed < 10, "parent answered ${elapsed}s after SIGTERM of its child");
	isnt($h->result(0), 0, 'parent statement failed');
	like($$err, qr/terminating background worker "child_txn worker" due to administrator command/,
		'parent reports the child was terminated');
	is($node->safe_psql('postgres', 'SELECT 1'), '1', 'server still up');
	is($node->safe_psql('postgres', "SELECT count(*) FROM t WHERE note = 'sigterm'"),
		'0', 'nothing of the terminated child is committed');
	is($node->safe_psql('postgres', 'SELECT count(*) FROM child_txn.children'),
		'0', 'no child left registered');
}

# SIGKILL: the postmaster restarts the cluster; the parent's connection goes
# too (as for any crashed backend), it does not hang.
{
	my ($h, $out, $err, $pid) = start_parent('sigkill');
	isnt($pid, '', 'child worker is running a statement');
	my $t0 = time();
	kill 'KILL', $pid;
	$h->finish;
	my $elapsed = time() - $t0;
	ok($elapsed < 30, "parent answered ${elapsed}s after SIGKILL of its child");
	isnt($h->result(0), 0, 'parent statement failed');
	$node->poll_query_until('postgres', 'SELECT 1', '1')
	  or die 'server did not come back';
	is($node->safe_psql('postgres', "SELECT count(*) FROM t WHERE note = 'sigkill'"),
		'0', 'nothing of the killed child is committed');
	is($node->safe_psql('postgres', "SELECT child_txn.run('INSERT INTO t VALUES (2, ''after'')')"),
		'1', 'children work again after the crash restart');
}

# The parent session dies while its child runs: the child is rolled back
# and goes away.
{
	my ($h, $out, $err, $pid) = start_parent('orphan');
	my $parent = $node->safe_psql('postgres',
		"SELECT parent_pid FROM child_txn.children WHERE worker_pid = $pid");
	$node->safe_psql('postgres', "SELECT pg_terminate_backend($parent)");
	$h->finish;
	ok($node->poll_query_until('postgres',
			"SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid"),
		'the orphaned child worker exits');
	is($node->safe_psql('postgres', "SELECT count(*) FROM t WHERE note = 'orphan'"),
		'0', 'nothing of the orphaned child is committed');
}

# Nothing crashed on its own along the way (the SIGKILL above is ours).
unlike(slurp_file($node->logfile), qr/terminated by signal (?:6|11)/,
	'no process crashed');

$node->stop;
done_testing();
