# Idle pooled child workers and an idle group-commit worker are backends of
# their database.  DROP DATABASE, ALTER DATABASE ... RENAME and CREATE
# DATABASE ... TEMPLATE wait for every other backend of the database to go;
# child_txn makes its idle workers leave so that these statements succeed.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('dropdb');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'child_txn'");
$node->append_conf('postgresql.conf', "max_worker_processes = 16");
$node->start;

sub use_workers
{
	my ($db) = @_;
	$node->safe_psql($db, 'CREATE EXTENSION IF NOT EXISTS child_txn');
	$node->safe_psql($db, 'CREATE TABLE IF NOT EXISTS t (a int)');
	$node->safe_psql($db, q{SELECT child_txn.run('INSERT INTO t VALUES (1)')});
	$node->safe_psql($db, q{SELECT child_txn.append('t', ROW(2)::t)});
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE datname = '$db' "
		  . "AND backend_type IN ('child_txn worker', 'child_txn group commit')");
}

$node->safe_psql('postgres', 'CREATE DATABASE d1');
is(use_workers('d1'), '2', 'an idle child worker and the group-commit worker are connected to d1');
my ($ret, $out, $err) = $node->psql('postgres', 'DROP DATABASE d1');
is($ret, 0, 'DROP DATABASE succeeds with idle child_txn workers in it');
is($err, '', 'no error') or diag($err);

$node->safe_psql('postgres', 'CREATE DATABASE d2');
use_workers('d2');
($ret, $out, $err) = $node->psql('postgres', 'ALTER DATABASE d2 RENAME TO d3');
is($ret, 0, 'ALTER DATABASE ... RENAME succeeds') or diag($err);

use_workers('d3');
($ret, $out, $err) = $node->psql('postgres', 'CREATE DATABASE d4 TEMPLATE d3');
is($ret, 0, 'CREATE DATABASE ... TEMPLATE succeeds') or diag($err);
is($node->safe_psql('d4', 'SELECT count(*) FROM t'), '4',
	'the copy has the rows written by the workers');

# Workers come back on demand in the renamed database.
is(use_workers('d3'), '2', 'workers start again in the database afterwards');

# DROP DATABASE ... WITH (FORCE) while writes to it are deferred (a locked
# table): its worker is terminated and the next one cannot connect.  The
# writes (and their queue slots, memory and the database's entry) are
# freed, not kept for good.
$node->safe_psql('postgres', 'CREATE DATABASE d5');
$node->safe_psql('d5', 'CREATE EXTENSION child_txn; CREATE TABLE t (a int)');
my $locker = $node->background_psql('d5', on_error_stop => 0);
$locker->query_safe('BEGIN; LOCK t IN EXCLUSIVE MODE');
$node->safe_psql('d5',
	"SELECT child_txn.append('t', ROW(i)::t, false) FROM generate_series(1, 3) i");
ok($node->poll_query_until('d5',
	"SELECT deferrals >= 3 FROM child_txn.group_commit_stats WHERE database = 'd5'"),
	'three writes to d5 are deferred');
($ret, $out, $err) = $node->psql('postgres', 'DROP DATABASE d5 WITH (FORCE)');
is($ret, 0, 'DROP DATABASE ... WITH (FORCE) succeeds') or diag($err);
$locker->{run}->kill_kill;
ok($node->poll_query_until('d3',
	"SELECT count(*) = 0 FROM child_txn.group_commit_stats WHERE database IS NULL"),
	"the dropped database's writes are freed");

$node->stop;
done_testing();
