#!/usr/bin/env bash
# Benchmark of the child_txn_heap access method (issue 5), against a
# throwaway cluster:
#  1. ordinary sessions: INSERT and UPDATE (100 rows per statement),
#     sequential scan and index scan on a child_txn_heap table against the
#     same on a heap table: one pgbench script per operation runs it on both
#     tables, interleaved, and pgbench -r gives each statement's mean
#     latency; the median over ROUNDS runs of the latency ratio is shown;
#  2. a child's sequential scan of 100,000 rows its parent inserted and has
#     not committed, against the parent's own scan of them (median of the
#     per-scan times, in one transaction).
#
#   bash test/bench/heap.sh              # ~3 minutes
#   QUICK=1 bash test/bench/heap.sh      # smoke run
#
# Knobs: DURATION (s per pgbench run), ROUNDS, SCANS (scans timed per side),
# BENCH_PORT, BENCH_USER, KEEP, PG_BINDIR.  As root, the server runs as
# BENCH_USER (postgres).  Results also go to test/bench/results/heap.md.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
if [ "${QUICK:-0}" = 1 ]; then
	DURATION=${DURATION:-3}; ROUNDS=${ROUNDS:-1}; SCANS=${SCANS:-5}
else
	DURATION=${DURATION:-15}; ROUNDS=${ROUNDS:-3}; SCANS=${SCANS:-21}
fi
BENCH_PORT=${BENCH_PORT:-55810}
BENCH_USER=${BENCH_USER:-postgres}
KEEP=${KEEP:-0}
RESULTS_DIR=$HERE/results

die() { printf 'heap.sh: ERROR: %s\n' "$*" >&2; exit 1; }
note() { printf '%s\n' "$*" >&2; }
mkdir -p "$RESULTS_DIR" || die "cannot write to $RESULTS_DIR"

if [ "$(id -u)" -eq 0 ]; then
	id "$BENCH_USER" >/dev/null 2>&1 || die "OS user '$BENCH_USER' does not exist"
	RUN_AS=$BENCH_USER
else
	RUN_AS=$(id -un)
fi
SCRATCH=$(mktemp -d /tmp/child_txn-heapbench.XXXXXX)
chmod 755 "$SCRATCH"
[ "$(id -u)" -ne 0 ] || chown "$RUN_AS:" "$SCRATCH"
DATA=$SCRATCH/data

as_pg() {
	local -a envv=("PATH=$PG_BINDIR:/usr/bin:/bin" "HOME=$SCRATCH" "LANG=C.UTF-8"
		"LC_ALL=C.UTF-8" "PGHOST=$SCRATCH" "PGPORT=$BENCH_PORT" "PGUSER=postgres"
		"PGDATABASE=bench")
	if [ "$(id -u)" -eq 0 ]; then
		(cd "$SCRATCH" && exec runuser -u "$RUN_AS" -- env -i "${envv[@]}" "$@")
	else
		(cd "$SCRATCH" && exec env -i "${envv[@]}" "$@")
	fi
}
psql_q() { as_pg "$PG_BINDIR/psql" -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }
cleanup() {
	local rc=$?
	trap - EXIT
	[ ! -f "$DATA/postmaster.pid" ] || as_pg "$PG_BINDIR/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null 2>&1 || true
	if [ "$KEEP" = 1 ]; then note "KEEP=1: left $SCRATCH"; else rm -rf "$SCRATCH"; fi
	exit "$rc"
}
trap cleanup EXIT

as_pg "$PG_BINDIR/initdb" -D "$DATA" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync \
	>"$SCRATCH/initdb.log" 2>&1 || { cat "$SCRATCH/initdb.log" >&2; die "initdb failed"; }
as_pg tee -a "$DATA/postgresql.conf" >/dev/null <<EOF
listen_addresses = ''
unix_socket_directories = '$SCRATCH'
port = $BENCH_PORT
shared_preload_libraries = 'child_txn'
max_worker_processes = 32
shared_buffers = 256MB
max_wal_size = 8GB
checkpoint_timeout = 1h
autovacuum = off
# The access method is under test, not the disk: commits do not wait for
# their WAL flush (fsync noise would swamp a 3% margin).
synchronous_commit = off
EOF
as_pg "$PG_BINDIR/pg_ctl" -D "$DATA" -l "$SCRATCH/server.log" -w start >/dev/null ||
	die "the server did not start"
psql_q -d postgres -c "CREATE DATABASE bench"
psql_q <<'EOF'
CREATE EXTENSION child_txn;
CREATE TABLE t_heap (id int PRIMARY KEY, v int, pad text) USING heap;
CREATE TABLE t_cth (id int PRIMARY KEY, v int, pad text) USING child_txn_heap;
INSERT INTO t_heap SELECT g, 0, repeat('x', 50) FROM generate_series(1, 100000) g;
INSERT INTO t_cth SELECT g, 0, repeat('x', 50) FROM generate_series(1, 100000) g;
CREATE TABLE ins_heap (id bigserial PRIMARY KEY, v int) USING heap;
CREATE TABLE ins_cth (id bigserial PRIMARY KEY, v int) USING child_txn_heap;
VACUUM ANALYZE;
EOF

