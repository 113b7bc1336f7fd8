# pg_cancel_backend() on the group-commit worker cancels the write it is
# applying and nothing else: a cancel while it idles (or locks tables, or
# commits) is ignored instead of ending the worker and failing a batch.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $node = PostgreSQL::Test::Cluster->new('gc_cancel');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'child_txn'");
$node->append_conf('postgresql.conf', "max_worker_processes = 16");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION child_txn;
	CREATE TABLE slow (i int);
	CREATE FUNCTION slow_trg() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		IF NEW.i = 1 THEN PERFORM pg_sleep(300); END IF;
		RETURN NEW;
	END $$;
	CREATE TRIGGER slow BEFORE INSERT ON slow FOR EACH ROW EXECUTE FUNCTION slow_trg();
});
my $gc_pid = q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'child_txn group commit'};

$node->safe_psql('postgres', q{SELECT child_txn.append('slow', ROW(0)::slow)});
my $pid = $node->safe_psql('postgres', $gc_pid);
ok($pid =~ /^\d+$/, 'the group-commit worker runs');

# Idle: the cancel is ignored, the worker stays.
$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
sleep 1;
is($node->safe_psql('postgres', $gc_pid), $pid, 'a cancel while idle leaves the worker running');
$node->safe_psql('postgres', q{SELECT child_txn.append('slow', ROW(0)::slow)});
is($node->safe_psql('postgres', $gc_pid), $pid, 'and it applies the next write');

# While a write runs (its trigger sleeps): the first cancel ends the batch's
# first try, the second the write itself, which fails alone with 57014.
my ($out, $err) = ('', '');
my $h = IPC::Run::start(
	[ 'psql', '-XAtq', '-d', $node->connstr('postgres'), '-c',
	  q{SELECT child_txn.append('slow', ROW(1)::slow)} ],
	'>', \$out, '2>', \$err);
my $sleeping = "SELECT count(*) = 1 FROM pg_stat_activity WHERE pid = $pid AND wait_event = 'PgSleep'";
ok($node->poll_query_until('postgres', $sleeping), 'the worker runs the slow write');
$node->safe_psql('postgres', q{SELECT child_txn.append('slow', ROW(2)::slow, false)});
$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE pid = $pid AND wait_event = 'PgSleep' "
	  . "AND query LIKE '%one write at a time%'"),
	'after a cancel the batch is run one write at a time');
$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
$h->finish;
like($err, qr/canceling statement due to user request/, 'the cancelled write fails with its error');
is($node->safe_psql('postgres', $gc_pid), $pid, 'the worker is still the same');
$node->safe_psql('postgres', 'SELECT child_txn.flush()');
is($node->safe_psql('postgres', 'SELECT string_agg(i::text, \',\' ORDER BY i) FROM slow'),
	'0,0,2', 'the other writes are written, the cancelled one is not');

$node->stop;
done_testing();
