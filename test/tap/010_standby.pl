# On a hot standby child transactions and group-commit writes are refused
# with a clear error (25006), and the standby replays what children and the
# group-commit worker committed on the primary.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', "shared_preload_libraries = 'child_txn'");
$primary->append_conf('postgresql.conf', "max_worker_processes = 16");
$primary->start;
$primary->safe_psql('postgres', 'CREATE EXTENSION child_txn');
$primary->safe_psql('postgres', 'CREATE TABLE t (v int)');
$primary->backup('b');

my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'b', has_streaming => 1);
$standby->start;

$primary->safe_psql('postgres', q{
	SELECT child_txn.run('INSERT INTO t VALUES (1)');
	SELECT child_txn.append('t', ROW(2)::t);
});
$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres', 'SELECT string_agg(v::text, \',\' ORDER BY v) FROM t'),
	'1,2', 'the standby has the rows a child and group commit wrote on the primary');

my ($ret, $out, $err) = $standby->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT child_txn.run('SELECT 1')");
like($err, qr/ERROR:  25006: cannot start a child transaction during recovery/,
	'run() on the standby: 25006 with a clear message');
like($err, qr/HINT:  Start child transactions on the primary server/,
	'run() on the standby: the hint says where');
($ret, $out, $err) = $standby->psql('postgres',
	"BEGIN; SELECT child_txn.begin(); ROLLBACK;");
like($err, qr/cannot start a child transaction during recovery/,
	'begin() on the standby is refused the same way');
($ret, $out, $err) = $standby->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT child_txn.append('t', ROW(3)::t, false)");
like($err, qr/ERROR:  25006: cannot queue group-commit writes during recovery/,
	'append() on the standby: 25006');
is($standby->safe_psql('postgres', 'SELECT child_txn.flush()'), '',
	'flush() on the standby: nothing to wait for');
unlike(slurp_file($standby->logfile), qr/background worker "child_txn|failed to initialize/,
	'no worker was started on the standby');

$standby->stop;
$primary->stop;
done_testing();
