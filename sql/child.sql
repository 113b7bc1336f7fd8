-- Child transactions: begin / exec / query / commit / rollback.
-- A child is bound to its parent's transaction, so each part below runs in
-- a transaction block; psql's ON_ERROR_ROLLBACK keeps the parent going
-- after an error (each statement gets a savepoint).
\set SHOW_CONTEXT never
\set ON_ERROR_ROLLBACK on
CREATE TABLE acct (id int PRIMARY KEY, balance int);
INSERT INTO acct VALUES (1, 100), (2, 100);

-- A child commits on its own; its parent rolls back.
BEGIN;
SELECT child_txn.begin() AS h \gset
SELECT child_txn.exec(:h, 'UPDATE acct SET balance = balance - 10 WHERE id = 1');
SELECT child_txn.exec(:h, 'UPDATE acct SET balance = balance + 10 WHERE id = 2');
SELECT * FROM child_txn.query(:h, 'SELECT id, balance FROM acct ORDER BY id') AS t(id int, balance int);
SELECT handle = :h AS same_handle, depth, state, parent_pid = pg_backend_pid() AS mine,
       worker_pid IS NOT NULL AS has_worker FROM child_txn.children;
SELECT child_txn.commit(:h);
UPDATE acct SET balance = 0;
ROLLBACK;
SELECT * FROM acct ORDER BY id;

-- A rolled-back child leaves nothing.
BEGIN;
SELECT child_txn.begin() AS h \gset
SELECT child_txn.exec(:h, 'DELETE FROM acct');
SELECT child_txn.rollback(:h);
SELECT count(*) FROM acct;

-- An ended child's handle is gone.
SELECT child_txn.exec(:h, 'SELECT 1');
SELECT child_txn.commit(:h);
-- So are unknown and null handles.
SELECT child_txn.exec(0, 'SELECT 1');
SELECT child_txn.exec(NULL, 'SELECT 1');
SELECT child_txn.exec(child_txn.begin(), NULL);
SELECT child_txn.begin('read uncommitted');
COMMIT;
-- Outside a transaction block each statement is a transaction: a child
-- begun in one is rolled back when it ends.
SELECT child_txn.begin() AS h \gset
SELECT child_txn.exec(:h, 'SELECT 1');

-- A failing statement leaves the child failed, as a transaction block would
-- be; commit then reports the rollback; rollback is always fine.
BEGIN;
SELECT child_txn.begin() AS h \gset
SELECT child_txn.exec(:h, 'INSERT INTO acct VALUES (3, 0)');
SELECT child_txn.exec(:h, 'INSERT INTO acct VALUES (3, 0)');
SELECT child_txn.exec(:h, 'SELECT 1');
SELECT child_txn.commit(:h);
SELECT count(*) FROM acct WHERE id = 3;
SELECT child_txn.begin() AS h \gset
SELECT child_txn.exec(:h, 'SELECT 1/0');
SELECT child_txn.rollback(:h);
-- Savepoints inside a child let it recover from an error.
SELECT child_txn.begin() AS h \gset
SELECT child_txn.exec(:h, 'INSERT INTO acct VALUES (4, 4); SAVEPOINT a');
SELECT child_txn.exec(:h, 'INSERT INTO acct VALUES (4, 5)');
SELECT child_txn.exec(:h, 'ROLLBACK TO SAVEPOINT a');
SELECT child_txn.exec(:h, 'INSERT INTO acct VALUES (5, 5)');
SELECT child_txn.commit(:h);
COMMIT;
SELECT * FROM acct WHERE id >= 3 ORDER BY id;

-- query(): rows typed by the caller's column list, NULLs, several
-- statements (the last result counts), no result at all.
BEGIN;
SELECT child_txn.begin() AS h \gset
SELECT * FROM child_txn.query(:h, $$SELECT 1, NULL::text, 'x y', now() IS NOT NULL$$) AS t(a int, b text, c text, d bool);
SELECT * FROM child_txn.query(:h, 'SELECT 1; SELECT 2 UNION ALL SELECT 3') AS t(a int);
SELECT * FROM child_txn.query(:h, 'CREATE TEMP TABLE q(a int)') AS t(a int);
SELECT * FROM child_txn.query(:h, 'INSERT INTO q VALUES (7) RETURNING a') AS t(a int);
SELECT * FROM child_txn.query(:h, 'SELECT 1, 2') AS t(a int);
-- A value that does not convert to the column's type is an error; the
-- child, whose answer was cut short, is rolled back.
SELECT * FROM child_txn.query(:h, 'SELECT ''abc''') AS t(a int);
SELECT child_txn.rollback(:h);
-- A result much larger than the queue streams through.
SELECT child_txn.begin() AS h \gset
SELECT count(*), sum(length(b)) FROM child_txn.query(:h,
  'SELECT g, repeat(''x'', 100) FROM generate_series(1, 50000) g') AS t(a int, b text);
SELECT child_txn.rollback(:h);
-- So does a single value larger than the queue; the buffer it took is
-- given back when the child ends, not kept with the session's segments.
SELECT child_txn.begin() AS h \gset
SELECT length(v) FROM child_txn.query(:h, $$SELECT repeat('y', 1000000)$$) AS t(v text);
SELECT child_txn.commit(:h);
COMMIT;
SELECT coalesce(sum(total_bytes), 0) < 100000 AS small_after_child
  FROM pg_backend_memory_contexts WHERE name IN ('child_txn child', 'child_txn queues');

