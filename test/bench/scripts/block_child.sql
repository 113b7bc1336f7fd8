-- block_child: the same three statements in a child transaction
-- (child_txn.begin, three exec, child_txn.commit) inside a parent
-- transaction that does nothing else.
BEGIN;
SELECT child_txn.begin() AS h \gset
SELECT child_txn.exec(:h, $$INSERT INTO bench_t(client, payload) VALUES (:client_id, 'x')$$);
SELECT child_txn.exec(:h, $$UPDATE bench_t SET payload = 'y' WHERE id = (SELECT currval('bench_t_id_seq'))$$);
SELECT child_txn.exec(:h, $$SELECT payload FROM bench_t WHERE id = (SELECT currval('bench_t_id_seq'))$$);
SELECT child_txn.commit(:h);
COMMIT;
