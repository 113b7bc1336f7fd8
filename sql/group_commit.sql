-- Group commit: append(), append_rows(), flush() and group_commit_stats.
\set SHOW_CONTEXT errors
-- Message only: details would show generated ids and times.
\set VERBOSITY terse
-- The SQLSTATE and message of a statement's error.
CREATE FUNCTION gc_try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE sql;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
CREATE TABLE gc_log (
    id    bigserial PRIMARY KEY,
    at    timestamptz NOT NULL DEFAULT now(),
    msg   text NOT NULL,
    n     int CHECK (n >= 0),
    who   text DEFAULT current_user
);
CREATE FUNCTION gc_counts(OUT batches bigint, OUT writes bigint, OUT failures bigint,
                          OUT retried bigint)
  LANGUAGE sql AS $$
    SELECT coalesce(sum(batches), 0), coalesce(sum(writes), 0),
           coalesce(sum(failures), 0), coalesce(sum(retried_batches), 0)
      FROM child_txn.group_commit_stats WHERE database = current_database() $$;
-- Wait (up to 60 s) until the worker has counted this many failures.
CREATE FUNCTION gc_wait_failures(target bigint) RETURNS boolean
  LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1..6000 LOOP
    IF (SELECT failures FROM gc_counts()) >= target THEN
      RETURN true;
    END IF;
    PERFORM pg_sleep(0.01);
  END LOOP;
  RETURN false;
END $$;

-- One row; NULL fields of columns with defaults take their defaults (id, at,
-- who); the write is durable when append() returns.
SELECT child_txn.append('gc_log', ROW(NULL, NULL, 'first', 1, NULL)::gc_log);
SELECT id, at IS NOT NULL AS has_at, msg, n, who = current_user AS who_ok FROM gc_log;
-- Explicit values are kept.
SELECT child_txn.append('gc_log', ROW(100, '2000-01-01', 'explicit', 2, 'me')::gc_log);
SELECT id, at, msg, n, who FROM gc_log WHERE id = 100;

-- Autonomous: it stays when the calling transaction rolls back.
BEGIN;
SELECT child_txn.append('gc_log', ROW(NULL, NULL, 'survives rollback', 3, NULL)::gc_log);
ROLLBACK;
SELECT msg FROM gc_log WHERE msg = 'survives rollback';

-- Errors of the write reach the caller with their SQLSTATE.
SELECT gc_try($$SELECT child_txn.append('gc_log', ROW(NULL, NULL, 'negative', -1, NULL)::gc_log)$$);
SELECT gc_try($$SELECT child_txn.append('gc_log', ROW(NULL, NULL, NULL, 4, NULL)::gc_log)$$);
SELECT gc_try($$SELECT child_txn.append('gc_log', ROW(100, NULL, 'duplicate id', 5, NULL)::gc_log)$$);
SELECT count(*) FROM gc_log WHERE n < 0 OR msg = 'duplicate id';

-- Many rows as one write: all or nothing.
SELECT child_txn.append_rows('gc_log', ARRAY[
    ROW(NULL, NULL, 'many 1', 6, NULL)::gc_log,
    ROW(NULL, NULL, 'many 2', 7, NULL)::gc_log]);
SELECT child_txn.append_rows('gc_log', ARRAY[
    ROW(NULL, NULL, 'many 3', 8, NULL)::gc_log,
    ROW(NULL, NULL, 'many bad', -8, NULL)::gc_log]);
SELECT msg FROM gc_log WHERE msg LIKE 'many%' ORDER BY id;
SELECT child_txn.append_rows('gc_log', '{}'::gc_log[]);

