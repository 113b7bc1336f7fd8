-- select_1: a diagnostic, not in any suite by default.  The cheapest
-- statement round trip between pgbench and its backend, nothing written:
-- the floor for child_select_1.
SELECT 1;
