# The group-commit queue is bounded: when it is full, append() waits
# (interruptibly, or up to child_txn.queue_wait_timeout) and nothing is
# dropped.  Also: child_txn.max_batch_size, child_txn.nowait_batch_delay and
# child_txn.max_batch_delay.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

my $node = PostgreSQL::Test::Cluster->new('gc_queue');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'child_txn'");
$node->append_conf('postgresql.conf', "max_worker_processes = 16");
$node->append_conf('postgresql.conf', "child_txn.queue_size = 16");
# Until the test of this setting below: deferred writes may fill the queue,
# which is what the tests of a full queue use.
$node->append_conf('postgresql.conf', "child_txn.deferred_queue_share = 100");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION child_txn');
$node->safe_psql('postgres', 'CREATE TABLE q (i int)');

sub count_q { return $node->safe_psql('postgres', 'SELECT count(*) FROM q'); }

# Hold the table so that queued writes stay queued (deferred).
my $locker = $node->background_psql('postgres');
$locker->query_safe('BEGIN; LOCK q IN EXCLUSIVE MODE');

# Fill the queue with fire-and-forget writes.
$node->safe_psql('postgres',
	"SELECT child_txn.append('q', ROW(i)::q, false) FROM generate_series(1, 16) i");
is($node->safe_psql('postgres',
	"SELECT queued FROM child_txn.group_commit_stats WHERE database = 'postgres'"),
	'16', 'sixteen writes queued, table still locked');

# Full queue, bounded wait: an error after the timeout, the write not queued.
my ($ret, $stdout, $stderr) = $node->psql('postgres',
	"SET child_txn.queue_wait_timeout = '300ms'; SELECT child_txn.append('q', ROW(100)::q, false)");
isnt($ret, 0, 'append into a full queue fails after queue_wait_timeout');
like($stderr, qr/group-commit queue stayed full for 300 ms; the write was not queued/,
	'the error says the write was not queued');

# Full queue, no timeout: the wait is interruptible (statement_timeout here).
($ret, $stdout, $stderr) = $node->psql('postgres',
	"SET statement_timeout = '300ms'; SELECT child_txn.append('q', ROW(101)::q, false)");
like($stderr, qr/canceling statement due to statement timeout/,
	'a wait for queue space can be cancelled');

# A waiting appender goes on once there is room; nothing is dropped.
my $waiter = $node->background_psql('postgres');
$waiter->query_until(qr/started/,
	"\\echo started\nSELECT child_txn.append('q', ROW(17)::q, false);\n\\echo appended\n");
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE wait_event_type = 'Extension' "
	  . "AND query LIKE '%ROW(17)%'"),
	'the seventeenth append waits for room');
$locker->query_safe('COMMIT');
$waiter->query_safe('SELECT child_txn.flush()');
$waiter->quit;
$node->safe_psql('postgres', 'SELECT child_txn.flush()');
ok($node->poll_query_until('postgres', 'SELECT count(*) = 17 FROM q'),
	'all seventeen writes are in the table, none of the refused ones');
is($node->safe_psql('postgres', 'SELECT count(*) FROM q WHERE i >= 100'), '0',
	'refused writes were not written');

# A session whose own deferred writes fill the queue gets an error instead
# of waiting for room only it can make (it holds the lock they wait for).
$node->safe_psql('postgres', 'TRUNCATE q');
($ret, $stdout, $stderr) = $node->psql('postgres',
	"SET statement_timeout = '20s'; BEGIN; LOCK q IN EXCLUSIVE MODE; "
	  . "SELECT child_txn.append('q', ROW(i)::q, false) FROM generate_series(1, 17) i");
like($stderr, qr/cannot wait for room in the full group-commit queue: 16 write\(s\) of this transaction in it wait for a lock it holds/,
	'waiting for room held by our own deferred writes is an error, not a hang');
$node->safe_psql('postgres', 'SELECT child_txn.flush()');
ok($node->poll_query_until('postgres', 'SELECT count(*) = 16 FROM q'),
	'the sixteen writes queued before the error are applied once the lock is gone');