-- Fire and forget: returns at once; flush() waits and reports the first
-- failure, once.
-- (The failing write comes last: an append() after it could report it.)
SELECT child_txn.append('gc_log', ROW(NULL, NULL, 'ff 1', 9, NULL)::gc_log, false);
SELECT child_txn.append('gc_log', ROW(NULL, NULL, 'ff 2', 10, NULL)::gc_log, false);
SELECT child_txn.append('gc_log', ROW(NULL, NULL, 'ff bad', -9, NULL)::gc_log, wait => false);
SELECT child_txn.flush();
SELECT child_txn.flush();
SELECT msg FROM gc_log WHERE msg LIKE 'ff%' ORDER BY id;
-- A failure nobody flushed is reported by the next append(), which then
-- does not queue its own row.
SELECT failures AS f0 FROM gc_counts() \gset
SELECT child_txn.append('gc_log', ROW(NULL, NULL, 'ff bad 2', -10, NULL)::gc_log, false);
SELECT gc_wait_failures(:f0 + 1);
SELECT child_txn.append('gc_log', ROW(NULL, NULL, 'not queued', 11, NULL)::gc_log);
SELECT child_txn.append('gc_log', ROW(NULL, NULL, 'queued', 12, NULL)::gc_log);
SELECT msg FROM gc_log WHERE n >= 11 OR n <= -10 ORDER BY id;

-- Failure isolation in one batch: writes deferred while this transaction
-- holds a SHARE lock are retried together after it commits; the optimistic
-- batch fails, the batch is rerun one write at a time, and only the bad
-- write fails.
SELECT * FROM gc_counts() \gset before_
BEGIN;
LOCK gc_log IN SHARE MODE;
SELECT child_txn.append('gc_log', ROW(NULL, NULL, 'batch ' || i, i, NULL)::gc_log, false)
  FROM generate_series(1, 5) i;
SELECT child_txn.append('gc_log', ROW(NULL, NULL, 'batch bad', -1, NULL)::gc_log, false);
SELECT child_txn.append('gc_log', ROW(NULL, NULL, 'batch 6', 6, NULL)::gc_log, false);
SELECT count(*) FROM gc_log WHERE msg LIKE 'batch%';
COMMIT;
SELECT child_txn.flush();
SELECT msg FROM gc_log WHERE msg LIKE 'batch%' ORDER BY id;
SELECT f.writes - :before_writes AS writes, f.failures - :before_failures AS failures,
       f.retried - :before_retried AS retried_batches
  FROM gc_counts() f;

-- Waiting for a write that waits for this very transaction is refused at once.
BEGIN;
LOCK gc_log IN EXCLUSIVE MODE;
SELECT child_txn.append('gc_log', ROW(NULL, NULL, 'self', 1, NULL)::gc_log);
ROLLBACK;
BEGIN;
INSERT INTO gc_log(id, msg) VALUES (5000, 'mine');
SELECT child_txn.append('gc_log', ROW(5000, NULL, 'self row', 1, NULL)::gc_log);
ROLLBACK;
SELECT count(*) FROM gc_log WHERE id = 5000 OR msg LIKE 'self%';

-- A row queued before a column changed its type is not read with the new
-- type: the write fails (55000), nothing else does.
CREATE TABLE gc_shape (a int, b text);
BEGIN;
LOCK gc_shape IN SHARE MODE;
SELECT child_txn.append('gc_shape', ROW(1, 'queued before')::gc_shape, false);
ALTER TABLE gc_shape ALTER COLUMN a TYPE bigint;
COMMIT;
SELECT gc_try($$SELECT child_txn.flush()$$);
SELECT child_txn.append('gc_shape', ROW(2, 'queued after')::gc_shape);
-- A column added meanwhile is fine: it takes its default.
BEGIN;
LOCK gc_shape IN SHARE MODE;
SELECT child_txn.append('gc_shape', ROW(3, 'before add')::gc_shape, false);
ALTER TABLE gc_shape ADD COLUMN c text DEFAULT 'added';
COMMIT;
SELECT child_txn.flush();
SELECT * FROM gc_shape ORDER BY a;
DROP TABLE gc_shape;

