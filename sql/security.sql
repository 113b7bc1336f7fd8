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

-- The next child on that worker, of a session that never switched, is
-- checked against its own session user: SET ROLE to a role ct_alice is not
-- a member of works (the worker must not keep ct_alice as session user).
CREATE ROLE ct_carol NOLOGIN;
GRANT INSERT ON sec_log TO ct_carol;
SET ROLE ct_carol;
SELECT child_txn.run($$INSERT INTO sec_log(cur, sess, note) VALUES (current_user, session_user, 'role not of alice')$$);
RESET ROLE;

SELECT cur, sess, note FROM sec_log ORDER BY id;

-- Only the role (and security context) that began a child can drive or
-- end it.  A handle begun in a SECURITY DEFINER function does not let its
-- caller run statements as the function's owner, nor throw its work away;
-- the end of the transaction rolls it back (with a WARNING).
CREATE FUNCTION super_begin() RETURNS int SECURITY DEFINER LANGUAGE sql
  AS 'SELECT child_txn.begin()';
GRANT EXECUTE ON FUNCTION super_begin() TO ct_alice;
CREATE FUNCTION drive(h int, sql text) RETURNS bigint SECURITY DEFINER LANGUAGE sql
  AS 'SELECT child_txn.exec(h, sql)';
GRANT EXECUTE ON FUNCTION drive(int, text) TO ct_alice;
-- The same with functions of ct_alice's own: a child begun inside one can
-- be used after it returns; one begun outside cannot be driven inside one
-- (SET ROLE, refused there, could be run through the child).
CREATE FUNCTION alice_begin() RETURNS int SECURITY DEFINER LANGUAGE sql
  AS 'SELECT child_txn.begin()';
CREATE FUNCTION alice_drive(h int, sql text) RETURNS bigint SECURITY DEFINER LANGUAGE sql
  AS 'SELECT child_txn.exec(h, sql)';
ALTER FUNCTION alice_begin() OWNER TO ct_alice;
ALTER FUNCTION alice_drive(int, text) OWNER TO ct_alice;
\c - ct_alice
\set SHOW_CONTEXT never
BEGIN;
SELECT super_begin() AS h \gset
SAVEPOINT s;
SELECT child_txn.exec(:h, 'SELECT * FROM secret');
ROLLBACK TO s;
SELECT * FROM child_txn.query(:h, 'SELECT * FROM secret') AS t(s text);
ROLLBACK TO s;
SELECT child_txn.commit(:h);
ROLLBACK TO s;
SELECT child_txn.rollback(:h);
ROLLBACK TO s;
-- Nor the other way round: the caller's child inside a definer function,
-- or after SET ROLE.
SELECT child_txn.begin() AS h \gset
SELECT drive(:h, 'SELECT 1');
ROLLBACK TO s;
SET ROLE ct_bob;
SELECT child_txn.exec(:h, 'SELECT 1');
ROLLBACK TO s;
RESET ROLE;
SELECT child_txn.exec(:h, 'SELECT 1');
SELECT alice_drive(:h, 'SET ROLE ct_bob');
ROLLBACK TO s;
SELECT child_txn.commit(:h);
SELECT alice_begin() AS h \gset
SELECT child_txn.exec(:h, $$SELECT current_user$$);
SELECT alice_drive(:h, 'SELECT 1');
SELECT child_txn.commit(:h);
COMMIT;
\c - :superuser_name
\set SHOW_CONTEXT never
DROP FUNCTION super_begin(), drive(int, text), alice_begin(), alice_drive(int, text);
-- Code running in a security-restricted operation (an index expression
-- during CREATE INDEX, run as the table's owner) cannot drive the
-- session's child, even with the same owner.
CREATE TABLE idx_t (a int);
INSERT INTO idx_t VALUES (1);
CREATE FUNCTION sneaky(a int) RETURNS int IMMUTABLE LANGUAGE plpgsql AS $$
BEGIN
  PERFORM child_txn.exec(current_setting('ct.h')::int, 'SELECT 1');
  RETURN a;
END $$;
BEGIN;
SELECT child_txn.begin() AS h \gset
SELECT set_config('ct.h', :'h', true) IS NOT NULL AS handle_set;
SAVEPOINT s;
CREATE INDEX ON idx_t (sneaky(a));
ROLLBACK TO s;
SELECT child_txn.exec(:h, 'SELECT 1');
SELECT child_txn.rollback(:h);
COMMIT;
DROP TABLE idx_t;
DROP FUNCTION sneaky(int);
SELECT s FROM bobs;

DROP FUNCTION bob_definer(), bob_definer_escape(text);
DROP TABLE secret, bobs, sec_log;
DROP ROLE ct_alice, ct_bob, ct_carol, ct_super;
