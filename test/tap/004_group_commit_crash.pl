# Group commit never loses an acknowledged write.  Several sessions append
# rows in a loop and announce each append() that returned (a NOTICE sent
# right after it).  While they run, the group-commit worker is terminated
# (SIGTERM), killed (SIGKILL: crash restart), and the whole server is
# stopped in immediate mode (a crash) and started again.  Afterwards every
# acknowledged row is in the table; a row that is there without an
# acknowledgement belongs to a session that got an error.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(time sleep);

my $node = PostgreSQL::Test::Cluster->new('gc_crash');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'child_txn'");
$node->append_conf('postgresql.conf', "max_worker_processes = 16");
$node->append_conf('postgresql.conf', "restart_after_crash = on");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION child_txn');
$node->safe_psql('postgres',
	'CREATE TABLE gc (client int, seq int, PRIMARY KEY (client, seq))');
$node->safe_psql('postgres', 'CREATE TABLE stop (r int)');

my $nclients = 4;
my $round = 0;

# Start the appending sessions of one round; each runs until killed or
# until its connection goes.
sub start_load
{
	my ($r) = @_;
	my @load;
	for my $c (1 .. $nclients)
	{
		my $client = $r * 100 + $c;
		my ($out, $err) = ('', '');
		my $sql = "DO \$\$ BEGIN FOR i IN 1..1000000 LOOP "
		  . "EXIT WHEN EXISTS (SELECT FROM stop WHERE r = $r); "
		  . "PERFORM child_txn.append('gc', ROW($client, i)::gc); "
		  . "RAISE NOTICE 'ACK % %', $client, i; END LOOP; END \$\$";
		my $h = IPC::Run::start(
			[ 'psql', '-X', '-d', $node->connstr('postgres'), '-c', $sql ],
			'>', \$out, '2>', \$err);
		push @load, { h => $h, out => \$out, err => \$err, client => $client };
	}
	return \@load;
}

sub acks
{
	my ($l) = @_;
	$l->{h}->pump_nb;
	my $n = () = ${ $l->{err} } =~ /NOTICE:  ACK/g;
	return $n;
}

# Wait until every session has had $more appends acknowledged since the
# counts in $since (or since it started).
sub wait_acks
{
	my ($load, $more, $since) = @_;
	my $deadline = time() + 60;
	while (time() < $deadline)
	{
		my $ready = 1;
		for my $l (@$load)
		{
			my $base = $since ? $since->{ $l->{client} } : 0;
			$ready = 0 if acks($l) < $base + $more;
		}
		return 1 if $ready;
		sleep(0.05);
	}
	return 0;
}

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

# Stop the sessions (if still running) and check every acknowledgement.
sub check_round
{
	my ($load, $name, $expect_errors) = @_;
	$node->poll_query_until('postgres', 'SELECT true') or die "server not back";
	# let sessions still running end on their own, so that every
	# acknowledgement they got is read
	$node->safe_psql('postgres', "INSERT INTO stop VALUES ($round)");
	for my $l (@$load) { $l->{h}->finish; }
	my ($acked, $missing, $unacked, $errored) = (0, 0, 0, 0);
	for my $l (@$load)
	{
		my %ack;
		$ack{$1} = 1 while ${ $l->{err} } =~ /NOTICE:  ACK \d+ (\d+)/g;
		$acked += scalar keys %ack;
		my $rows = $node->safe_psql('postgres',
			"SELECT string_agg(seq::text, ',') FROM gc WHERE client = $l->{client}");
		my %row = map { $_ => 1 } grep { $_ ne '' } split /,/, $rows;
		$missing += grep { !$row{$_} } keys %ack;
		my $extra = grep { !$ack{$_} } keys %row;
		$unacked += $extra;
		my $got_error = ${ $l->{err} } =~ /(ERROR|FATAL|server closed|terminat)/;
		$errored++ if $got_error;
		# a row without acknowledgement is only allowed if its session
		# was told something went wrong (or we stopped it ourselves)
		diag("$name: client $l->{client} has $extra row(s) never acknowledged")
		  if $extra > 1;
	}
	ok($acked > 0, "$name: $acked appends acknowledged");
	is($missing, 0, "$name: every acknowledged append is in the table");
	if ($expect_errors)
	{
		ok($unacked <= $nclients,
			"$name: at most one unacknowledged row per session, whose append got an error ($unacked)");
		ok($errored > 0, "$name: sessions whose server went away got an error");
	}
	else
	{
		is($unacked, 0, "$name: no row without an acknowledgement");
	}
	return;
}

