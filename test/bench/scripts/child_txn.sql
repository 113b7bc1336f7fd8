-- child_txn: the INSERT runs as an autonomous transaction through
-- child_txn.run(), which commits it on its own (in a background worker) and
-- returns the rows affected.  pgbench replaces :client_id everywhere in the
-- text, dollar quotes included (needs -M simple, which run.sh passes).
SELECT child_txn.run($$INSERT INTO bench_t(client, payload) VALUES (:client_id, 'x')$$);
