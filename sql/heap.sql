-- The child_txn_heap table access method: heap for everybody, except that a
-- child sees the rows its ancestors wrote and have not committed.
-- (Scans of every kind and write conflicts: isolation specs cth-*.)
\set SHOW_CONTEXT never
\set ON_ERROR_ROLLBACK on
SELECT amname, amtype, amhandler FROM pg_am WHERE amname = 'child_txn_heap';

-- Creating tables, and moving them between heap and child_txn_heap.
CREATE TABLE ih (id int PRIMARY KEY, v text) USING child_txn_heap;
CREATE TABLE ph (id int PRIMARY KEY, v text);
INSERT INTO ih SELECT g, 'c' || g FROM generate_series(1, 5) g;
INSERT INTO ph SELECT g, 'c' || g FROM generate_series(1, 5) g;
ALTER TABLE ph SET ACCESS METHOD child_txn_heap;
ALTER TABLE ph SET ACCESS METHOD heap;
SELECT c.relname, a.amname FROM pg_class c JOIN pg_am a ON a.oid = c.relam
 WHERE c.relname IN ('ih', 'ph') ORDER BY 1;
-- Ordinary sessions: plain heap semantics.
UPDATE ih SET v = 'u' WHERE id = 1;
DELETE FROM ih WHERE id = 2;
SELECT * FROM ih ORDER BY id;

-- A child sees its parent's writes up to the parent's last completed
-- command; in a heap table it sees committed rows only, as always.
BEGIN;
INSERT INTO ih VALUES (10, 'parent');
INSERT INTO ph VALUES (10, 'parent');
UPDATE ih SET v = 'parent update' WHERE id = 3;
SELECT child_txn.begin() AS h \gset
SELECT * FROM child_txn.query(:h, 'SELECT id, v FROM ih ORDER BY id') AS t(id int, v text);
SELECT * FROM child_txn.query(:h, 'SELECT id, v FROM ph WHERE id IN (3, 10) ORDER BY id') AS t(id int, v text);
-- The child's own writes follow normal MVCC, next to the parent's rows.
SELECT child_txn.exec(:h, 'INSERT INTO ih VALUES (11, ''child'')');
SELECT * FROM child_txn.query(:h, 'SELECT id, v FROM ih WHERE id >= 10 ORDER BY id') AS t(id int, v text);
SELECT * FROM ih WHERE id >= 10 ORDER BY id;
-- Rows the parent writes in the statement that calls the child are not
-- visible yet; rows it deletes in that statement still are.
INSERT INTO ih SELECT 12, (SELECT string_agg(id::text, ',') FROM child_txn.query(:h,
  'SELECT id, v FROM ih WHERE id >= 10 ORDER BY id') AS t(id int, v text));
SELECT v AS child_saw FROM ih WHERE id = 12;
DELETE FROM ih WHERE id = 10 RETURNING (SELECT count(*) FROM child_txn.query(:h,
  'SELECT id, v FROM ih WHERE id = 10') AS t(id int, v text)) AS child_still_sees;
SELECT count(*) AS after_delete FROM child_txn.query(:h, 'SELECT id, v FROM ih WHERE id = 10') AS t(id int, v text);
-- The parent's catalog changes stay invisible.
CREATE TABLE ih_new (id int) USING child_txn_heap;
SELECT child_txn.exec(:h, 'SAVEPOINT s');
SELECT child_txn.exec(:h, 'SELECT * FROM ih_new');
SELECT child_txn.exec(:h, 'ROLLBACK TO s');
-- A write to a row the parent wrote fails at once, with its own SQLSTATE.
SELECT set_config('my.h', :'h', false) IS NOT NULL AS noted;
DO $$
DECLARE st text; msg text; tbl text; det text;
BEGIN
  PERFORM child_txn.exec(current_setting('my.h')::int, 'UPDATE ih SET v = ''x'' WHERE id = 3');
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, tbl = TABLE_NAME, det = PG_EXCEPTION_DETAIL;
  RAISE NOTICE '% (table %): % / %', st, tbl, msg, det;
END $$;
SELECT child_txn.rollback(:h);
-- run() is a child too.
SELECT child_txn.run('INSERT INTO ph SELECT 20, string_agg(id::text, '','') FROM ih WHERE id >= 10');
ROLLBACK;
SELECT * FROM ph WHERE id = 20;
-- After the parent's rollback, nobody sees its rows.
SELECT * FROM ih ORDER BY id;
DELETE FROM ph WHERE id = 20;

