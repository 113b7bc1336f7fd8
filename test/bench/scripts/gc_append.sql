-- gc_append: the row goes through group commit; append() returns once the
-- batch holding it has committed durably.  Same table and row as plain.sql.
SELECT child_txn.append('bench_t', ROW(NULL, :client_id, 'x', NULL)::bench_t);
