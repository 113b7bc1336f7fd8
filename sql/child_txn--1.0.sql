/* child_txn--1.0.sql: install script.  Objects go to schema child_txn. */

\echo Use "CREATE EXTENSION child_txn" to load this file. \quit

CREATE FUNCTION begin(isolation text DEFAULT NULL)
RETURNS integer
AS 'MODULE_PATHNAME', 'child_txn_begin'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION begin(text) IS
  'Start a child transaction of the current transaction (read committed, repeatable read or serializable); returns its handle.';

CREATE FUNCTION exec(handle integer, sql text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'child_txn_exec'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION exec(integer, text) IS
  'Run SQL in a child transaction; returns rows processed by the last statement.';

CREATE FUNCTION query(handle integer, sql text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'child_txn_query'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION query(integer, text) IS
  'Run a query in a child transaction and return its rows: SELECT * FROM child_txn.query(h, ''...'') AS t(col type, ...).';

CREATE FUNCTION commit(handle integer)
RETURNS void
AS 'MODULE_PATHNAME', 'child_txn_commit'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION commit(integer) IS
  'Commit a child transaction; its work stands whatever the parent does next.';

CREATE FUNCTION rollback(handle integer)
RETURNS void
AS 'MODULE_PATHNAME', 'child_txn_rollback'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION rollback(integer) IS 'Roll a child transaction back.';

CREATE FUNCTION run(sql text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'child_txn_run'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION run(text) IS
  'Run SQL as an autonomous transaction in a child worker; it commits on its own. Returns rows processed by the last statement.';

CREATE FUNCTION _children(
    OUT handle integer, OUT parent_handle integer, OUT parent_pid integer,
    OUT worker_pid integer, OUT database oid, OUT usesysid oid,
    OUT depth integer, OUT state text, OUT started timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'child_txn_children'
LANGUAGE C VOLATILE STRICT PARALLEL SAFE;

CREATE VIEW children AS
  SELECT c.handle, c.parent_handle, c.parent_pid, c.worker_pid, c.depth,
         c.state, d.datname AS database, r.rolname AS usename, c.started,
         a.query AS current_statement, a.wait_event_type, a.wait_event
    FROM child_txn._children() c
    LEFT JOIN pg_catalog.pg_database d ON d.oid = c.database
    LEFT JOIN pg_catalog.pg_roles r ON r.oid = c.usesysid
    LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = c.worker_pid;
COMMENT ON VIEW children IS 'Every open child transaction in the cluster.';

-- Group commit: autonomous writes applied in batches by a per-database worker.
CREATE FUNCTION append(rel regclass, "row" anyelement, wait boolean DEFAULT true)
RETURNS void
AS 'MODULE_PATHNAME', 'child_txn_append'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION append(regclass, anyelement, boolean) IS
  'Queue one row of the table''s row type for group commit, as an autonomous INSERT by the current role; waits until it is durable unless wait => false. NULL fields of columns with defaults take their default.';

CREATE FUNCTION append_rows(rel regclass, "rows" anyarray, wait boolean DEFAULT true)
RETURNS void
AS 'MODULE_PATHNAME', 'child_txn_append_rows'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION append_rows(regclass, anyarray, boolean) IS
  'Queue many rows as one group-commit write: all of them are written, or none.';

CREATE FUNCTION flush()
RETURNS void
AS 'MODULE_PATHNAME', 'child_txn_flush'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION flush() IS
  'Wait for every group-commit write this session queued; raise the first that failed.';

CREATE FUNCTION _group_commit_stats(
    OUT database oid, OUT worker_pid integer, OUT batches bigint,
    OUT writes bigint, OUT "rows" bigint, OUT deferrals bigint,
    OUT failures bigint, OUT retried_batches bigint,
    OUT mean_batch_rows float8, OUT max_batch_rows bigint,
    OUT mean_commit_ms float8, OUT max_commit_ms float8,
    OUT mean_write_latency_ms float8, OUT queued integer)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'child_txn_group_commit_stats'
LANGUAGE C VOLATILE STRICT PARALLEL SAFE;

CREATE VIEW group_commit_stats AS
  SELECT d.datname AS database, s.worker_pid, s.batches, s.writes, s.rows,
         s.deferrals, s.failures, s.retried_batches, s.mean_batch_rows,
         s.max_batch_rows, s.mean_commit_ms, s.max_commit_ms,
         s.mean_write_latency_ms, s.queued
    FROM child_txn._group_commit_stats() s
    LEFT JOIN pg_catalog.pg_database d ON d.oid = s.database;
COMMENT ON VIEW group_commit_stats IS
  'Group commit per database since server start (an idle database''s counts go when its entry is given to another, past 32 databases): batches, writes, rows, deferrals, failures, batch size and latency.';

-- Self test of the C++/PostgreSQL error boundary, for the regression suite.
CREATE FUNCTION _boundary_selftest(kind text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'child_txn_boundary_selftest'
LANGUAGE C VOLATILE STRICT;
CREATE FUNCTION _boundary_destructors()
RETURNS bigint
AS 'MODULE_PATHNAME', 'child_txn_boundary_destructors'
LANGUAGE C VOLATILE STRICT;
REVOKE ALL ON FUNCTION _boundary_selftest(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION _boundary_destructors() FROM PUBLIC;

GRANT USAGE ON SCHEMA child_txn TO PUBLIC;
GRANT SELECT ON children TO PUBLIC;
GRANT SELECT ON group_commit_stats TO PUBLIC;

-- The child_txn_heap table access method: heap on disk and for ordinary
-- sessions; in a child transaction, rows its ancestors wrote are visible as
-- they are to the ancestor (README "Seeing the parent's writes").
CREATE FUNCTION heap_handler(internal)
RETURNS table_am_handler
AS 'MODULE_PATHNAME', 'child_txn_heap_handler'
LANGUAGE C STRICT;
COMMENT ON FUNCTION heap_handler(internal) IS
  'Handler of the child_txn_heap table access method.';

CREATE ACCESS METHOD child_txn_heap TYPE TABLE HANDLER heap_handler;
COMMENT ON ACCESS METHOD child_txn_heap IS
  'Heap storage whose rows a child transaction sees as its parent does, uncommitted writes included.';
