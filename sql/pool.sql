-- Pooled workers are reused; a reused worker keeps none of its previous child's settings, role, statements, cursors, locks or random() seed.
\set SHOW_CONTEXT never
-- Wait until every child worker is back in the pool.
CREATE FUNCTION pg_temp.wait_pool() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1 .. 3000 LOOP
    PERFORM pg_stat_clear_snapshot();
    IF NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'child_txn worker'
                     AND state IS DISTINCT FROM 'idle') THEN
      RETURN 'pool idle';
    END IF;
    PERFORM pg_sleep(0.01);
  END LOOP;
  RETURN 'workers still busy';
END $$;
-- Warm the pool, then check that a second child reuses the worker.
SELECT child_txn.run('SELECT 1');
SELECT pg_temp.wait_pool();
CREATE TEMP TABLE pids (pid int);
CREATE ROLE pool_r;
BEGIN;
SELECT child_txn.begin() AS h \gset
INSERT INTO pids SELECT worker_pid FROM child_txn.children WHERE handle = :h;
SELECT child_txn.rollback(:h);
COMMIT;
SELECT pg_temp.wait_pool();
BEGIN;
SELECT child_txn.begin() AS h \gset
SELECT worker_pid IN (SELECT pid FROM pids) AS reused FROM child_txn.children WHERE handle = :h;

-- Leave state behind in this child: settings, a role, a prepared statement,
-- an open cursor WITH HOLD, a session advisory lock, random()'s seed.
-- (LISTEN cannot run in a background worker at all.)
SELECT child_txn.exec(:h, $$SET work_mem = '7MB'; SET ROLE pool_r; SET my.var = 'leftover';
  PREPARE p AS SELECT 1; DECLARE c CURSOR WITH HOLD FOR SELECT 1; SELECT setseed(0.5);
  SELECT pg_advisory_lock(4242)$$);
SELECT * FROM child_txn.query(:h, $$SELECT current_setting('work_mem'), current_user = session_user,
  current_setting('my.var', true), (SELECT count(*) FROM pg_prepared_statements),
  (SELECT count(*) FROM pg_cursors), (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory')$$)
  AS t(work_mem text, own_role bool, my_var text, prepared bigint, cursors bigint, advisory bigint);
SELECT child_txn.commit(:h);
COMMIT;
SELECT pg_temp.wait_pool();

-- The next child on the same worker sees none of it.
BEGIN;
SELECT child_txn.begin() AS h \gset
SELECT worker_pid IN (SELECT pid FROM pids) AS reused FROM child_txn.children WHERE handle = :h;
SELECT * FROM child_txn.query(:h, $$SELECT current_setting('work_mem'), current_user = session_user,
  current_setting('my.var', true), (SELECT count(*) FROM pg_prepared_statements),
  (SELECT count(*) FROM pg_cursors), (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory')$$)
  AS t(work_mem text, own_role bool, my_var text, prepared bigint, cursors bigint, advisory bigint);
SELECT r AS child_random FROM child_txn.query(:h, 'SELECT random()') AS t(r float8) \gset
SELECT child_txn.rollback(:h);
COMMIT;
-- (what random() gives right after setseed(0.5): the next child did not)
SELECT setseed(0.5);
SELECT random() <> :child_random AS reseeded;

-- A worker that used temporary tables is not reused (its temp_buffers are
-- fixed), and the next child does not see them.
BEGIN;
SELECT child_txn.begin() AS h \gset
SELECT child_txn.exec(:h, 'CREATE TEMP TABLE leftover (a int)');
SELECT child_txn.commit(:h);
COMMIT;
SELECT pg_temp.wait_pool();
BEGIN;
SELECT child_txn.begin() AS h \gset
SELECT * FROM child_txn.query(:h, $$SELECT count(*) FROM pg_class WHERE relname = 'leftover'$$) AS t(n bigint);
SELECT child_txn.rollback(:h);
COMMIT;
-- A worker whose child left its settings alone skips restoring identical
-- settings for the next child; a changed setting of the caller, or a
-- SET LOCAL inside the previous child, must still come out right.
SET my.x = 'a';
SELECT child_txn.run($$DO $d$ BEGIN RAISE NOTICE 'my.x=%', current_setting('my.x'); END $d$ $$);
SELECT pg_temp.wait_pool();
SELECT child_txn.run($$SET LOCAL my.x = 'local'; SET LOCAL work_mem = '9MB'$$);
SELECT pg_temp.wait_pool();
SELECT child_txn.run($$DO $d$ BEGIN RAISE NOTICE 'my.x=% work_mem=%', current_setting('my.x'), current_setting('work_mem'); END $d$ $$);
SET my.x = 'b';
SELECT pg_temp.wait_pool();
SELECT child_txn.run($$DO $d$ BEGIN RAISE NOTICE 'my.x=%', current_setting('my.x'); END $d$ $$);
RESET my.x;
-- Each child has its own application_name, the caller's followed by
-- "child_txn" and its handle, in the child and in pg_stat_activity; also on
-- a reused worker whose previous child renamed itself.
SET application_name = 'pool_app';
SELECT child_txn.run($$SET application_name = 'renamed'$$);
SELECT pg_temp.wait_pool();
BEGIN;
SELECT child_txn.begin() AS h \gset
SELECT name = 'pool_app child_txn ' || :h AS own_name
  FROM child_txn.query(:h, $$SELECT current_setting('application_name')$$) AS t(name text);
SELECT pg_stat_clear_snapshot();
SELECT application_name = 'pool_app child_txn ' || :h AS shown
  FROM pg_stat_activity WHERE pid = (SELECT worker_pid FROM child_txn.children WHERE handle = :h);
SELECT child_txn.rollback(:h);
COMMIT;
SELECT pg_temp.wait_pool();
BEGIN;
SELECT child_txn.begin() AS h \gset
SELECT name = 'pool_app child_txn ' || :h AS own_name
  FROM child_txn.query(:h, $$SELECT current_setting('application_name')$$) AS t(name text);
SELECT child_txn.rollback(:h);
COMMIT;
RESET application_name;
DROP ROLE pool_r;