# 0. SIGTERM while the worker is inside a batch (a trigger sleeps in it),
#    with child_txn.drain_timeout = 0 (exit at once; the drain is in
#    009_group_commit_stop): the batch is rolled back and taken again by the
#    next worker, which the exiting one starts; the caller gets success and
#    the row is there once.
{
	$node->append_conf('postgresql.conf', "child_txn.drain_timeout = 0");
	$node->reload;
	ok($node->poll_query_until('postgres',
		"SELECT current_setting('child_txn.drain_timeout') = '0'"),
		'mid-batch: drain_timeout = 0 is in effect');
	sleep(0.5);			# (the worker rereads the file when it next wakes)
	$node->safe_psql('postgres', q{
		CREATE TABLE slow (v int);
		CREATE FUNCTION slow_trg() RETURNS trigger LANGUAGE plpgsql
		  AS $$ BEGIN PERFORM pg_sleep(1); RETURN NEW; END $$;
		CREATE TRIGGER slow_bi BEFORE INSERT ON slow
		  FOR EACH ROW EXECUTE FUNCTION slow_trg();
	});
	my $started = $node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()');
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
		'mid-batch: the worker is inside the batch');
	my $pid = gc_worker_pid();
	kill 'TERM', $pid;
	$h->finish;
	is($h->result(0), 0, 'mid-batch: the caller got success') or diag($err);
	isnt(gc_worker_pid(), $pid, 'mid-batch: another worker took the batch over');
	is($node->safe_psql('postgres', 'SELECT count(*) FROM slow'), '1',
		'mid-batch: the row is there, once');
	is($node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()'),
		$started, 'mid-batch: the worker exited cleanly (no crash restart)');
	$node->safe_psql('postgres', 'DROP TABLE slow; DROP FUNCTION slow_trg()');
	$node->append_conf('postgresql.conf', "child_txn.drain_timeout = '10s'");
	$node->reload;
}

# 1. SIGTERM to the group-commit worker: it applies what was queued before
#    the signal (child_txn.drain_timeout) and exits, a new worker takes the
#    later writes, and the sessions carry on without an error.
{
	my $load = start_load(++$round);
	ok(wait_acks($load, 20), 'sigterm: sessions are appending');
	my $pid = gc_worker_pid();
	isnt($pid, '', 'sigterm: group-commit worker found');
	my %at_kill = map { $_->{client} => acks($_) } @$load;
	kill 'TERM', $pid;
	ok(wait_acks($load, 100, \%at_kill),
		'sigterm: every session goes on appending after the worker was terminated');
	my $new = gc_worker_pid();
	isnt($new, $pid, 'sigterm: a new group-commit worker took over');
	my $errors = 0;
	for my $l (@$load)
	{
		$l->{h}->pump_nb;
		$errors++ if ${ $l->{err} } =~ /ERROR/;
	}
	is($errors, 0, 'sigterm: no session saw an error');
	unlike(slurp_file($node->logfile), qr/terminated by signal 11|Segmentation fault/,
		'sigterm: no process crashed');
	check_round($load, 'sigterm', 0);
}

# 2. SIGKILL to the group-commit worker: the postmaster restarts the cluster;
#    every session loses its connection (an error), nothing acknowledged is lost.
{
	my $load = start_load(++$round);
	ok(wait_acks($load, 20), 'sigkill: sessions are appending');
	my $pid = gc_worker_pid();
	isnt($pid, '', 'sigkill: group-commit worker found');
	kill 'KILL', $pid;
	for my $l (@$load) { $l->{h}->finish; }
	check_round($load, 'sigkill', 1);
}

# 3. Crash of the whole server (immediate stop, then start: crash recovery).
{
	my $load = start_load(++$round);
	ok(wait_acks($load, 20), 'crash: sessions are appending');
	$node->stop('immediate');
	for my $l (@$load) { $l->{h}->finish; }
	$node->start;
	check_round($load, 'crash', 1);
}

# The worker comes back on demand after all of that.
$node->safe_psql('postgres', "SELECT child_txn.append('gc', ROW(0, 1)::gc)");
is($node->safe_psql('postgres', 'SELECT count(*) FROM gc WHERE client = 0'),
	'1', 'group commit works after the crashes');

$node->stop;
done_testing();
