# A group-commit worker told to stop (SIGTERM: a smart or fast server
# shutdown, pg_terminate_backend) first applies the writes queued before the
# signal, for at most child_txn.drain_timeout, and then exits.  Writes it
# cannot apply in that time (their table stays locked) are reported in the
# log; outside a shutdown its successor applies them.  A second SIGTERM, or a
# batch that outlasts the timeout, ends it at once.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(time sleep);

my $node = PostgreSQL::Test::Cluster->new('gc_stop');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'child_txn'");
$node->append_conf('postgresql.conf', "max_worker_processes = 16");
$node->append_conf('postgresql.conf', "max_prepared_transactions = 2");
# Writes queued without waiting stay queued until the worker is stopped.
$node->append_conf('postgresql.conf', "child_txn.nowait_batch_delay = '10s'");
$node->append_conf('postgresql.conf', "child_txn.drain_timeout = '2s'");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION child_txn');
$node->safe_psql('postgres', 'CREATE TABLE a (i int); CREATE TABLE b (i int)');

sub count_of
{
	my ($table) = @_;
	return $node->safe_psql('postgres', "SELECT count(*) FROM $table");
}

sub queued
{
	return $node->safe_psql('postgres',
		"SELECT coalesce(sum(queued), 0) FROM child_txn.group_commit_stats");
}

# The worker, once it is connected (it is started by the first append); ''
# if none comes.
sub gc_worker_pid
{
	my $pid = '';
	for (my $i = 0; $i < 200 && $pid eq ''; $i++)
	{
		$pid = $node->safe_psql('postgres',
			"SELECT pid FROM pg_stat_activity WHERE backend_type = 'child_txn group commit'");
		sleep(0.05) if $pid eq '';
	}
	return $pid;
}

# Queue n writes without waiting, and see that the worker runs: a worker
# told to stop before it is connected exits at once.
sub append_nowait
{
	my ($table, $n) = @_;
	$node->safe_psql('postgres',
		"SELECT child_txn.append('$table', ROW(i)::$table, false) FROM generate_series(1, $n) i");
	isnt(gc_worker_pid(), '', "the worker runs for $n write(s) to $table");
	return;
}

# 1. Fast shutdown with writes gathering: they are applied before the
#    worker exits, and the log says so.
append_nowait('a', 40);
is(queued(), '40', 'fast: forty writes are queued, gathering');
my $log_offset = -s $node->logfile;
$node->stop('fast');
my $log = slurp_file($node->logfile, $log_offset);
like($log, qr/group-commit worker of database \d+ applied 40 write\(s\) after it was asked to stop/,
	'fast: the worker applied the forty writes before it exited');
unlike($log, qr/not yet applied/, 'fast: and left nothing');
$node->start;
is(count_of('a'), '40', 'fast: the forty rows are there after the restart');

# 2. Smart shutdown (no session left): the same.
append_nowait('a', 10);
is(queued(), '10', 'smart: ten writes are queued');
$log_offset = -s $node->logfile;
$node->stop('smart');
$log = slurp_file($node->logfile, $log_offset);
unlike($log, qr/not yet applied/, 'smart: the worker left nothing');
$node->start;
is(count_of('a'), '50', 'smart: the ten rows are there after the restart');

# 3. Fast shutdown while a prepared transaction locks table b: the writes
#    to a are applied; those to b are given up after drain_timeout (2 s),
#    which bounds the shutdown, and reported.
$node->safe_psql('postgres',
	"BEGIN; LOCK b IN EXCLUSIVE MODE; PREPARE TRANSACTION 'holds_b'");
append_nowait('a', 7);
append_nowait('b', 3);
$log_offset = -s $node->logfile;
my $t0 = time;
$node->stop('fast');
my $took = time - $t0;
$log = slurp_file($node->logfile, $log_offset);
like($log, qr/applied 7 write\(s\) after it was asked to stop/,
	'locked: the writes to the other table were applied');
like($log, qr/WARNING:  group-commit worker of database \d+ stopped with 3 write\(s\) not yet applied/,
	'locked: the three writes to the locked table are reported as not applied');
ok($took >= 1.5 && $took < 8,
	sprintf('locked: the shutdown waited for about drain_timeout (%.1f s)', $took));
$node->start;
$node->safe_psql('postgres', "ROLLBACK PREPARED 'holds_b'");
is(count_of('a'), '57', 'locked: the rows of a are there');
is(count_of('b'), '0', 'locked: those of b are not (lost with the queue, as logged)');

# 4. pg_terminate_backend while a session locks b: the worker applies the
#    writes to a, waits for b up to drain_timeout, exits with a warning,
#    and its successor applies b's writes once the lock is gone.
my $locker = $node->background_psql('postgres');
$locker->query_safe('BEGIN; LOCK b IN EXCLUSIVE MODE');
append_nowait('b', 4);
append_nowait('a', 5);
my $pid = gc_worker_pid();
isnt($pid, '', 'terminate: the worker runs');
$log_offset = -s $node->logfile;
$t0 = time;
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid"),
	'terminate: the worker exits');
$took = time - $t0;
ok($took >= 1.5 && $took < 8,
	sprintf('terminate: after about drain_timeout (%.1f s)', $took));
is(count_of('a'), '62', 'terminate: the writes to a were applied');
like(slurp_file($node->logfile, $log_offset),
	qr/stopped with 4 write\(s\) not yet applied/,
	'terminate: the four writes to b are reported');
