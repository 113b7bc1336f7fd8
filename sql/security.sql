-- A child runs as its caller and can never do more than the caller could.
\set SHOW_CONTEXT never
SELECT current_user AS superuser_name \gset
CREATE ROLE ct_alice LOGIN;
CREATE ROLE ct_bob NOLOGIN;
CREATE ROLE ct_super SUPERUSER NOLOGIN;
GRANT ct_bob TO ct_alice;
CREATE TABLE secret (s text);
INSERT INTO secret VALUES ('top secret');
CREATE TABLE bobs (s text);
GRANT SELECT, INSERT ON bobs TO ct_bob;
CREATE TABLE sec_log (id serial, cur text, sess text, note text);
GRANT SELECT, INSERT ON sec_log TO PUBLIC;
GRANT USAGE ON SEQUENCE sec_log_id_seq TO PUBLIC;

\c - ct_alice
\set SHOW_CONTEXT never
-- The child cannot read what the caller cannot.
SELECT * FROM secret;
SELECT child_txn.run('SELECT * FROM secret');
-- Nor get there by resetting or setting its identity.
SELECT child_txn.run('RESET SESSION AUTHORIZATION; SELECT * FROM secret');
SELECT child_txn.run('SET SESSION AUTHORIZATION ct_super');
SELECT child_txn.run('SET ROLE ct_super');
SELECT child_txn.run('SET ROLE NONE; SELECT * FROM secret');
-- Roles the caller may take, the child may take too.
SELECT child_txn.run($$SET ROLE ct_bob; INSERT INTO bobs VALUES (current_user)$$);
SELECT child_txn.run($$INSERT INTO sec_log(cur, sess, note) VALUES (current_user, session_user, 'plain')$$);
-- A caller's SET ROLE carries over; RESET ROLE in the child goes back to the
-- caller's session user, exactly as it would in the caller.
SET ROLE ct_bob;
SELECT child_txn.run($$INSERT INTO sec_log(cur, sess, note) VALUES (current_user, session_user, 'after SET ROLE')$$);
SELECT child_txn.run($$RESET ROLE; INSERT INTO sec_log(cur, sess, note) VALUES (current_user, session_user, 'RESET ROLE in child')$$);
SELECT child_txn.run($$SELECT * FROM secret$$);
RESET ROLE;

\c - :superuser_name
\set SHOW_CONTEXT never
-- SECURITY DEFINER: the child runs as the function owner, under the same
-- restrictions (no SET ROLE / SESSION AUTHORIZATION inside).
CREATE FUNCTION bob_definer() RETURNS void SECURITY DEFINER LANGUAGE plpgsql AS $$
BEGIN
  PERFORM child_txn.run($q$INSERT INTO sec_log(cur, sess, note) VALUES (current_user, session_user, 'definer')$q$);
END $$;
CREATE FUNCTION bob_definer_escape(sql text) RETURNS void SECURITY DEFINER LANGUAGE plpgsql AS $$
BEGIN
  PERFORM child_txn.run(sql);
END $$;
ALTER FUNCTION bob_definer() OWNER TO ct_bob;
ALTER FUNCTION bob_definer_escape(text) OWNER TO ct_bob;
REVOKE ALL ON FUNCTION bob_definer(), bob_definer_escape(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION bob_definer(), bob_definer_escape(text) TO ct_alice;

\c - ct_alice
\set SHOW_CONTEXT never
SELECT bob_definer();
SELECT bob_definer_escape('SET ROLE ct_alice');
SELECT bob_definer_escape('RESET ROLE');
SELECT bob_definer_escape('SET SESSION AUTHORIZATION ct_alice');
SELECT bob_definer_escape('RESET SESSION AUTHORIZATION');
SELECT bob_definer_escape('SELECT * FROM secret');

\c - :superuser_name
\set SHOW_CONTEXT never
-- A superuser that switched to another session user: the child is that user.
-- RESET SESSION AUTHORIZATION inside the child stays that user (the child
-- never gets more than its caller has at the moment of the call).
SET SESSION AUTHORIZATION ct_alice;
SELECT child_txn.run($$INSERT INTO sec_log(cur, sess, note) VALUES (current_user, session_user, 'superuser as alice')$$);
SELECT child_txn.run('SELECT * FROM secret');
SELECT child_txn.run($$RESET SESSION AUTHORIZATION; INSERT INTO sec_log(cur, sess, note) VALUES (current_user, session_user, 'reset in child')$$);
RESET SESSION AUTHORIZATION;

SELECT cur, sess, note FROM sec_log ORDER BY id;
SELECT s FROM bobs;

DROP FUNCTION bob_definer(), bob_definer_escape(text);
DROP TABLE secret, bobs, sec_log;
DROP ROLE ct_alice, ct_bob, ct_super;
