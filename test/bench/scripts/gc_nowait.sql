-- gc_nowait: fire-and-forget group commit; append() returns once the row is
-- queued.  run.sh flushes and waits for the queue to drain before counting.
SELECT child_txn.append('bench_t', ROW(NULL, :client_id, 'x', NULL)::bench_t, false);