CREATE TABLE ib (id int, v text) USING child_txn_heap;
INSERT INTO ib SELECT g, 'x' FROM generate_series(2, 1000) g;
CREATE FUNCTION grandchild_ids() RETURNS SETOF int LANGUAGE plpgsql AS $$
DECLARE g int := child_txn.begin();
BEGIN
  RETURN QUERY SELECT * FROM child_txn.query(g, 'SELECT id FROM ih WHERE id IN (1001, 2000) ORDER BY id') AS r(id int);
  PERFORM child_txn.rollback(g);
END $$;

-- A repeatable read child sees the writes its parent made before the
-- child's snapshot; once the parent writes again, reading its rows would
-- mix two points in time, and is a serialization failure.
BEGIN;
INSERT INTO ih VALUES (30, 'before');
SELECT child_txn.begin('repeatable read') AS h \gset
SELECT * FROM child_txn.query(:h, 'SELECT id, v FROM ih WHERE id >= 30') AS t(id int, v text);
SELECT child_txn.exec(:h, 'SAVEPOINT s');
INSERT INTO ih VALUES (31, 'after');
SELECT * FROM child_txn.query(:h, 'SELECT id, v FROM ih WHERE id >= 30') AS t(id int, v text);
SELECT child_txn.exec(:h, 'ROLLBACK TO s');
SELECT child_txn.exec(:h, 'SAVEPOINT s');
SELECT * FROM child_txn.query(:h, 'SET enable_seqscan = off; SELECT id, v FROM ih WHERE id = 30') AS t(id int, v text);
SELECT child_txn.exec(:h, 'ROLLBACK TO s');
-- heap tables are not concerned
SELECT * FROM child_txn.query(:h, 'SELECT id FROM ph WHERE id = 1') AS t(id int);
SELECT child_txn.rollback(:h);
ROLLBACK;