$locker->query_safe('COMMIT');
$locker->quit;
$node->safe_psql('postgres', 'SELECT child_txn.append(\'b\', ROW(0)::b)');
is(count_of('b'), '5', 'terminate: the successor applied them once b was free');

# 4b. The same, but a session then appends to a and waits: the drain, left
#     with nothing but b's deferred writes, ends at once for it, and the
#     successor applies its write and, once b is free, those to b.
$locker = $node->background_psql('postgres');
$locker->query_safe('BEGIN; LOCK b IN EXCLUSIVE MODE');
append_nowait('b', 2);
ok($node->poll_query_until('postgres',
	"SELECT deferrals > 0 FROM child_txn.group_commit_stats WHERE database = 'postgres' "
	  . "AND worker_pid = " . gc_worker_pid()),
	'awaited: the writes to b are deferred');
$pid = gc_worker_pid();
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
$t0 = time;
$node->safe_psql('postgres', "SELECT child_txn.append('a', ROW(0)::a)");
$took = time - $t0;
ok($took < 1.5,
	sprintf('awaited: a waiting append is not held up for the drain (%.1f s)', $took));
is(count_of('a'), '63', 'awaited: its row is there');
$locker->query_safe('COMMIT');
$locker->quit;
$node->safe_psql('postgres', "SELECT child_txn.append('b', ROW(0)::b)");
is(count_of('b'), '8', 'awaited: the successor applied the writes to b');

# 5. A second SIGTERM ends the drain at once: the batch in progress (a
#    trigger sleeps 3 s in it) is rolled back and taken again by the next
#    worker; the waiting caller gets success and the row is there once.
$node->safe_psql('postgres', q{
	CREATE TABLE slow (v int);
	CREATE FUNCTION slow_trg() RETURNS trigger LANGUAGE plpgsql
	  AS $$ BEGIN PERFORM pg_sleep(3); RETURN NEW; END $$;
	CREATE TRIGGER slow_bi BEFORE INSERT ON slow
	  FOR EACH ROW EXECUTE FUNCTION slow_trg();
});
$node->append_conf('postgresql.conf', "child_txn.drain_timeout = '10s'");
$node->reload;
ok($node->poll_query_until('postgres',
	"SELECT current_setting('child_txn.drain_timeout') = '10s'"),
	'drain_timeout = 10s is in effect');

sub start_slow_append
{
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[
			'psql', '-X', '-v', 'ON_ERROR_STOP=1', '-d',
			$node->connstr('postgres'), '-c',
			"SELECT child_txn.append('slow', ROW(1)::slow)"
		],
		'>', \$out, '2>', \$err);
	ok( $node->poll_query_until(
			'postgres',
			"SELECT count(*) = 1 FROM pg_stat_activity "
			  . "WHERE backend_type = 'child_txn group commit' AND wait_event = 'PgSleep'"),
		'the worker is inside the slow batch');
	return ($h, \$err);
}

my ($h, $err) = start_slow_append();
$pid = gc_worker_pid();
$t0 = time;
kill 'TERM', $pid;
sleep(0.3);
kill 'TERM', $pid;
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid"),
	'second SIGTERM: the worker exits');
ok(time - $t0 < 2.5,
	sprintf('second SIGTERM: at once, not after the batch (%.1f s)', time - $t0));
$h->finish;
is($h->result(0), 0, 'second SIGTERM: the caller got success') or diag($$err);
is(count_of('slow'), '1', 'second SIGTERM: the row is there, once');

# 6. One SIGTERM: the worker finishes the slow batch itself, then exits.
($h, $err) = start_slow_append();
$pid = gc_worker_pid();
$log_offset = -s $node->logfile;
kill 'TERM', $pid;
$h->finish;
is($h->result(0), 0, 'one SIGTERM: the caller got success') or diag($$err);
is(count_of('slow'), '2', 'one SIGTERM: the row is there, once');
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid"),
	'one SIGTERM: the worker exits after its batch');
like(slurp_file($node->logfile, $log_offset),
	qr/\[$pid\] LOG:  group-commit worker of database \d+ applied 1 write\(s\) after it was asked to stop/,
	'one SIGTERM: the same worker committed the batch');

# 7. A batch that outlasts drain_timeout is cut short at the timeout: with
#    1 s and a trigger that sleeps 3 s, the worker exits about 1 s after
#    the batch began; the next worker applies the write.
$node->append_conf('postgresql.conf', "child_txn.drain_timeout = '1s'");
$node->reload;
ok($node->poll_query_until('postgres',
	"SELECT current_setting('child_txn.drain_timeout') = '1s'"),
	'drain_timeout = 1s is in effect');
sleep(0.5);
($h, $err) = start_slow_append();
$pid = gc_worker_pid();
$t0 = time;
kill 'TERM', $pid;
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid"),
	'timeout: the worker exits');
ok(time - $t0 < 2.5,
	sprintf('timeout: before its batch ends (%.1f s)', time - $t0));
$h->finish;
is($h->result(0), 0, 'timeout: the caller got success') or diag($$err);
is(count_of('slow'), '3', 'timeout: the row is there, once');

unlike(slurp_file($node->logfile), qr/terminated by signal|server process .* was terminated/,
	'no process crashed');
$node->stop;
done_testing();