# ... but only when the room is really its own to make: a full queue of
# other sessions' writes is waited for (here until queue_wait_timeout).
$node->safe_psql('postgres', 'CREATE TABLE other5 (i int); CREATE TABLE t5 (i int); CREATE TABLE u5 (i int)');
$locker->query_safe('BEGIN; LOCK other5 IN EXCLUSIVE MODE');
$node->safe_psql('postgres',
	"SELECT child_txn.append('other5', ROW(i)::other5, false) FROM generate_series(1, 15) i");
($ret, $stdout, $stderr) = $node->psql('postgres',
	"SET child_txn.queue_wait_timeout = '1s'; BEGIN; LOCK t5 IN SHARE MODE; "
	  . "SELECT child_txn.append('t5', ROW(1)::t5, false); "
	  . "SELECT child_txn.append('u5', ROW(1)::u5, false)");
like($stderr, qr/group-commit queue stayed full for 1000 ms/,
	'a queue full of other sessions\' writes is waited for, not refused');
$locker->query_safe('COMMIT');
$node->safe_psql('postgres', 'SELECT child_txn.flush()');
ok($node->poll_query_until('postgres',
	"SELECT (SELECT count(*) FROM other5) = 15 AND (SELECT count(*) FROM t5) = 1"),
	'their writes and the earlier one to t5 are applied');

# A write deferred on another lock the transaction holds (the referenced
# table of a foreign key) counts as its own too.
$node->safe_psql('postgres',
	'CREATE TABLE parent5 (id int PRIMARY KEY); INSERT INTO parent5 VALUES (1); '
	  . 'CREATE TABLE child5 (pid int REFERENCES parent5)');
($ret, $stdout, $stderr) = $node->psql('postgres',
	"SET statement_timeout = '30s'; BEGIN; LOCK parent5 IN ACCESS EXCLUSIVE MODE; "
	  . "SELECT child_txn.append('child5', ROW(1)::child5, false) FROM generate_series(1, 17) i");
like($stderr, qr/cannot wait for room in the full group-commit queue: 16 write\(s\) of this transaction/,
	'writes deferred on a referenced table this transaction locked: an error, not a hang');
$node->safe_psql('postgres', 'SELECT child_txn.flush()');
ok($node->poll_query_until('postgres', 'SELECT count(*) = 16 FROM child5'),
	'the sixteen writes are applied once the lock is gone');

# Rows of a write that waited for a slot are freed when its session is
# terminated (a FATAL does not unwind): the queue's memory comes back.
$node->safe_psql('postgres', 'CREATE TABLE big (t text)');
my $big_row = "(SELECT ROW(string_agg(md5(g::text), ''))::big FROM generate_series(1, 95000) g)";
$locker->query_safe('BEGIN; LOCK q IN EXCLUSIVE MODE');
$node->safe_psql('postgres',
	"SELECT child_txn.append('q', ROW(i)::q, false) FROM generate_series(1, 16) i");
my @big_waiters;
for my $n (1 .. 2)
{
	my $s = $node->background_psql('postgres');
	$s->query_until(qr/started/,
		"\\echo started\nSELECT child_txn.append('big', $big_row, false);\n");
	push @big_waiters, $s;
}
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 2 FROM pg_stat_activity WHERE wait_event_type = 'Extension' "
	  . "AND query LIKE '%append(''big''%'"),
	'two 3 MB writes wait for a slot, their rows already in queue memory');
$node->safe_psql('postgres',
	"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
	  . "WHERE query LIKE '%append(''big''%' AND pid <> pg_backend_pid()");
# their psql may be gone already
for my $s (@big_waiters) { eval { $s->quit; }; }
$locker->query_safe('COMMIT');
$node->safe_psql('postgres', 'SELECT child_txn.flush()');
ok($node->poll_query_until('postgres', 'SELECT count(*) = 32 FROM q'),
	'the queue drained');
($ret, $stdout, $stderr) = $node->psql('postgres',
	"SET statement_timeout = '20s'; SELECT child_txn.append('big', $big_row)");
is($ret, 0, 'a 3 MB write fits again: terminated waiters left no rows behind')
  or diag($stderr);

# Failed fire-and-forget writes of an idle session keep one slot (its first
# failure, the one flush() reports), not one slot each.
$node->safe_psql('postgres', 'TRUNCATE q; CREATE TABLE qc (i int CHECK (i > 0))');
$node->safe_psql('postgres', q{CREATE FUNCTION try_flush() RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM child_txn.flush(); RETURN 'ok';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$});
my $failures0 = $node->safe_psql('postgres',
	"SELECT failures FROM child_txn.group_commit_stats WHERE database = 'postgres'");