-- A write that waits for another lock this transaction holds (here the
-- referenced table of a foreign key) is refused at once, not polled.
CREATE TABLE gc_parent (id int PRIMARY KEY);
INSERT INTO gc_parent VALUES (1);
CREATE TABLE gc_child (pid int REFERENCES gc_parent);
SELECT child_txn.append('gc_child', ROW(1)::gc_child);
SELECT gc_try($$SELECT child_txn.append('gc_child', ROW(2)::gc_child)$$);
BEGIN;
LOCK gc_parent IN ACCESS EXCLUSIVE MODE;
SELECT gc_try($$SELECT child_txn.append('gc_child', ROW(1)::gc_child)$$);
ROLLBACK;
SELECT * FROM gc_child;
DROP TABLE gc_child, gc_parent;

-- Deferred checks run at the end of the write, under the same rules: a
-- deferred foreign key waiting for a row this transaction locked is refused
-- at once; a trigger that defers its own checks cannot push them to the
-- batch's commit; a bad deferred key fails its write alone.
CREATE TABLE gc_dparent (id int PRIMARY KEY);
INSERT INTO gc_dparent VALUES (1), (2);
CREATE TABLE gc_dchild (pid int REFERENCES gc_dparent DEFERRABLE INITIALLY DEFERRED);
BEGIN;
SELECT id FROM gc_dparent WHERE id = 1 FOR UPDATE;
SELECT gc_try($$SELECT child_txn.append('gc_dchild', ROW(1)::gc_dchild)$$);
ROLLBACK;
CREATE FUNCTION gc_defer_fn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  SET CONSTRAINTS ALL DEFERRED;
  RETURN NEW;
END $$;
CREATE TRIGGER gc_defer_bi BEFORE INSERT ON gc_dchild
  FOR EACH ROW EXECUTE FUNCTION gc_defer_fn();
SELECT gc_try($$SELECT child_txn.append('gc_dchild', ROW(999)::gc_dchild)$$);
SELECT child_txn.append('gc_dchild', ROW(2)::gc_dchild);
-- A self-referencing deferred key across rows that omit different columns
-- (two INSERTs for one write) holds for the write as a whole, also when a
-- bad write in the same batch makes the batch rerun one write at a time.
CREATE TABLE gc_node (id int PRIMARY KEY, parent int, label text DEFAULT 'x',
  FOREIGN KEY (parent) REFERENCES gc_node DEFERRABLE INITIALLY DEFERRED);
BEGIN;
LOCK gc_node IN SHARE MODE;
SELECT child_txn.append('gc_node', ROW(10, 99, NULL)::gc_node, false);
SELECT child_txn.append_rows('gc_node',
  ARRAY[ROW(1, 2, NULL)::gc_node, ROW(2, NULL, 'y')::gc_node], false);
COMMIT;
SELECT gc_try($$SELECT child_txn.flush()$$);
SELECT * FROM gc_node ORDER BY id;
SELECT * FROM gc_dchild ORDER BY pid;
DROP TABLE gc_dchild, gc_dparent, gc_node;
DROP FUNCTION gc_defer_fn();

-- A renamed or dropped column does not break the next write.
CREATE TABLE gc_ren (a int, b int, c text);
SELECT child_txn.append('gc_ren', ROW(1, 1, 'one')::gc_ren);
ALTER TABLE gc_ren RENAME COLUMN a TO a2;
SELECT child_txn.append('gc_ren', ROW(2, 2, 'two')::gc_ren);
ALTER TABLE gc_ren DROP COLUMN b;
SELECT child_txn.append('gc_ren', ROW(3, 'three')::gc_ren);
SELECT * FROM gc_ren ORDER BY a2;
DROP TABLE gc_ren;

-- Settings a trigger changes (even with a plain SET) do not outlive its
-- write: the next write, maybe another role's, sees the server's settings.
CREATE TABLE gc_setter (v text);
CREATE FUNCTION gc_setter_fn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM set_config('search_path', 'pg_catalog', false);
  RETURN NEW;
END $$;
CREATE TRIGGER gc_setter_bi BEFORE INSERT ON gc_setter
  FOR EACH ROW EXECUTE FUNCTION gc_setter_fn();