-- What still waits for the parent ends as a deadlock in the child (40P01):
-- a unique key the parent inserted, DDL on a table the parent wrote.
CREATE FUNCTION child_sqlstate(h int, sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM child_txn.exec(h, 'SAVEPOINT s');
  BEGIN
    PERFORM child_txn.exec(h, sql);
    PERFORM child_txn.exec(h, 'RELEASE s');
    RETURN 'ok';
  EXCEPTION WHEN OTHERS THEN
    PERFORM child_txn.exec(h, 'ROLLBACK TO s');
    RETURN SQLSTATE;
  END;
END $$;
BEGIN;
INSERT INTO ih VALUES (50, 'parent');
SELECT child_txn.begin() AS h \gset
SELECT child_sqlstate(:h, 'INSERT INTO ih VALUES (50, ''child'')') AS unique_key,
       child_sqlstate(:h, 'ALTER TABLE ih ADD COLUMN w int') AS ddl,
       child_sqlstate(:h, 'INSERT INTO ih VALUES (51, ''child'')') AS other_key;
SELECT child_txn.rollback(:h);
-- A serializable child begun after the parent's writes sees them.
SELECT child_txn.begin('serializable') AS h \gset
SELECT * FROM child_txn.query(:h, 'SELECT id, v FROM ih WHERE id = 50') AS t(id int, v text);
SELECT child_txn.rollback(:h);
ROLLBACK;
DROP FUNCTION child_sqlstate(int, text);

-- A query or cursor reads the parent's writes as they were when it
-- started: a cursor fetched after the parent wrote again fails (it would
-- otherwise mix its old snapshot with the parent's new rows).
BEGIN;
INSERT INTO ih VALUES (40, 'first');
SELECT child_txn.begin() AS h \gset
SELECT child_txn.exec(:h, 'DECLARE c CURSOR FOR SELECT id FROM ih ORDER BY id');
SELECT * FROM child_txn.query(:h, 'FETCH 1 FROM c') AS t(id int);
SELECT * FROM child_txn.query(:h, 'FETCH 1 FROM c') AS t(id int);
SELECT child_txn.exec(:h, 'SAVEPOINT s');
INSERT INTO ih VALUES (41, 'second');
SELECT * FROM child_txn.query(:h, 'FETCH 1 FROM c') AS t(id int);
SELECT child_txn.exec(:h, 'ROLLBACK TO s');
-- a new one sees both
SELECT * FROM child_txn.query(:h, 'SELECT id FROM ih WHERE id >= 40 ORDER BY id') AS t(id int);
-- a cursor over a heap table is not concerned
SELECT child_txn.exec(:h, 'DECLARE p CURSOR FOR SELECT id FROM ph ORDER BY id');
SELECT * FROM child_txn.query(:h, 'FETCH 1 FROM p') AS t(id int);
INSERT INTO ih VALUES (42, 'third');
SELECT * FROM child_txn.query(:h, 'FETCH 1 FROM p') AS t(id int);
SELECT child_txn.rollback(:h);
ROLLBACK;

-- Subtransactions: committed ones count, rolled-back ones do not, also
-- past the 64 subtransaction ids a backend advertises in shared memory.
BEGIN;
DO $$
BEGIN
  FOR i IN 1..100 LOOP
    BEGIN
      INSERT INTO ih VALUES (1000 + i, 'sub');
      IF i % 2 = 0 THEN RAISE EXCEPTION 'undo'; END IF;
    EXCEPTION WHEN raise_exception THEN NULL;
    END;
  END LOOP;
END $$;
SELECT child_txn.begin() AS h \gset
SELECT count(*), min(id), max(id), count(*) FILTER (WHERE id % 2 = 0) AS even
  FROM child_txn.query(:h, 'SELECT id FROM ih WHERE id > 1000') AS t(id int);
-- A grandchild sees both its ancestors' writes.
SELECT child_txn.exec(:h, 'INSERT INTO ih VALUES (2000, ''child'')');
SELECT * FROM child_txn.query(:h, 'SELECT grandchild_ids()') AS t(id int);
-- Index builds in a child read the table through heap (on a table the
-- parent did not write: one it holds ROW EXCLUSIVE would be a deadlock).
SELECT child_txn.exec(:h, 'INSERT INTO ib VALUES (1, ''child'')');
SELECT child_txn.exec(:h, 'CREATE INDEX ib_v ON ib (v)');
SELECT * FROM child_txn.query(:h, 'SET enable_seqscan = off; SELECT id FROM ib WHERE v = ''child''') AS t(id int);
SELECT child_txn.rollback(:h);
ROLLBACK;

-- Parallel query is off for child_txn_heap tables in a child whose parent
-- has written; plans that read only heap tables keep it.
CREATE TABLE ipar (id int, v text) USING child_txn_heap;
INSERT INTO ipar SELECT g, 'x' FROM generate_series(1, 10000) g;
ANALYZE ipar;
BEGIN;
SELECT child_txn.begin() AS h \gset
SELECT child_txn.exec(:h, 'SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; '
  'SET min_parallel_table_scan_size = 0; SET max_parallel_workers_per_gather = 2; '
  'SET plan_cache_mode = force_generic_plan; PREPARE pc AS SELECT count(*) FROM ipar');
SELECT * FROM child_txn.query(:h, 'EXPLAIN (COSTS OFF) SELECT count(*) FROM ipar') AS t(p text);
SELECT * FROM child_txn.query(:h, 'EXECUTE pc') AS t(n bigint);
-- The parent writes: new plans are serial, and the parallel plan cached
-- above runs without workers.
INSERT INTO ipar SELECT g, 'parent' FROM generate_series(10001, 10100) g;
SELECT * FROM child_txn.query(:h, 'EXPLAIN (COSTS OFF) SELECT count(*) FROM ipar') AS t(p text);
SELECT * FROM child_txn.query(:h, 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE pc') AS t(p text)
 WHERE p ~ 'Gather|Workers';
SELECT * FROM child_txn.query(:h, 'EXECUTE pc') AS t(n bigint);
SELECT child_txn.exec(:h, 'CREATE TABLE ppar2 AS SELECT g AS id FROM generate_series(1, 10000) g; ANALYZE ppar2');
SELECT * FROM child_txn.query(:h, 'EXPLAIN (COSTS OFF) SELECT count(*) FROM ppar2') AS t(p text);
SELECT * FROM child_txn.query(:h, 'EXPLAIN (COSTS OFF) SELECT count(*) FROM ppar2 WHERE id IN (SELECT id FROM ipar)') AS t(p text);
SELECT child_txn.rollback(:h);
ROLLBACK;
DROP TABLE ih, ph, ib, ipar;
DROP FUNCTION grandchild_ids();