-- Isolation levels.
BEGIN;
SELECT child_txn.begin('REPEATABLE READ') AS h \gset
SELECT * FROM child_txn.query(:h, 'SHOW transaction_isolation') AS t(x text);
SELECT child_txn.commit(:h);
SELECT child_txn.begin('serializable') AS h \gset
SELECT * FROM child_txn.query(:h, 'SHOW transaction_isolation') AS t(x text);
SELECT child_txn.commit(:h);
-- A repeatable-read child keeps its snapshot while others commit.
SELECT child_txn.begin('repeatable read') AS h \gset
SELECT * FROM child_txn.query(:h, 'SELECT count(*) FROM acct') AS t(n bigint);
SELECT child_txn.run('INSERT INTO acct VALUES (6, 6)');
SELECT * FROM child_txn.query(:h, 'SELECT count(*) FROM acct') AS t(n bigint);
SELECT child_txn.commit(:h);
COMMIT;

-- Children still open when the parent transaction ends are rolled back,
-- with a warning naming them (the number varies, so it is masked).
\set VERBOSITY terse
BEGIN;
SELECT child_txn.begin() AS h \gset
SELECT child_txn.exec(:h, 'INSERT INTO acct VALUES (7, 7)');
COMMIT;
BEGIN;
SELECT child_txn.begin() AS h \gset
SELECT child_txn.exec(:h, 'INSERT INTO acct VALUES (8, 8)');
ROLLBACK;
\set VERBOSITY default
SELECT count(*) FROM acct WHERE id IN (7, 8);
SELECT child_txn.exec(:h, 'SELECT 1');

-- A child can start children of its own.
BEGIN;
SELECT child_txn.begin() AS h \gset
SELECT * FROM child_txn.query(:h, $$
  SELECT child_txn.exec(g, 'INSERT INTO acct VALUES (9, 9)'), child_txn.commit(g)
    FROM child_txn.begin() g$$) AS t(n bigint, c text);
SELECT child_txn.rollback(:h);
SELECT * FROM acct WHERE id = 9;

-- Transaction control inside a child is refused.
SELECT child_txn.begin() AS h \gset
SELECT child_txn.exec(:h, 'COMMIT');
SELECT child_txn.exec(:h, 'SELECT 1');
SELECT child_txn.rollback(:h);
COMMIT;

-- PL/pgSQL: an autonomous log line in one statement, surviving the error
-- that the exception handler catches.
CREATE TABLE errlog (msg text);
CREATE FUNCTION log_autonomous(msg text) RETURNS void LANGUAGE sql
  AS $$ SELECT child_txn.run(format('INSERT INTO errlog VALUES (%L)', msg)) $$;
DO $$
BEGIN
  BEGIN
    INSERT INTO acct VALUES (1, 0);
  EXCEPTION WHEN unique_violation THEN
    PERFORM log_autonomous('duplicate account 1: ' || SQLERRM);
    RAISE;
  END;
END $$;
SELECT * FROM errlog;

-- A child whose commit fails (a deferred foreign key) reports that error
-- alone, and has ended.
CREATE TABLE dparent (id int PRIMARY KEY);
CREATE TABLE dchild (pid int REFERENCES dparent DEFERRABLE INITIALLY DEFERRED);
BEGIN;
SELECT child_txn.begin() AS h \gset
SELECT child_txn.exec(:h, 'INSERT INTO dchild VALUES (1)');
SELECT child_txn.commit(:h);
SELECT child_txn.rollback(:h);
COMMIT;
SELECT child_txn.run('INSERT INTO dchild VALUES (2)');
SELECT count(*) FROM dchild;
DROP TABLE dchild, dparent;

-- What ends a child with its parent's transaction.  ROLLBACK TO SAVEPOINT
-- does not: the child belongs to the top-level transaction.
CREATE TABLE sp_t (v int);
BEGIN;
SAVEPOINT a;
SELECT child_txn.begin() AS h \gset
SELECT child_txn.exec(:h, 'INSERT INTO sp_t VALUES (1)');
ROLLBACK TO SAVEPOINT a;
SELECT child_txn.exec(:h, 'INSERT INTO sp_t VALUES (2)');
SELECT child_txn.commit(:h);
ROLLBACK;
SELECT * FROM sp_t ORDER BY v;
-- A procedure's COMMIT ends it: the open child is rolled back, with the
-- WARNING, and its handle is gone.
CREATE PROCEDURE sp_proc() LANGUAGE plpgsql AS $$
DECLARE h int;
BEGIN
  h := child_txn.begin();
  PERFORM child_txn.exec(h, 'INSERT INTO sp_t VALUES (3)');
  COMMIT;
  PERFORM child_txn.exec(h, 'INSERT INTO sp_t VALUES (4)');
END $$;
CALL sp_proc();
-- So does PREPARE TRANSACTION.
BEGIN;
SELECT child_txn.begin() AS h \gset
SELECT child_txn.exec(:h, 'INSERT INTO sp_t VALUES (5)');
PREPARE TRANSACTION 'child_txn_regress';
ROLLBACK PREPARED 'child_txn_regress';
SELECT * FROM sp_t ORDER BY v;
DROP PROCEDURE sp_proc();
DROP TABLE sp_t;

SELECT count(*) FROM child_txn.children;
DROP FUNCTION log_autonomous(text);
DROP TABLE acct, errlog;