CREATE TABLE gc_sp (sp text DEFAULT current_setting('search_path'));
SELECT child_txn.append('gc_setter', ROW('x')::gc_setter);
SELECT child_txn.append('gc_sp', ROW(NULL)::gc_sp);
SELECT sp FROM gc_sp;
DROP TABLE gc_setter, gc_sp;
DROP FUNCTION gc_setter_fn();

-- A child worker's fire-and-forget writes are not reported to the next
-- child it serves.
SELECT failures AS f1 FROM gc_counts() \gset
SELECT child_txn.run($$SELECT child_txn.append('gc_log', ROW(NULL, NULL, 'child ff bad', -1, NULL)::gc_log, false)$$);
SELECT gc_wait_failures(:f1 + 1);
SELECT child_txn.run($$SELECT child_txn.append('gc_log', ROW(NULL, NULL, 'next child', 1, NULL)::gc_log)$$);
SELECT msg FROM gc_log WHERE msg LIKE '%child%' ORDER BY id;

-- Bad calls.
SELECT child_txn.append('gc_log', ROW(1, 2));
SELECT child_txn.append('gc_log', 42);
SELECT child_txn.append('gc_log', NULL::gc_log);
SELECT child_txn.append(NULL, ROW(NULL, NULL, 'x', 1, NULL)::gc_log);
SELECT child_txn.append('gc_log', ROW(NULL, NULL, 'x', 1, NULL)::gc_log, NULL);
SELECT child_txn.append('gc_log_id_seq', ROW(NULL, NULL, 'x', 1, NULL)::gc_log);
SELECT child_txn.append_rows('gc_log', ARRAY[ROW(NULL, NULL, 'x', 1, NULL)::gc_log, NULL]);
SELECT child_txn.append_rows('gc_log', ARRAY[1, 2]);
CREATE TABLE gc_other (a int);
SELECT child_txn.append('gc_other', ROW(NULL, NULL, 'x', 1, NULL)::gc_log);

-- Defaults, identity and generated columns, as an INSERT leaving them out.
CREATE TABLE gc_cols (
    id   int GENERATED ALWAYS AS IDENTITY,
    a    int,
    b    int DEFAULT 7,
    twice int GENERATED ALWAYS AS (a * 2) STORED
);
SELECT child_txn.append('gc_cols', ROW(NULL, 1, NULL, NULL)::gc_cols);
SELECT child_txn.append('gc_cols', ROW(NULL, 2, 3, NULL)::gc_cols);
SELECT child_txn.append('gc_cols', ROW(10, 3, 3, NULL)::gc_cols);
SELECT * FROM gc_cols ORDER BY id;

-- Triggers fire as for an INSERT, as the submitting role.
CREATE TABLE gc_trig (v text, by_user text, note text);
CREATE FUNCTION gc_trig_fn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.by_user := current_user;
  NEW.note := 'set by trigger';
  IF NEW.v = 'reject' THEN
    RAISE EXCEPTION 'trigger rejects %', NEW.v USING ERRCODE = 'P0042', HINT = 'do not';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER gc_trig_bi BEFORE INSERT ON gc_trig FOR EACH ROW EXECUTE FUNCTION gc_trig_fn();
CREATE ROLE gc_writer;
CREATE ROLE gc_reader;
GRANT USAGE ON SCHEMA child_txn TO gc_writer, gc_reader;
GRANT INSERT ON gc_trig TO gc_writer;
GRANT INSERT, SELECT ON gc_log TO gc_writer, gc_reader;
REVOKE INSERT ON gc_log FROM gc_reader;
GRANT USAGE ON SEQUENCE gc_log_id_seq TO gc_writer;
SET ROLE gc_writer;
SELECT child_txn.append('gc_trig', ROW('hello', NULL, NULL)::gc_trig);
SELECT gc_try($$SELECT child_txn.append('gc_trig', ROW('reject', NULL, NULL)::gc_trig)$$);
RESET ROLE;
SELECT * FROM gc_trig;

