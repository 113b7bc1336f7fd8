-- plain: the floor.  One ordinary INSERT, autocommitted by the client's own
-- backend.  Not autonomous; it is what the same row costs with no extra
-- process or connection in the way.
INSERT INTO bench_t(client, payload) VALUES (:client_id, 'x');
