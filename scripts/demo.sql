-- child_txn demo, run by scripts/setup.sh against database "demo".
\set ON_ERROR_STOP 1
\pset footer off
DROP EXTENSION IF EXISTS child_txn CASCADE;
CREATE EXTENSION child_txn;
DROP TABLE IF EXISTS demo_accounts, demo_audit, demo_orders;
CREATE TABLE demo_accounts (id int PRIMARY KEY, balance int NOT NULL CHECK (balance >= 0));
CREATE TABLE demo_audit (at timestamptz DEFAULT clock_timestamp(), msg text);
INSERT INTO demo_accounts VALUES (1, 100);

\echo
\echo '1. An audit row written with child_txn.run() survives the rollback of its caller:'
BEGIN;
UPDATE demo_accounts SET balance = balance - 500 WHERE id = 1 AND false;
SELECT child_txn.run($$INSERT INTO demo_audit(msg) VALUES ('withdrawal of 500 attempted')$$) AS rows_written;
ROLLBACK;
SELECT msg FROM demo_audit;

\echo
\echo '2. A child transaction, step by step, committed while its parent rolls back:'
BEGIN;
SELECT child_txn.begin() AS h \gset
SELECT child_txn.exec(:h, $$INSERT INTO demo_audit(msg) VALUES ('step 1'), ('step 2')$$) AS inserted;
SELECT * FROM child_txn.query(:h, 'SELECT count(*) FROM demo_audit') AS t(rows_seen_by_child bigint);
SELECT handle, depth, state, usename FROM child_txn.children;
SELECT child_txn.commit(:h);
ROLLBACK;
SELECT count(*) AS audit_rows FROM demo_audit;

\echo
\echo '3. A parent/child deadlock is an ordinary error (40P01), caught by the parent:'
BEGIN;
UPDATE demo_accounts SET balance = balance + 1 WHERE id = 1;
DO $$
BEGIN
  PERFORM child_txn.run('UPDATE demo_accounts SET balance = 0 WHERE id = 1');
EXCEPTION WHEN deadlock_detected THEN
  RAISE NOTICE 'the child failed with % (%), the parent carries on', SQLSTATE, SQLERRM;
END $$;
COMMIT;
SELECT * FROM demo_accounts;

\echo
\echo '4. Group commit: rows queued by append() are written in batches by a background'
\echo '   worker, autonomously (the rollback below does not undo them):'
BEGIN;
SELECT child_txn.append('demo_audit', ROW(NULL, 'queued ' || i)::demo_audit, false)
  FROM generate_series(1, 3) i;
ROLLBACK;
SELECT child_txn.flush();
SELECT child_txn.append('demo_audit', ROW(NULL, 'durable when this returns')::demo_audit);
SELECT count(*) AS queued_rows_written FROM demo_audit WHERE msg LIKE 'queued %';
SELECT database, batches, writes, rows, failures FROM child_txn.group_commit_stats;

\echo
\echo '5. child_txn_heap: a child sees its parent''s uncommitted rows (heap tables: committed only):'
CREATE TABLE demo_orders (id int PRIMARY KEY, status text) USING child_txn_heap;
BEGIN;
INSERT INTO demo_orders VALUES (1, 'new');
UPDATE demo_orders SET status = 'paid' WHERE id = 1;
SELECT child_txn.run($$INSERT INTO demo_audit (msg) SELECT 'order ' || id || ' ' || status FROM demo_orders$$);
ROLLBACK;
SELECT count(*) AS orders_after_rollback FROM demo_orders;
SELECT msg AS audit_written_by_the_child FROM demo_audit WHERE msg LIKE 'order %';