$locker->query_safe('BEGIN; LOCK qc IN EXCLUSIVE MODE');
my $idle = $node->background_psql('postgres');
$idle->query_safe(
	"SELECT child_txn.append('qc', ROW(-i)::qc, false) FROM generate_series(1, 10) i");
$locker->query_safe('COMMIT');
ok($node->poll_query_until('postgres',
	"SELECT failures - $failures0 = 10 FROM child_txn.group_commit_stats WHERE database = 'postgres'"),
	'ten fire-and-forget writes failed while their session is idle');
# (q locked: the fifteen stay queued, so fifteen free slots are needed)
$locker->query_safe('BEGIN; LOCK q IN EXCLUSIVE MODE');
($ret, $stdout, $stderr) = $node->psql('postgres',
	"SET child_txn.queue_wait_timeout = '2s'; "
	  . "SELECT child_txn.append('q', ROW(i)::q, false) FROM generate_series(1, 15) i");
is($ret, 0, 'fifteen of the sixteen slots are free again') or diag($stderr);
$locker->query_safe('COMMIT');
like($idle->query_safe('SELECT try_flush()'),
	qr/^23514: new row for relation "qc" violates check constraint "qc_i_check"$/,
	'flush() reports a check failure');
like($idle->query_safe('SELECT try_flush()'), qr/^ok$/,
	'and nothing else: the other nine failures were counted and logged only');
$idle->quit;

# flush() after fire-and-forget writes returns as soon as they are written
# (it was woken only by its one-second poll: ten rounds took ten seconds).
my $t_flush = time();
$node->safe_psql('postgres',
	"SELECT child_txn.append('q', ROW(i)::q, false), child_txn.flush() FROM generate_series(1, 10) i");
my $flush_elapsed = time() - $t_flush;
cmp_ok($flush_elapsed, '<', 5, "ten rounds of append and flush took ${flush_elapsed}s");

# max_batch_size: at most that many rows per batch.
$node->safe_psql('postgres', 'TRUNCATE q');
$node->append_conf('postgresql.conf', "child_txn.max_batch_size = 2");
$node->reload;
$locker->query_safe('BEGIN; LOCK q IN EXCLUSIVE MODE');
$node->safe_psql('postgres',
	"SELECT child_txn.append('q', ROW(i)::q, false) FROM generate_series(1, 10) i");
# more rows deferred on the locked table than a batch holds: the worker
# retries them with its back-off, not again and again without a pause
my $d_before = deferrals();
sleep(1);
my $d_second = deferrals() - $d_before;
cmp_ok($d_second, '<', 500,
	"ten writes deferred on a locked table: $d_second deferrals in a second");
# new writes to that table join the deferred ones rather than have all ten
# tried again at each append (five appends, sixteen slots)
$d_before = deferrals();
$node->safe_psql('postgres', join('',
	map { "SELECT child_txn.append('q', ROW($_)::q, false);\n" } (11 .. 15)));
my $d_five = deferrals() - $d_before;
cmp_ok($d_five, '<', 40,
	"five more writes to the locked table, one by one: $d_five deferrals");
my $before = $node->safe_psql('postgres',
	"SELECT batches FROM child_txn.group_commit_stats WHERE database = 'postgres'");
$locker->query_safe('COMMIT');
# (retried by the worker after its back-off: up to a second)
ok($node->poll_query_until('postgres', 'SELECT count(*) = 15 FROM q'),
	'fifteen rows written with max_batch_size = 2');
my $after = $node->safe_psql('postgres',
	"SELECT batches FROM child_txn.group_commit_stats WHERE database = 'postgres'");
cmp_ok($after - $before, '>=', 8, 'in at least eight batches');
cmp_ok($node->safe_psql('postgres',
	"SELECT max_batch_rows FROM child_txn.group_commit_stats WHERE database = 'postgres'"),
	'<=', 16, 'max_batch_rows is reported');