-- A role without INSERT privilege: 42501, as for its own INSERT.
SET ROLE gc_reader;
SELECT gc_try($$INSERT INTO gc_log(msg) VALUES ('direct')$$);
SELECT gc_try($$SELECT child_txn.append('gc_log', ROW(NULL, NULL, 'no privilege', 1, NULL)::gc_log)$$);
RESET ROLE;

-- Row-level security: a policy that rejects the row rejects the write.
CREATE TABLE gc_rls (owner text, v text);
ALTER TABLE gc_rls ENABLE ROW LEVEL SECURITY;
CREATE POLICY gc_rls_own ON gc_rls USING (owner = current_user)
  WITH CHECK (owner = current_user);
GRANT INSERT, SELECT ON gc_rls TO gc_writer;
SET ROLE gc_writer;
SELECT child_txn.append('gc_rls', ROW('gc_writer', 'mine')::gc_rls);
SELECT gc_try($$SELECT child_txn.append('gc_rls', ROW('someone else', 'theirs')::gc_rls)$$);
SELECT * FROM gc_rls;
RESET ROLE;
SELECT * FROM gc_rls;

-- Triggers run as the writer, deferred ones too (not as the worker's
-- superuser at commit), and leave no session state behind for the next
-- write, perhaps another role's: a temporary table goes with its write.
CREATE TABLE gc_who (v text, who text);
CREATE FUNCTION gc_who_fn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.v = 'temp' THEN
    CREATE TEMP TABLE gc_leak AS SELECT 'secret'::text AS x;
  ELSIF NEW.v = 'peek' THEN
    PERFORM x FROM gc_leak;
  END IF;
  UPDATE gc_who SET who = current_user WHERE v = NEW.v;
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER gc_who_t AFTER INSERT ON gc_who
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION gc_who_fn();
GRANT INSERT, SELECT, UPDATE ON gc_who TO gc_writer;
SET ROLE gc_writer;
SELECT child_txn.append('gc_who', ROW('deferred', NULL)::gc_who);
RESET ROLE;
SELECT * FROM gc_who;
DROP TRIGGER gc_who_t ON gc_who;
CREATE TRIGGER gc_who_t AFTER INSERT ON gc_who
  FOR EACH ROW EXECUTE FUNCTION gc_who_fn();
SELECT gc_try($$SELECT child_txn.append('gc_who', ROW('temp', NULL)::gc_who)$$);
SELECT gc_try($$SELECT child_txn.append('gc_who', ROW('peek', NULL)::gc_who)$$);
SELECT v, who IS NOT NULL AS by_someone FROM gc_who ORDER BY v;
DROP TABLE gc_who;
DROP FUNCTION gc_who_fn();

-- A deferred trigger cannot defer work past its write (to the batch's
-- commit, where it would run as the worker): that write fails alone.
CREATE TABLE gc_d1 (v text);
CREATE TABLE gc_d2 (v text);
CREATE FUNCTION gc_d1_fn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  SET CONSTRAINTS ALL DEFERRED;
  INSERT INTO gc_d2 VALUES (NEW.v);
  RETURN NULL;
END $$;
CREATE FUNCTION gc_d2_fn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE gc_d2 SET v = v || ' by ' || current_user WHERE v = NEW.v;
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER gc_d1_t AFTER INSERT ON gc_d1
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION gc_d1_fn();
CREATE CONSTRAINT TRIGGER gc_d2_t AFTER INSERT ON gc_d2
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION gc_d2_fn();
SELECT gc_try($$SELECT child_txn.append('gc_d1', ROW('again')::gc_d1)$$);
SELECT count(*) AS d1, (SELECT count(*) FROM gc_d2) AS d2 FROM gc_d1;
DROP TABLE gc_d1, gc_d2;
DROP FUNCTION gc_d1_fn(), gc_d2_fn();

