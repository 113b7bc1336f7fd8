-- gc_ceiling: the statement ceiling for fire-and-forget appends: a SELECT
-- that builds the same row value and discards it.  Writes nothing.
SELECT ROW(NULL, :client_id, 'x', NULL)::bench_t IS NULL;
