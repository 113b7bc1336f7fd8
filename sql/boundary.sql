-- The C++/PostgreSQL error boundary, both ways.
\set SHOW_CONTEXT never
SELECT child_txn._boundary_destructors() AS before \gset
-- A PostgreSQL error raised under C++ frames keeps its SQLSTATE and message,
-- and the C++ destructors on the way run.
DO $$
DECLARE st text; msg text;
BEGIN
  PERFORM child_txn._boundary_selftest('pg_error');
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
  RAISE NOTICE '% %', st, msg;
END $$;
-- A C++ exception becomes an ordinary ERROR (XX000), std::bad_alloc an out
-- of memory error (53200), anything else thrown an XX000 too: never a crash.
CREATE FUNCTION pg_temp.try(kind text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; msg text;
BEGIN
  PERFORM child_txn._boundary_selftest(kind);
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
  RETURN st || ' ' || msg;
END $$;
SELECT k, pg_temp.try(k)
  FROM unnest(ARRAY['cxx_exception', 'bad_alloc', 'unknown', 'nonsense']) k;
SELECT child_txn._boundary_selftest('cxx_exception');
-- Each of the seven calls ran its destructor; the backend is still here.
SELECT child_txn._boundary_selftest('none') > 0 AS ok;
SELECT child_txn._boundary_destructors() - :before AS destructors_run;
DROP FUNCTION pg_temp.try(text);
-- The self test is not for ordinary users.
CREATE ROLE boundary_user;
SET ROLE boundary_user;
SELECT child_txn._boundary_selftest('none');
RESET ROLE;
DROP ROLE boundary_user;
