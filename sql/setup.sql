-- Installing the extension, and what it creates.
CREATE EXTENSION child_txn;
SELECT extname, extversion, extnamespace::regnamespace FROM pg_extension
 WHERE extname = 'child_txn';
SELECT p.proname, p.pronargs, pg_get_function_result(p.oid) AS result
  FROM pg_proc p WHERE p.pronamespace = 'child_txn'::regnamespace
 ORDER BY 1, 2;
SELECT c.relname, c.relkind FROM pg_class c
 WHERE c.relnamespace = 'child_txn'::regnamespace ORDER BY 1;
-- Settings are reserved under child_txn.* and documented defaults hold.
SELECT name, setting, unit, context FROM pg_settings
 WHERE name LIKE 'child_txn.%' ORDER BY name;
SET child_txn.no_such_setting = 1;
-- No children are open.
SELECT count(*) FROM child_txn.children;
