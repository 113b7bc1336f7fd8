-- dblink_new: the classic autonomous-transaction emulation.  Every call
-- opens a new libpq connection back to the same database (a new backend),
-- runs the INSERT there (committed by that backend), and disconnects.
-- :connstr is set by run.sh (-D connstr=...); pgbench substitutes it inside
-- the quotes too.
SELECT dblink_exec(':connstr', $$INSERT INTO bench_t(client, payload) VALUES (:client_id, 'x')$$);