# nowait_batch_delay: writes nobody waits for gather company that long;
# a waiting append(), a flush(), a full gathering (here half the sixteen
# slots) or a session waiting for room ends it at once.
$node->safe_psql('postgres', 'TRUNCATE q');
$node->append_conf('postgresql.conf',
	"child_txn.max_batch_size = 10000\nchild_txn.nowait_batch_delay = '10s'");
$node->reload;
ok($node->poll_query_until('postgres',
	"SELECT current_setting('child_txn.nowait_batch_delay') = '10s'"),
	'nowait_batch_delay = 10s is in effect');
sleep(0.5);		# the worker rereads the file at its next wake-up
$node->safe_psql('postgres', "SELECT child_txn.append('q', ROW(1)::q, false)");
sleep(1);
is(count_q(), '0', 'a write nobody waits for is not committed at once');
$node->safe_psql('postgres',
	"SET statement_timeout = '8s'; SELECT child_txn.append('q', ROW(2)::q)");
is(count_q(), '2', 'a waiting append ends the gathering: both writes committed');
$node->safe_psql('postgres',
	"SET statement_timeout = '8s'; SELECT child_txn.append('q', ROW(3)::q, false); "
	  . "SELECT child_txn.flush()");
is(count_q(), '3', 'flush() ends the gathering');
my $t_full = time();
$node->safe_psql('postgres',
	"SELECT child_txn.append('q', ROW(i)::q, false) FROM generate_series(4, 11) i");
ok($node->poll_query_until('postgres', 'SELECT count(*) = 11 FROM q'),
	'eight writes nobody waits for are committed');
my $full_elapsed = time() - $t_full;
cmp_ok($full_elapsed, '<', 8,
	"before nowait_batch_delay is up: half the queue ends the gathering (${full_elapsed}s)");

# A session waiting for room ends it too, whatever its database: rows of
# 1.5 MB each stay below a quarter of the queue's 8 MB, and five or six of
# them fill that long before half of the slots are taken.
my $mid_row = "(SELECT ROW(string_agg(md5(g::text), ''))::big FROM generate_series(1, 47000) g)";
my $big0 = $node->safe_psql('postgres', 'SELECT count(*) FROM big');
$node->safe_psql('postgres', "SELECT child_txn.append('big', ROW('small')::big, false)");
sleep(0.5);		# the worker gathers now
my $t_room = time();
($ret, $stdout, $stderr) = $node->psql('postgres',
	"SET child_txn.queue_wait_timeout = '6s'; "
	  . "SELECT child_txn.append('big', $mid_row, false) FROM generate_series(1, 8); "
	  . "SET statement_timeout = '8s'; SELECT child_txn.flush()");
my $room_elapsed = time() - $t_room;
is($ret, 0, 'eight 1.5 MB writes fit through the 8 MB queue while it gathers')
  or diag($stderr);
cmp_ok($room_elapsed, '<', 6,
	"waiting for room ended the gathering (${room_elapsed}s)");
is($node->safe_psql('postgres', 'SELECT count(*) FROM big') - $big0, 9,
	'all nine are in the table');

# The same when another database's deferred writes take the slots: twelve
# of the sixteen, so that four small writes here fill the queue while this
# database's own count (half the slots) would not end the gathering.
$node->safe_psql('postgres', 'CREATE DATABASE other');
$node->safe_psql('other', 'CREATE EXTENSION child_txn; CREATE TABLE o (i int)');
my $olocker = $node->background_psql('other');
$olocker->query_safe('BEGIN; LOCK o IN EXCLUSIVE MODE');
$node->safe_psql('other',
	"SELECT child_txn.append('o', ROW(i)::o, false) FROM generate_series(1, 12) i");
ok($node->poll_query_until('other',
	"SELECT deferrals >= 12 FROM child_txn.group_commit_stats WHERE database = 'other'"),
	"the other database's twelve writes are deferred");
$node->safe_psql('postgres', 'TRUNCATE q');
$node->safe_psql('postgres', "SELECT child_txn.append('q', ROW(1)::q, false)");
sleep(0.5);		# the worker gathers now
$t_room = time();
($ret, $stdout, $stderr) = $node->psql('postgres',
	"SET child_txn.queue_wait_timeout = '6s'; "
	  . "SELECT child_txn.append('q', ROW(i)::q, false) FROM generate_series(2, 5) i; "
	  . "SET statement_timeout = '8s'; SELECT child_txn.flush()");
