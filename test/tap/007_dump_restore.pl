# child_txn_heap tables survive pg_dump and restore: the dump sets the access
# method before each such table, the restored tables use it, hold the same
# rows, and behave as before (a child sees its parent's uncommitted rows).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('dump');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'child_txn'");
$node->append_conf('postgresql.conf', "max_worker_processes = 16");
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', q{
	CREATE EXTENSION child_txn;
	CREATE TABLE intents (id int PRIMARY KEY, v text) USING child_txn_heap;
	INSERT INTO intents SELECT g, md5(g::text) FROM generate_series(1, 1000) g;
	CREATE TABLE plain (id int PRIMARY KEY);
	INSERT INTO plain SELECT generate_series(1, 10);
	CREATE TABLE part (id int, v text) PARTITION BY RANGE (id);
	CREATE TABLE part1 PARTITION OF part FOR VALUES FROM (0) TO (100) USING child_txn_heap;
	INSERT INTO part SELECT g, 'p' FROM generate_series(0, 99) g;
});

my $dumpfile = $node->basedir . '/src.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-f', $dumpfile, '-d', $node->connstr('src') ],
	'pg_dump of a database with child_txn_heap tables');
my $script = $node->basedir . '/src.sql';
$node->command_ok([ 'pg_restore', '-f', $script, $dumpfile ], 'the dump lists as SQL');
my $sql = slurp_file($script);
like($sql, qr/SET default_table_access_method = child_txn_heap;\s*\n(?:.*\n){0,4}?CREATE TABLE public\.intents/,
	'the dump sets the access method before the table');
like($sql, qr/CREATE EXTENSION IF NOT EXISTS child_txn/, 'the dump creates the extension');
unlike($sql, qr/CREATE ACCESS METHOD/, 'the access method comes with the extension, not on its own');

$node->safe_psql('postgres', 'CREATE DATABASE dst');
$node->command_ok([ 'pg_restore', '-d', $node->connstr('dst'), $dumpfile ], 'pg_restore');

my $am_query = q{SELECT string_agg(c.relname || ':' || a.amname, ',' ORDER BY c.relname)
	FROM pg_class c JOIN pg_am a ON a.oid = c.relam
	WHERE c.relname IN ('intents', 'plain', 'part1')};
is($node->safe_psql('dst', $am_query), $node->safe_psql('src', $am_query),
	'restored tables have the same access methods');
is($node->safe_psql('dst', $am_query), 'intents:child_txn_heap,part1:child_txn_heap,plain:heap',
	'and those are the expected ones');

my $data_query = q{SELECT md5(string_agg(id || v, ',' ORDER BY id)) FROM intents};
is($node->safe_psql('dst', $data_query), $node->safe_psql('src', $data_query), 'same rows');
is($node->safe_psql('dst', 'SELECT count(*) FROM part'), '100', 'partition rows restored');

# The restored table still gives a child its parent's uncommitted rows.
is( $node->safe_psql('dst', q{
		BEGIN;
		INSERT INTO intents VALUES (5000, 'parent');
		SELECT count(*) FROM child_txn.query(child_txn.begin(),
			'SELECT id FROM intents WHERE id = 5000') AS t(id int);
		ROLLBACK;}),
	'1', 'a child sees its parent\'s row in the restored table');

$node->stop;
done_testing();
