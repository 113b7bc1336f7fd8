-- child_txn.run(): one-shot autonomous statements.
\set SHOW_CONTEXT never
CREATE TABLE audit (id serial PRIMARY KEY, msg text NOT NULL, who text DEFAULT current_user);
CREATE TABLE items (id int PRIMARY KEY, v text);

-- The child's commit survives the parent's rollback.
BEGIN;
INSERT INTO items VALUES (1, 'parent');
SELECT child_txn.run($$INSERT INTO audit(msg) VALUES ('tried to add item 1')$$);
ROLLBACK;
SELECT * FROM items;
SELECT msg FROM audit;

-- ... and an error in the parent after the call does not undo it either.
DO $$
BEGIN
  PERFORM child_txn.run($q$INSERT INTO audit(msg) VALUES ('before the failure')$q$);
  RAISE EXCEPTION 'parent fails';
END $$;
SELECT msg FROM audit ORDER BY id;

-- The child does not see the parent's uncommitted rows (plain heap).
BEGIN;
INSERT INTO items VALUES (2, 'uncommitted');
SELECT child_txn.run('SELECT * FROM items WHERE id = 2');
ROLLBACK;

-- Rows processed by the last statement.
SELECT child_txn.run($$INSERT INTO items SELECT g, 'x' FROM generate_series(10, 14) g$$);
SELECT child_txn.run($$UPDATE items SET v = 'y' WHERE id >= 12$$);
SELECT child_txn.run($$DELETE FROM items WHERE id = 14$$);
SELECT child_txn.run('SELECT * FROM items');
SELECT child_txn.run('CREATE TABLE made_by_child (a int)');
SELECT child_txn.run('');
SELECT child_txn.run('  ;  ');

-- Several statements run in order in one transaction; the last one counts.
SELECT child_txn.run($$INSERT INTO items VALUES (20, 'a'); INSERT INTO items VALUES (21, 'b'), (22, 'c')$$);
-- ... and a failure in any of them rolls back all of them.
SELECT child_txn.run($$INSERT INTO items VALUES (30, 'a'); INSERT INTO items VALUES (20, 'dup')$$);
SELECT count(*) FROM items WHERE id = 30;

-- Savepoints work inside the child.
SELECT child_txn.run($$SAVEPOINT s; INSERT INTO items VALUES (40, 'undone'); ROLLBACK TO s; INSERT INTO items VALUES (41, 'kept')$$);
SELECT id, v FROM items WHERE id IN (40, 41);

-- Errors come back with SQLSTATE, message, detail and hint.
SELECT child_txn.run($$INSERT INTO items VALUES (1, 'a'), (1, 'b')$$);
SELECT child_txn.run('SELECT 1/0');
SELECT child_txn.run('SELECT * FROM no_such_table');
SELECT child_txn.run('this is not sql');
DO $$
DECLARE st text; msg text; det text; hnt text;
BEGIN
  PERFORM child_txn.run($q$DO $d$ BEGIN RAISE EXCEPTION 'custom failure'
      USING ERRCODE = 'P0042', DETAIL = 'the detail', HINT = 'the hint'; END $d$ $q$);
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                          det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
  RAISE NOTICE 'caught % "%" detail "%" hint "%"', st, msg, det, hnt;
END $$;
-- The error context names the child and keeps the child's own context.
DO $$
DECLARE ctx text;
BEGIN
  PERFORM child_txn.run($q$DO $d$ BEGIN RAISE EXCEPTION 'in a block'; END $d$ $q$);
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS ctx = PG_EXCEPTION_CONTEXT;
  RAISE NOTICE 'context: %', regexp_replace(ctx, 'child transaction [0-9]+', 'child transaction N');
END $$;

-- Notices and warnings from the child reach the client, in order.
SELECT child_txn.run($$DO $d$ BEGIN RAISE NOTICE 'first'; RAISE WARNING 'second'; RAISE NOTICE 'third'; END $d$ $$);
-- ... subject to the caller's client_min_messages.
SET client_min_messages = warning;
SELECT child_txn.run($$DO $d$ BEGIN RAISE NOTICE 'hidden'; RAISE WARNING 'shown'; END $d$ $$);
RESET client_min_messages;

