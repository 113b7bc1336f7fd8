-- gc_nowait_gather: gc_nowait with child_txn.nowait_batch_delay = 1 ms: the
-- worker lets writes nobody waits for gather for up to 1 ms before it
-- commits them (fewer, larger batches).  run.sh sets the line below for
-- these runs only.
-- server: child_txn.nowait_batch_delay = '1ms'
SELECT child_txn.append('bench_t', ROW(NULL, :client_id, 'x', NULL)::bench_t, false);