$room_elapsed = time() - $t_room;
is($ret, 0, 'four writes fit through a queue full of another database\'s writes')
  or diag($stderr);
cmp_ok($room_elapsed, '<', 6,
	"waiting for a slot ended the gathering (${room_elapsed}s)");
is(count_q(), '5', 'all five are in the table');
$olocker->query_safe('COMMIT');
$olocker->quit;
ok($node->poll_query_until('other', 'SELECT count(*) = 12 FROM o'),
	"the other database's writes are made once its table is free");
$node->append_conf('postgresql.conf', "child_txn.nowait_batch_delay = 0");

# max_batch_delay: a lone write waits that long for company.
$node->append_conf('postgresql.conf', "child_txn.max_batch_delay = '300ms'");
$node->reload;
sleep(0.5);
my $t0 = time();
$node->safe_psql('postgres', "SELECT child_txn.append('q', ROW(1000)::q)");
my $elapsed = time() - $t0;
cmp_ok($elapsed, '>=', 0.29, "with max_batch_delay = 300ms a lone append took ${elapsed}s");

# deferred_queue_share = 50 (the default): writes deferred on a locked
# table take at most half of the queue's slots or memory; the next write
# appended without waiting to that table waits for the table's lock, in the
# lock manager, and writes to other tables go on meanwhile.
$node->append_conf('postgresql.conf',
	"child_txn.max_batch_delay = 0\nchild_txn.deferred_queue_share = 50");
$node->reload;
ok($node->poll_query_until('postgres',
	"SELECT current_setting('child_txn.deferred_queue_share') = '50'"),
	'deferred_queue_share = 50 is in effect');
$node->safe_psql('postgres', 'TRUNCATE q; TRUNCATE big; CREATE TABLE r (i int)');

sub deferrals
{
	return $node->safe_psql('postgres',
		"SELECT deferrals FROM child_txn.group_commit_stats WHERE database = 'postgres'");
}

# wait until `n` more writes were deferred, then start `sql` in the
# background; returns the session once it waits for a lock
sub blocked_append
{
	my ($deferrals0, $n, $sql, $pattern) = @_;
	ok($node->poll_query_until('postgres',
		"SELECT deferrals - $deferrals0 >= $n FROM child_txn.group_commit_stats "
		  . "WHERE database = 'postgres'"),
		"$n writes deferred");
	my $s = $node->background_psql('postgres');
	$s->query_until(qr/started/, "\\echo started\n$sql;\n");
	ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
		  . "AND wait_event = 'relation' AND query LIKE '%$pattern%'"),
		'the next write to the locked table waits for its lock');
	return $s;
}

# slots: 8 of 16 deferred
my $d0 = deferrals();
$locker->query_safe('BEGIN; LOCK q IN EXCLUSIVE MODE');
$node->safe_psql('postgres',
	"SELECT child_txn.append('q', ROW(i)::q, false) FROM generate_series(1, 8) i");
my $blocked = blocked_append($d0, 8,
	"BEGIN; SELECT child_txn.append('q', ROW(9)::q, false)", 'ROW(9)');
$node->safe_psql('postgres',
	"SET statement_timeout = '20s'; SELECT child_txn.append('r', ROW(1)::r)");
is($node->safe_psql('postgres', 'SELECT count(*) FROM r'), '1',
	'a write to another table commits meanwhile');
($ret, $stdout, $stderr) = $node->psql('postgres',
	"SET lock_timeout = '200ms'; SELECT child_txn.append('q', ROW(10)::q, false)");
like($stderr, qr/canceling statement due to lock timeout/,
	'that wait obeys lock_timeout');
$locker->query_safe('COMMIT');
$blocked->query_safe('SELECT child_txn.flush()');
is($blocked->query_safe(
	"SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND relation = 'q'::regclass"),
	'0', 'the append that waited for the table holds no lock on it afterwards');
$blocked->query_safe('COMMIT');
$blocked->quit;
ok($node->poll_query_until('postgres', 'SELECT count(*) = 9 FROM q'),
	'once the lock is gone all nine writes are in the table, the refused one not');

