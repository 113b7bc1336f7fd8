# Group commit into foreign tables (postgres_fdw).  postgres_fdw commits its
# remote transactions in a pre-commit callback, one connection after the
# other: when the second fails, the first has committed.  Such a batch must
# not be run again (the first server's rows would be written twice) and its
# writes get 08007 (outcome unknown), never "not written".
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('gc_foreign');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'child_txn'");
$node->append_conf('postgresql.conf', "max_worker_processes = 16");
# gather fire-and-forget writes, so that both land in one batch
$node->append_conf('postgresql.conf', "child_txn.nowait_batch_delay = '300ms'");
$node->start;

my ($host, $port) = ($node->host, $node->port);
$node->safe_psql('postgres', 'CREATE DATABASE remote');
$node->safe_psql('remote', q{
	CREATE TABLE ta (i int);
	CREATE TABLE tb (i int UNIQUE DEFERRABLE INITIALLY DEFERRED);
	INSERT INTO tb VALUES (1);
});
$node->safe_psql('postgres', qq{
	CREATE EXTENSION child_txn;
	CREATE EXTENSION postgres_fdw;
	CREATE SERVER srv_a FOREIGN DATA WRAPPER postgres_fdw
		OPTIONS (host '$host', port '$port', dbname 'remote');
	CREATE SERVER srv_b FOREIGN DATA WRAPPER postgres_fdw
		OPTIONS (host '$host', port '$port', dbname 'remote');
	CREATE USER MAPPING FOR CURRENT_USER SERVER srv_a;
	CREATE USER MAPPING FOR CURRENT_USER SERVER srv_b;
	CREATE FOREIGN TABLE fa (i int) SERVER srv_a OPTIONS (table_name 'ta');
	CREATE FOREIGN TABLE fb (i int) SERVER srv_b OPTIONS (table_name 'tb');
});

# A write to a foreign table commits (waiting and fire-and-forget).
$node->safe_psql('postgres', q{
	SELECT child_txn.append('fa', ROW(10)::fa);
	SELECT child_txn.append('fa', ROW(11)::fa, false);
	SELECT child_txn.flush();
});
is($node->safe_psql('remote', 'SELECT string_agg(i::text, \',\' ORDER BY i) FROM ta'),
	'10,11', 'writes to a foreign table commit');
$node->safe_psql('remote', 'TRUNCATE ta');

# One batch, two connections: fa's commit succeeds or not depending on the
# order postgres_fdw commits them in; fb's fails (deferred unique key).
# Whatever the order, fa's row is written at most once, and both callers
# are told the outcome is unknown.
my ($ret, $stdout, $stderr) = $node->psql('postgres', q{
	\set VERBOSITY verbose
	SELECT child_txn.append('fa', ROW(1)::fa, false), child_txn.append('fb', ROW(1)::fb, false);
	SELECT child_txn.flush();
});
isnt($ret, 0, 'flush reports the failed batch');
like($stderr, qr/08007/, 'the failure is 08007 (outcome unknown)');
like($stderr, qr/may or may not have been written/,
	'its context does not say "not written"');
my $ta = $node->safe_psql('remote', 'SELECT count(*) FROM ta');
ok($ta eq '0' || $ta eq '1', "the first server's row is written at most once (found $ta)");
note "rows in ta after the failed batch: $ta";
is($node->safe_psql('remote', 'SELECT count(*) FROM tb'), '1', 'the second server has nothing new');

# The worker is back for the next write.
$node->safe_psql('postgres', q{
	SELECT child_txn.append('fa', ROW(2)::fa);
});
is($node->safe_psql('remote', 'SELECT count(*) FROM ta WHERE i = 2'), '1',
	'later writes commit');

$node->stop;
done_testing();
