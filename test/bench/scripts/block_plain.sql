-- block_plain: three statements in one ordinary transaction (the floor for
-- block_child).
BEGIN;
INSERT INTO bench_t(client, payload) VALUES (:client_id, 'x');
UPDATE bench_t SET payload = 'y' WHERE id = (SELECT currval('bench_t_id_seq'));
SELECT payload FROM bench_t WHERE id = (SELECT currval('bench_t_id_seq'));
COMMIT;