# memory: two 3 MB writes deferred, 6 of 8 MB
$d0 = deferrals();
$locker->query_safe('BEGIN; LOCK big IN EXCLUSIVE MODE');
$node->safe_psql('postgres', "SELECT child_txn.append('big', $big_row, false)");
$node->safe_psql('postgres', "SELECT child_txn.append('big', $big_row, false)");
$blocked = blocked_append($d0, 2,
	"SELECT child_txn.append('big', ROW('small')::big, false)", 'small');
$node->safe_psql('postgres',
	"SET statement_timeout = '20s'; SELECT child_txn.append('r', ROW(2)::r)");
is($node->safe_psql('postgres', 'SELECT count(*) FROM r'), '2',
	'with the memory half taken, a write to another table commits meanwhile');
$locker->query_safe('COMMIT');
$blocked->query_safe('SELECT child_txn.flush()');
$blocked->quit;
ok($node->poll_query_until('postgres', 'SELECT count(*) = 3 FROM big'),
	'all three writes to the big table are in it');

# A database closed to new connections keeps its group commit (and child
# transactions) for the sessions already in it.
$node->safe_psql('postgres', 'CREATE DATABASE closed');
$node->safe_psql('closed', 'CREATE EXTENSION child_txn; CREATE TABLE c (i int)');
my $inside = $node->background_psql('closed');
$node->safe_psql('postgres', 'ALTER DATABASE closed ALLOW_CONNECTIONS false');
$inside->query_safe("SET statement_timeout = '20s'");
$inside->query_safe("SELECT child_txn.append('c', ROW(1)::c)");
$inside->query_safe("SELECT child_txn.run('INSERT INTO c VALUES (2)')");
is($inside->query_safe('SELECT string_agg(i::text, \',\' ORDER BY i) FROM c'), '1,2',
	'append() and run() work in a database that allows no new connections');
$inside->quit;

$locker->quit;

# A caller that gives up (statement_timeout) while the worker waits for a
# row its write needs: the write is not written later, when the row is free.
$node->safe_psql('postgres', 'CREATE TABLE uk (k int PRIMARY KEY)');
$node->append_conf('postgresql.conf', "child_txn.row_lock_wait = '1s'");
$node->reload;
ok($node->poll_query_until('postgres',
	"SELECT current_setting('child_txn.row_lock_wait') = '1s'"),
	'row_lock_wait = 1s is in effect');
sleep(0.5);
my $holder = $node->background_psql('postgres');
$holder->query_safe('BEGIN; INSERT INTO uk VALUES (1)');
($ret, $stdout, $stderr) = $node->psql('postgres',
	"SET statement_timeout = '300ms'; SELECT child_txn.append('uk', ROW(1)::uk)");
like($stderr, qr/canceling statement due to statement timeout/,
	'the append gives up while the worker waits for the key');
sleep(2);		# the worker's wait for the row ends: the write is deferred
$holder->query_safe('ROLLBACK');
$holder->quit;
sleep(2);		# a deferred write is retried within a second
is($node->safe_psql('postgres', 'SELECT count(*) FROM uk'), '0',
	'the write its caller gave up on is not written once the key is free');
$node->append_conf('postgresql.conf', "child_txn.row_lock_wait = '20ms'");
$node->reload;

# Stopping the server while writes queued without waiting gather: the
# worker applies them before it exits (child_txn.drain_timeout; the cases
# are in 009_group_commit_stop).
$node->safe_psql('postgres', 'TRUNCATE q');
$node->append_conf('postgresql.conf', "child_txn.nowait_batch_delay = '10s'");
$node->reload;
ok($node->poll_query_until('postgres',
	"SELECT current_setting('child_txn.nowait_batch_delay') = '10s'"),
	'nowait_batch_delay = 10s is in effect again');
sleep(0.5);
$node->safe_psql('postgres',
	"SELECT child_txn.append('q', ROW(i)::q, false) FROM generate_series(1, 3) i");
my $log_offset = -s $node->logfile;
$node->stop('fast');
like(slurp_file($node->logfile, $log_offset),
	qr/group-commit worker of database \d+ applied 3 write\(s\) after it was asked to stop/,
	'a fast stop with three writes gathering: the worker applies them first');
$node->start;
is(count_q(), '3', 'and they are in the table after the restart');
$node->stop;
done_testing();