-- What outlives a rollback (a session advisory lock, a prepared statement)
-- is not kept by the worker after a failed write either.
CREATE TABLE gc_adv (v text);
CREATE FUNCTION gc_adv_fn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_lock(4242);
  PREPARE gc_leaked AS SELECT 1;
  RAISE EXCEPTION 'bad after locking';
END $$;
CREATE TRIGGER gc_adv_bi BEFORE INSERT ON gc_adv
  FOR EACH ROW EXECUTE FUNCTION gc_adv_fn();
SELECT gc_try($$SELECT child_txn.append('gc_adv', ROW('x')::gc_adv)$$);
SELECT pg_try_advisory_lock(4242) AS free_again;
SELECT pg_advisory_unlock(4242);
DROP TABLE gc_adv;
DROP FUNCTION gc_adv_fn();

-- A SECURITY DEFINER function appends as its owner.
CREATE FUNCTION gc_definer(v text) RETURNS void LANGUAGE sql SECURITY DEFINER
  AS $$ SELECT child_txn.append('gc_trig', ROW(v, NULL, NULL)::gc_trig) $$;
GRANT EXECUTE ON FUNCTION gc_definer(text) TO gc_reader;
SET ROLE gc_reader;
SELECT gc_definer('via definer');
RESET ROLE;
SELECT v, by_user = current_user AS by_owner FROM gc_trig WHERE v = 'via definer';

-- A trigger running in the group-commit worker cannot queue writes of its
-- own (the worker would wait for itself): that write fails alone, 0A000.
CREATE TABLE gc_fired (v text);
CREATE TABLE gc_firing (v text);
CREATE FUNCTION gc_firing_fn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM child_txn.append('gc_fired', ROW(NEW.v)::gc_fired);
  RETURN NEW;
END $$;
CREATE TRIGGER gc_firing_t AFTER INSERT ON gc_firing
  FOR EACH ROW WHEN (NEW.v LIKE 'relay%') EXECUTE FUNCTION gc_firing_fn();
SELECT gc_try($$SELECT child_txn.append('gc_firing', ROW('relay me')::gc_firing)$$);
SELECT child_txn.append('gc_firing', ROW('plain row')::gc_firing);
SELECT * FROM gc_firing;
SELECT count(*) AS fired FROM gc_fired;

-- A write whose caller stopped waiting (cancel, timeout) is still applied
-- or failed; its failure is reported later as such.
CREATE TABLE gc_slow (v text);
CREATE FUNCTION gc_slow_fn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_sleep(1.5);
  RAISE EXCEPTION 'slow and bad';
END $$;
CREATE TRIGGER gc_slow_bi BEFORE INSERT ON gc_slow
  FOR EACH ROW EXECUTE FUNCTION gc_slow_fn();
SET statement_timeout = '500ms';
SELECT child_txn.append('gc_slow', ROW('late')::gc_slow);
RESET statement_timeout;
\set VERBOSITY default
SELECT child_txn.flush();
\set VERBOSITY terse
DROP TABLE gc_slow;
DROP FUNCTION gc_slow_fn();

-- The statistics view.
SELECT database = current_database() AS db, batches > 0 AS batched,
       writes > 0 AS wrote, failures > 0 AS failed, deferrals > 0 AS deferred,
       mean_batch_rows > 0 AS mean_ok, max_batch_rows >= 1 AS max_ok,
       mean_commit_ms >= 0 AS commit_ok, queued
  FROM child_txn.group_commit_stats WHERE database = current_database();

DROP FUNCTION gc_definer(text);
DROP TABLE gc_rls, gc_trig, gc_cols, gc_other, gc_firing, gc_fired;
DROP FUNCTION gc_firing_fn();
DROP FUNCTION gc_trig_fn();
REVOKE ALL ON gc_log FROM gc_writer, gc_reader;
REVOKE ALL ON SEQUENCE gc_log_id_seq FROM gc_writer;
REVOKE USAGE ON SCHEMA child_txn FROM gc_writer, gc_reader;
DROP ROLE gc_writer, gc_reader;
