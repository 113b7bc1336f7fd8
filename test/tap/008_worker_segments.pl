# A child worker keeps the shared memory segments of finished children
# mapped, so that the next child of the same session needs no new mapping;
# once the parent session has let go of a segment, the worker unmaps it at
# its next child.  One worker serves every child here, so the segments it
# keeps can be followed by name in /dev/shm.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('segments');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'child_txn'");
$node->append_conf('postgresql.conf', "child_txn.max_workers = 1");
$node->append_conf('postgresql.conf', "dynamic_shared_memory_type = posix");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION child_txn');

sub segments
{
	return {
		map { $_ => 1 } split /\n/,
		$node->safe_psql('postgres',
			"SELECT f FROM pg_ls_dir('/dev/shm') f WHERE f LIKE 'PostgreSQL.%'")
	};
}

sub sessions_gone
{
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'client backend'")
	  or die 'a session did not end';
}

# Session A runs children and ends: the worker keeps A's segment mapped.
my $before = segments();
$node->safe_psql('postgres', q{SELECT child_txn.run('SELECT 1'), child_txn.run('SELECT 2')});
sessions_gone();
my @kept = grep { !$before->{$_} } keys %{ segments() };
ok(@kept >= 1, 'the worker keeps the segments of a finished session mapped (' . scalar(@kept) . ')');

# Session B runs children: the worker lets A's segments go.
$node->safe_psql('postgres', q{SELECT child_txn.run('SELECT 3'), child_txn.run('SELECT 4')});
my $now = segments();
is(join(',', grep { $now->{$_} } @kept), '', 'A\'s segments are gone after B\'s children');

# The worker's exit lets go of what it kept of B's.
sessions_gone();
$node->safe_psql('postgres',
	"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'child_txn worker'");
$node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'child_txn worker'")
  or die 'the worker did not exit';
$now = segments();
is(join(',', grep { !$before->{$_} } keys %$now), '', 'no segment left after the worker exits');

$node->stop;
done_testing();
