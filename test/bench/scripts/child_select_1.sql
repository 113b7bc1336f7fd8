-- child_select_1: a diagnostic, not in any suite by default.  A child that
-- writes nothing and so flushes nothing: what child_txn.run() costs on top
-- of a statement of the caller's own (compare with select_1).
SELECT child_txn.run($$SELECT 1$$);