# pgbench scripts: each runs the statement on both tables, interleaved
# statement by statement and in both orders (heap, cth, cth, heap), so that
# the machine's drift hits both alike; pgbench -r reports each statement's
# mean latency.
mkdir -p "$SCRATCH/scripts"
stmt() {
	case "$1" in
	insert) printf 'INSERT INTO ins_%s (v) SELECT 1 FROM generate_series(1, 100);\n' "$2" ;;
	update) printf 'UPDATE t_%s SET v = v + 1 WHERE id BETWEEN :id AND :id + 99;\n' "$2" ;;
	seqscan) printf 'SELECT count(*) FROM t_%s;\n' "$2" ;;
	indexscan) printf 'SELECT v FROM t_%s WHERE id = :id;\n' "$2" ;;
	esac
}
for op in insert update seqscan indexscan; do
	{
		printf '\\set id random(1, 99900)\n'
		stmt $op heap; stmt $op cth; stmt $op cth; stmt $op heap
	} >"$SCRATCH/scripts/$op.sql"
done
chmod -R a+r "$SCRATCH/scripts"

# Mean latency (ms) per access method, from pgbench -r output on stdin.
latencies() {
	awk '/statement latencies/ {on = 1; next}
		on && /_heap/ {h += $1; nh++}
		on && /_cth/ {c += $1; nc++}
		END {if (nh && nc) printf "%.4f %.4f\n", h / nh, c / nc}'
}

declare -A HEAP_MS CTH_MS RATIO
for round in $(seq 1 "$ROUNDS"); do
	for op in seqscan indexscan insert update; do
		psql_q -c "VACUUM" -c "CHECKPOINT" >/dev/null
		read -r h c < <(as_pg "$PG_BINDIR/pgbench" -n -M prepared -r -c 1 -j 1 -T "$DURATION" \
			-f "$SCRATCH/scripts/$op.sql" 2>&1 | latencies) || die "pgbench failed for $op"
		HEAP_MS[$op]="${HEAP_MS[$op]:-} $h"
		CTH_MS[$op]="${CTH_MS[$op]:-} $c"
		RATIO[$op]="${RATIO[$op]:-} $(awk -v a="$c" -v b="$h" 'BEGIN {print a / b}')"
		note "round $round: $op: heap $h ms, child_txn_heap $c ms"
	done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# The child's scan of its parent's 100,000 uncommitted rows, against the
# parent's own scan of them: per-scan times, medians, in one transaction.
scan=$(psql_q <<EOF
CREATE TABLE t_intents (id int, v int, pad text) USING child_txn_heap;
BEGIN;
INSERT INTO t_intents SELECT g, 0, repeat('x', 50) FROM generate_series(1, 100000) g;
SELECT set_config('bench.h', child_txn.begin()::text, false) IS NOT NULL;
CREATE TEMP TABLE times (who text, ms float8);
DO \$\$
DECLARE t0 timestamptz; n bigint; h int := current_setting('bench.h')::int;
BEGIN
  FOR i IN 1..$SCANS LOOP
    t0 := clock_timestamp();
    SELECT count(*) INTO n FROM t_intents;
    INSERT INTO times VALUES ('parent', extract(epoch FROM clock_timestamp() - t0) * 1000);
    IF n <> 100000 THEN RAISE EXCEPTION 'parent counted %', n; END IF;
    t0 := clock_timestamp();
    SELECT c INTO n FROM child_txn.query(h, 'SELECT count(*) FROM t_intents') AS r(c bigint);
    INSERT INTO times VALUES ('child', extract(epoch FROM clock_timestamp() - t0) * 1000);
    IF n <> 100000 THEN RAISE EXCEPTION 'child counted %', n; END IF;
  END LOOP;
END \$\$;
SELECT string_agg(format('%s %s', who, round(m::numeric, 2)), ' ')
  FROM (SELECT who, percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS m FROM times GROUP BY who) s;
SELECT child_txn.rollback(current_setting('bench.h')::int);
ROLLBACK;
EOF
)
scan=$(printf '%s\n' "$scan" | grep '^child\|^parent' | head -1)
child_ms=$(printf '%s\n' "$scan" | sed -n 's/.*child \([0-9.]*\).*/\1/p')
parent_ms=$(printf '%s\n' "$scan" | sed -n 's/.*parent \([0-9.]*\).*/\1/p')

{
	echo "# child_txn_heap benchmark ($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, median of $ROUNDS runs of ${DURATION}s per operation, 1 client)"
	echo
	echo "| operation (ordinary session) | heap ms | child_txn_heap ms | time ratio |"
	echo "|---|---:|---:|---:|"
	for op in insert update seqscan indexscan; do
		printf '| %s | %.4f | %.4f | %.3f |\n' "$op" "$(echo "${HEAP_MS[$op]}" | median)" \
			"$(echo "${CTH_MS[$op]}" | median)" "$(echo "${RATIO[$op]}" | median)"
	done
	echo
	echo "| seq scan of 100,000 uncommitted parent rows | median ms |"
	echo "|---|---:|"
	echo "| parent's own scan | $parent_ms |"
	echo "| child's scan (query() round trip included) | $child_ms |"
	printf '| ratio child / parent | %.2f |\n' "$(awk -v a="$child_ms" -v b="$parent_ms" 'BEGIN {print a / b}')"
} | tee "$RESULTS_DIR/heap.md"
