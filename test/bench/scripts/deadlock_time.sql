-- Time from a parent's call to the 40P01 it gets back, when its child
-- updates a row the parent holds: 20 times, in one parent transaction.
-- Prints median and max in ms, and the child's deadlock_timeout.
CREATE TEMP TABLE dl_times (ms float8);
DROP TABLE IF EXISTS dl_row;
CREATE TABLE dl_row (id int PRIMARY KEY, v int);
INSERT INTO dl_row VALUES (1, 0);
DO $$
DECLARE t0 timestamptz;
BEGIN
  UPDATE dl_row SET v = v + 1 WHERE id = 1;
  FOR i IN 1 .. 20 LOOP
    t0 := clock_timestamp();
    BEGIN
      PERFORM child_txn.run('UPDATE dl_row SET v = 100 WHERE id = 1');
      RAISE EXCEPTION 'no deadlock reported';
    EXCEPTION WHEN deadlock_detected THEN
      INSERT INTO dl_times VALUES (extract(epoch FROM clock_timestamp() - t0) * 1000);
    END;
  END LOOP;
END $$;
SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1) AS median_ms,
       round(max(ms)::numeric, 1) AS max_ms,
       current_setting('child_txn.child_deadlock_timeout') AS child_deadlock_timeout,
       count(*) AS deadlocks
  FROM dl_times;
DROP TABLE dl_row;