-- Statements that cannot run in a child fail before anything runs.
SELECT child_txn.run('COMMIT');
SELECT child_txn.run('BEGIN');
SELECT child_txn.run($$INSERT INTO items VALUES (50, 'never'); ROLLBACK$$);
SELECT count(*) FROM items WHERE id = 50;
SELECT child_txn.run('PREPARE TRANSACTION ''x''');
SELECT child_txn.run('COPY items TO STDOUT');
SELECT child_txn.run('COPY items FROM STDIN');
SELECT child_txn.run('VACUUM items');
SELECT child_txn.run(NULL);
-- A procedure that commits cannot end the child's transaction either.
CREATE PROCEDURE commits() LANGUAGE plpgsql AS $$ BEGIN COMMIT; END $$;
SELECT child_txn.run('CALL commits()');

-- The child runs with the caller's settings.
SET search_path = nowhere, public;
SET TimeZone = 'Asia/Kolkata';
SET DateStyle = 'German';
SET statement_timeout = '1h';
SET work_mem = '5MB';
SET my.custom = 'carried';
SELECT child_txn.run($$DO $d$ BEGIN RAISE NOTICE 'search_path=% TimeZone=% DateStyle=% statement_timeout=% work_mem=% my.custom=%',
  current_setting('search_path'), current_setting('TimeZone'), current_setting('DateStyle'),
  current_setting('statement_timeout'), current_setting('work_mem'), current_setting('my.custom'); END $d$ $$);
-- SET LOCAL values of the caller's transaction count too.
BEGIN;
SET LOCAL search_path = public;
SELECT child_txn.run($$DO $d$ BEGIN RAISE NOTICE 'search_path=%', current_setting('search_path'); END $d$ $$);
COMMIT;
RESET ALL;
-- Unqualified names resolve through the caller's search_path.
CREATE SCHEMA other;
CREATE TABLE other.items (id int);
SET search_path = other, public;
SELECT child_txn.run('INSERT INTO items VALUES (1)');
RESET search_path;
SELECT count(*) FROM other.items;
-- It shows as a child in application_name, with a short deadlock_timeout,
-- at READ COMMITTED whatever the caller's default is.
SET application_name = 'myapp';
SET default_transaction_isolation = 'serializable';
SELECT child_txn.run($$DO $d$ BEGIN RAISE NOTICE 'app=% deadlock_timeout=% isolation=%',
  regexp_replace(current_setting('application_name'), '[0-9]+$', 'N'),
  current_setting('deadlock_timeout'), current_setting('transaction_isolation'); END $d$ $$);
RESET application_name;
RESET default_transaction_isolation;
-- The child's deadlock_timeout is never longer than the caller's.
SET deadlock_timeout = '20ms';
SELECT child_txn.run($$DO $d$ BEGIN RAISE NOTICE 'deadlock_timeout=%', current_setting('deadlock_timeout'); END $d$ $$);
RESET deadlock_timeout;
-- Children nest, up to child_txn.max_depth.
SELECT child_txn.run($$SELECT child_txn.run('INSERT INTO audit(msg) VALUES (''from a grandchild'')')$$);
SELECT msg FROM audit WHERE msg LIKE '%grandchild';
SET child_txn.max_depth = 2;
SELECT child_txn.run($$SELECT child_txn.run('SELECT child_txn.run(''SELECT 1'')')$$);
RESET child_txn.max_depth;
-- A child's statement_timeout applies inside it.
SELECT child_txn.run($$SET statement_timeout = '50ms'; SELECT pg_sleep(5)$$);
-- Starting a child from a security-restricted operation is refused.
CREATE FUNCTION idx_run(int) RETURNS int IMMUTABLE LANGUAGE plpgsql AS
  $$ BEGIN PERFORM child_txn.run('SELECT 1'); RETURN $1; END $$;
CREATE TABLE restricted (a int);
INSERT INTO restricted VALUES (1);
CREATE INDEX ON restricted (idx_run(a));
-- Nothing is left open.
SELECT count(*) FROM child_txn.children;
DROP TABLE made_by_child, restricted;
DROP FUNCTION idx_run(int);
DROP PROCEDURE commits();
DROP SCHEMA other CASCADE;
