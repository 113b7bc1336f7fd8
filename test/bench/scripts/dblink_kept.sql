-- dblink_kept: dblink with a persistent named connection per pgbench client,
-- the best case for dblink.  pgbench has no per-client setup hook, so the
-- connection is opened by the first transaction of each client: pgbench
-- variables are per client and survive between transactions, run.sh starts
-- every client with -D dblink_connected=0, and the \if costs no round trip.
-- (pgbench keeps one connection per client for the whole run unless -C.)
\if :dblink_connected = 0
SELECT dblink_connect('bench', ':connstr');
\set dblink_connected 1
\endif
SELECT dblink_exec('bench', $$INSERT INTO bench_t(client, payload) VALUES (:client_id, 'x')$$);
