#!/usr/bin/env bash
# Benchmark: one autonomous single-row INSERT per transaction, four ways
# (plain INSERT as the floor, child_txn.run, dblink with a new connection per
# call, dblink with a kept connection), measured with pgbench against a
# throwaway PostgreSQL 15 cluster with durable commits.  See README.md here.
#
#   bash test/bench/run.sh                 # default run (~3-4 minutes)
#   QUICK=1 bash test/bench/run.sh         # smoke run (~40 s)
#
# Knobs (environment): CLIENTS, DURATION, ROUNDS, METHODS, WARMUP, QUICK,
# BENCH_PORT, BENCH_USER, KEEP, PG_BINDIR.  Run as root or as a normal user;
# as root the server and pgbench run as the OS user `postgres`.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
	DURATION=${DURATION:-3}
	ROUNDS=${ROUNDS:-1}
else
	DURATION=${DURATION:-10}
	ROUNDS=${ROUNDS:-2}
fi
# SUITE picks the default methods and client counts: child (child
# transactions against dblink), gc (group commit), or all.
SUITE=${SUITE:-all}
case "$SUITE" in
child)
	DEF_CLIENTS="1 8"
	DEF_METHODS="plain child_txn dblink_new dblink_kept block_plain block_child"
	;;
gc)
	DEF_CLIENTS="1 32"
	DEF_METHODS="plain gc_append gc_nowait gc_nowait_gather gc_ceiling"
	;;
all)
	DEF_CLIENTS="1 8 32"
	DEF_METHODS="plain child_txn dblink_new dblink_kept block_plain block_child gc_append gc_nowait gc_nowait_gather gc_ceiling"
	;;
*) printf 'run.sh: ERROR: SUITE must be child, gc or all\n' >&2; exit 1 ;;
esac
CLIENTS=${CLIENTS:-$DEF_CLIENTS}
METHODS=${METHODS:-$DEF_METHODS}
WARMUP=${WARMUP:-1}
BENCH_PORT=${BENCH_PORT:-55800}
BENCH_USER=${BENCH_USER:-postgres}
KEEP=${KEEP:-0}
RESULTS_DIR=$HERE/results
DB=bench
DBUSER=postgres

die() {
	printf 'run.sh: ERROR: %s\n' "$*" >&2
	exit 1
}
note() { printf '%s\n' "$*" >&2; }

is_uint() { case "$1" in '' | *[!0-9]*) return 1 ;; *) return 0 ;; esac; }
is_pos() { is_uint "$1" && [ "$1" -gt 0 ]; }
is_pos "$DURATION" || die "DURATION must be a positive integer (seconds)"
is_pos "$ROUNDS" || die "ROUNDS must be a positive integer"
is_uint "$WARMUP" || die "WARMUP must be a non-negative integer (seconds)"
is_uint "$BENCH_PORT" || die "BENCH_PORT must be a port number"
for c in $CLIENTS; do
	is_pos "$c" || die "CLIENTS must be positive integers, got '$c'"
done
for m in $METHODS; do
	[ -f "$HERE/scripts/$m.sql" ] || die "unknown method '$m' (no $HERE/scripts/$m.sql)"
done
case " $METHODS " in *" plain "*) ;; *) note "note: METHODS has no 'plain'; the ratio columns will be empty" ;; esac
for b in initdb pg_ctl psql pgbench; do
	[ -x "$PG_BINDIR/$b" ] || die "$PG_BINDIR/$b not found (set PG_BINDIR)"
done

if ! mkdir -p "$RESULTS_DIR" 2>/dev/null || [ ! -w "$RESULTS_DIR" ]; then
	die "cannot write to $RESULTS_DIR (run as a user who can, or as root)"
fi

# ---------------------------------------------------------------------------
# Running things as the server's OS user.  PostgreSQL refuses to run as root,
# so as root everything that touches the cluster runs as $BENCH_USER; as a
# normal user it runs as ourselves.
if [ "$(id -u)" -eq 0 ]; then
	id "$BENCH_USER" >/dev/null 2>&1 || die "OS user '$BENCH_USER' does not exist (set BENCH_USER)"
	[ "$BENCH_USER" != root ] || die "BENCH_USER must not be root"
	RUN_AS=$BENCH_USER
else
	RUN_AS=$(id -un)
fi

SCRATCH=
DATA=

as_pg() {
	local -a envv=(
		"PATH=$PG_BINDIR:/usr/local/bin:/usr/bin:/bin"
		"HOME=$SCRATCH" "USER=$RUN_AS" "LOGNAME=$RUN_AS"
		"LANG=C.UTF-8" "LC_ALL=C.UTF-8" "TZ=UTC"
		"PGHOST=$SCRATCH" "PGPORT=$BENCH_PORT" "PGUSER=$DBUSER" "PGDATABASE=$DB"
	)
	if [ "$(id -u)" -eq 0 ]; then
		(cd "$SCRATCH" && exec runuser -u "$RUN_AS" -- env -i "${envv[@]}" "$@")
	else
		(cd "$SCRATCH" && exec env -i "${envv[@]}" "$@")
	fi
}
psql_q() { as_pg "$PG_BINDIR/psql" -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }

server_started=0

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ "$server_started" = 1 ] && [ -f "$DATA/postmaster.pid" ]; then
		as_pg "$PG_BINDIR/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null 2>&1 ||
			as_pg "$PG_BINDIR/pg_ctl" -D "$DATA" -m immediate -w stop >/dev/null 2>&1 || true
	fi
	if [ -z "$SCRATCH" ]; then
		:
	elif [ "$KEEP" = 1 ]; then
		note "KEEP=1: left $SCRATCH (cluster stopped; logs and pgbench output inside)"
	else
		rm -rf "$SCRATCH"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

SCRATCH=$(mktemp -d /tmp/child_txn-bench.XXXXXX)
chmod 755 "$SCRATCH"
if [ "$(id -u)" -eq 0 ]; then
	chown "$RUN_AS:" "$SCRATCH"
fi
DATA=$SCRATCH/data
SERVER_LOG=$SCRATCH/server.log

# ---------------------------------------------------------------------------
# The cluster.  Unix socket only, in the scratch directory: the port is part
# of the socket's name, so it can never collide with another server.
note "scratch: $SCRATCH"
as_pg "$PG_BINDIR/initdb" -D "$DATA" -U "$DBUSER" -A trust -E UTF8 --locale=C.UTF-8 \
	--no-sync >"$SCRATCH/initdb.log" 2>&1 || {
	cat "$SCRATCH/initdb.log" >&2
	die "initdb failed"
}
as_pg tee -a "$DATA/postgresql.conf" >/dev/null <<EOF

# --- child_txn benchmark (test/bench/run.sh) ---
listen_addresses = ''
unix_socket_directories = '$SCRATCH'
port = $BENCH_PORT
shared_preload_libraries = 'child_txn'
max_worker_processes = 64
max_connections = 100
# Durability on: the commit of every INSERT waits for its WAL flush.
fsync = on
synchronous_commit = on
full_page_writes = on
# Keep checkpoints and autovacuum out of the measured runs (run.sh issues a
# CHECKPOINT before every run instead).
max_wal_size = 8GB
checkpoint_timeout = 1h
autovacuum = off
log_min_messages = warning
log_line_prefix = '%m [%p] %b '
EOF
server_started=1
as_pg "$PG_BINDIR/pg_ctl" -D "$DATA" -l "$SERVER_LOG" -w -t 60 start >/dev/null 2>&1 || {
	tail -n 30 "$SERVER_LOG" >&2 || true
	die "the server did not start (log above)"
}

psql_q -d postgres -c "CREATE DATABASE $DB" || die "CREATE DATABASE failed"
psql_q <<'EOF' || die "setting up the benchmark database failed (is child_txn installed?)"
CREATE EXTENSION child_txn;
CREATE EXTENSION dblink;
CREATE TABLE bench_t (
    id      bigserial PRIMARY KEY,
    client  int,
    payload text,
    at      timestamptz DEFAULT now()
);
EOF

# pgbench options common to every run.  -M simple: pgbench then substitutes
# :variables textually, also inside the quoted SQL strings of the scripts.
CONNSTR="host=$SCRATCH port=$BENCH_PORT dbname=$DB user=$DBUSER"
PGBENCH_COMMON=(-n -M simple -D "connstr=$CONNSTR" -D dblink_connected=0)

threads_for() { if [ "$1" -lt 2 ]; then echo "$1"; else echo 2; fi; }

# Copies of the scripts the server's user can certainly read.
mkdir -p "$SCRATCH/scripts" "$SCRATCH/runs" "$SCRATCH/agg"
for m in $METHODS; do cp "$HERE/scripts/$m.sql" "$SCRATCH/scripts/"; done
if [ "$(id -u)" -eq 0 ]; then chown -R "$RUN_AS:" "$SCRATCH/scripts" "$SCRATCH/runs"; fi

server_alive() { as_pg "$PG_BINDIR/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

# ---------------------------------------------------------------------------
# Header.
PGBENCH_VERSION=$(as_pg "$PG_BINDIR/pgbench" --version)
SERVER_VERSION=$(psql_q -c "SELECT version()")
EXT_VERSION=$(psql_q -c "SELECT extversion FROM pg_extension WHERE extname = 'child_txn'")
SETTINGS=$(psql_q -F ' = ' -c "SELECT name, setting || coalesce(unit, '') FROM pg_settings
	WHERE name IN ('fsync', 'synchronous_commit', 'wal_sync_method', 'full_page_writes',
	  'shared_buffers', 'max_worker_processes', 'max_connections',
	  'shared_preload_libraries', 'autovacuum', 'max_wal_size', 'checkpoint_timeout')
	ORDER BY name" | sed 's/^/    /')
SO=$("$PG_BINDIR/pg_config" --pkglibdir)/child_txn.so
so_sha() { if [ -f "$SO" ]; then sha256sum "$SO" | cut -c1-12; else echo none; fi; }
SO_SHA_AT_START=$(so_sha)
if [ -f "$SO" ]; then
	SO_INFO="$SO (sha256 $SO_SHA_AT_START, modified $(date -u -r "$SO" '+%Y-%m-%d %H:%M:%S UTC'))"
else
	SO_INFO="$SO (not found?)"
fi
GIT_INFO=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
	GIT_INFO="$GIT_INFO + uncommitted changes"
fi

HEADER_FILE=$SCRATCH/header.txt
cat >"$HEADER_FILE" <<EOF
child_txn benchmark: one autonomous single-row INSERT per transaction (suite: $SUITE)
  date:      $(date -u '+%Y-%m-%d %H:%M:%S UTC'), host $(hostname), $(nproc) CPUs
  pgbench:   $PGBENCH_VERSION
  server:    $SERVER_VERSION
  child_txn: extension $EXT_VERSION, installed library $SO_INFO
  work tree: $REPO at $GIT_INFO (the installed build is what is measured)
  pgbench:   pgbench ${PGBENCH_COMMON[*]:0:3} -T $DURATION -c N -j min(N,2) -l -f scripts/METHOD.sql
             (-D connstr='$CONNSTR' -D dblink_connected=0)
  runs:      clients {${CLIENTS// /, }} x methods {${METHODS// /, }}, $ROUNDS round(s) of ${DURATION}s each,
             interleaved (round > clients > methods, method order reversed in even rounds),
             ${WARMUP}s unrecorded warm-up per method first; TRUNCATE + CHECKPOINT before every run
  server:    Unix socket only, cluster in $SCRATCH (removed afterwards),
             on $(df -PT "$SCRATCH" | awk 'NR == 2 { print $2 " (" $1 ")" }')
$SETTINGS
EOF
cat "$HEADER_FILE"
echo

# ---------------------------------------------------------------------------
# One pgbench run.  Appends its latencies (microseconds) to agg/METHOD.C.lat
# and one line to runs.tsv:
#   method clients round rc tps logged_txns non_numeric rows
RUNS_TSV=$SCRATCH/runs.tsv
: >"$RUNS_TSV"
: >"$SCRATCH/failures.txt"

# A method's script may ask for server settings for its runs, one per line:
#   -- server: child_txn.nowait_batch_delay = '1ms'
# run_one sets them (ALTER SYSTEM, reload) before the run and resets them
# after it.  server_settings METHOD set|reset
server_settings() {
	local m=$1 how=$2 line name
	local -i n=0
	while IFS= read -r line; do
		name=${line%%=*}
		name=${name// /}
		if [ "$how" = set ]; then
			psql_q -c "ALTER SYSTEM SET $line" || die "$m: ALTER SYSTEM SET $line failed"
		else
			psql_q -c "ALTER SYSTEM RESET $name" || die "$m: ALTER SYSTEM RESET $name failed"
		fi
		n+=1
	done < <(sed -n 's/^-- server: *//p' "$SCRATCH/scripts/$m.sql")
	if [ "$n" -gt 0 ]; then
		psql_q -c "SELECT pg_reload_conf()" >/dev/null || die "reload failed"
		sleep 0.5 # background workers reread the file at their next wake-up
	fi
}

run_one() {
	local m=$1 c=$2 round=$3 dur=$4 record=$5
	local tag="$m.c$c.r$round" j rc=0 tps logged nonnum rows
	j=$(threads_for "$c")
	local dir=$SCRATCH/runs/$tag
	as_pg mkdir -p "$dir"

	server_alive || {
		tail -n 40 "$SERVER_LOG" >&2 || true
		die "the server is not running before $tag (server log above)"
	}
	psql_q -c "TRUNCATE bench_t RESTART IDENTITY" -c "CHECKPOINT" ||
		die "TRUNCATE/CHECKPOINT failed before $tag"

	local log_lines_before xid_before xid_after xids
	log_lines_before=$(wc -l <"$SERVER_LOG")
	server_settings "$m" set
	xid_before=$(psql_q -c "SELECT txid_current()")
	as_pg "$PG_BINDIR/pgbench" "${PGBENCH_COMMON[@]}" -T "$dur" -c "$c" -j "$j" \
		-l --log-prefix="$dir/txn" -f "$SCRATCH/scripts/$m.sql" \
		>"$dir/stdout" 2>"$dir/stderr" || rc=$?

	# Fire-and-forget writes may still be queued: wait until they are in.
	local drained=0
	for _ in $(seq 1 600); do
		if [ "$(psql_q -c "SELECT coalesce(sum(queued), 0) FROM child_txn.group_commit_stats")" = 0 ]; then
			drained=1
			break
		fi
		sleep 0.1
	done
	[ "$drained" = 1 ] || note "warning: the group-commit queue did not drain after $tag"
	xid_after=$(psql_q -c "SELECT txid_current()")
	server_settings "$m" reset
	# transaction ids consumed by the run (not counting the two probes)
	xids=$((xid_after - xid_before - 1))

	[ "$record" = 1 ] || return 0

	tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p' "$dir/stdout")
	[ -n "$tps" ] || tps=NaN
	# Per-transaction log: "client txn_no latency_us script_no epoch us".
	cat "$dir"/txn.* >"$SCRATCH/txn.tmp" 2>/dev/null || : >"$SCRATCH/txn.tmp"
	awk '$3 ~ /^[0-9]+$/ { print $3 }' "$SCRATCH/txn.tmp" >>"$SCRATCH/agg/$m.$c.lat"
	logged=$(awk '$3 ~ /^[0-9]+$/ { n++ } END { print n + 0 }' "$SCRATCH/txn.tmp")
	nonnum=$(awk '$3 !~ /^[0-9]+$/ { n++ } END { print n + 0 }' "$SCRATCH/txn.tmp")
	rows=$(psql_q -c "SELECT count(*) FROM bench_t" 2>/dev/null || echo NaN)
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$m" "$c" "$round" "$rc" "$tps" \
		"$logged" "$nonnum" "$rows" "$xids" >>"$RUNS_TSV"

	local status=ok
	if [ "$rc" != 0 ] || grep -q 'aborted' "$dir/stderr"; then
		status=FAILED
		{
			printf '%s, %s client(s), round %s: pgbench exit code %s\n' "$m" "$c" "$round" "$rc"
			grep -m 20 -v '^pgbench (' "$dir/stderr" | sed 's/^/    /'
			local new_server_lines
			new_server_lines=$(tail -n +"$((log_lines_before + 1))" "$SERVER_LOG" |
				grep -E 'ERROR|FATAL|PANIC|terminated by signal|exited with exit code' | head -n 10 || true)
			if [ -n "$new_server_lines" ]; then
				printf '    server log during the run:\n'
				printf '%s\n' "$new_server_lines" | sed 's/^/      /'
			fi
		} >>"$SCRATCH/failures.txt"
	elif [ "$m" != gc_ceiling ] && [ "$m" != select_1 ] && [ "$m" != child_select_1 ] &&
		[ "$rows" != "$logged" ]; then
		# (gc_ceiling, select_1 and child_select_1 write nothing)
		status="ROWS MISMATCH"
		printf '%s, %s client(s), round %s: %s transactions logged but %s rows in bench_t\n' \
			"$m" "$c" "$round" "$logged" "$rows" >>"$SCRATCH/failures.txt"
	fi
	printf '  round %s  %-12s clients %-3s tx/s %9s  txns %7s  rows %7s  %s\n' \
		"$round" "$m" "$c" "$(awk -v t="$tps" 'BEGIN { if (t == "NaN") print t; else printf "%.1f", t }')" \
		"$logged" "$rows" "$status" >&2
}

read -r -a METHOD_LIST <<<"$METHODS"
read -r -a CLIENT_LIST <<<"$CLIENTS"

if [ "$WARMUP" -gt 0 ]; then
	note "warm-up (${WARMUP}s per method, 1 client, not recorded)"
	for m in "${METHOD_LIST[@]}"; do
		run_one "$m" 1 0 "$WARMUP" 0
	done
fi

total=$((ROUNDS * ${#CLIENT_LIST[@]} * ${#METHOD_LIST[@]}))
note "measuring: $total runs of ${DURATION}s"
for ((r = 1; r <= ROUNDS; r++)); do
	if ((r % 2 == 1)); then
		order=("${METHOD_LIST[@]}")
	else
		order=()
		for ((i = ${#METHOD_LIST[@]} - 1; i >= 0; i--)); do order+=("${METHOD_LIST[i]}"); done
	fi
	for c in "${CLIENT_LIST[@]}"; do
		for m in "${order[@]}"; do
			run_one "$m" "$c" "$r" "$DURATION" 1
		done
	done
done
echo >&2

# ---------------------------------------------------------------------------
# Aggregate: tx/s = mean over rounds of pgbench's tps (without connection
# time); median and p95 = nearest-rank percentiles of all transactions'
# latencies pooled over the rounds.
SUMMARY=$SCRATCH/summary.tsv # method clients tps median_ms p95_ms txns notes
: >"$SUMMARY"
for c in "${CLIENT_LIST[@]}"; do
	for m in "${METHOD_LIST[@]}"; do
		lat=$SCRATCH/agg/$m.$c.lat
		tps=$(awk -F'\t' -v m="$m" -v c="$c" '$1 == m && $2 == c && $5 != "NaN" { s += $5; n++ }
			END { if (n) printf "%.1f", s / n; else print "NaN" }' "$RUNS_TSV")
		notes=$(awk -F'\t' -v m="$m" -v c="$c" '$1 == m && $2 == c {
				if ($4 != 0) f = f (f ? "," : "") $3
				else if (m != "gc_ceiling" && m != "select_1" && m != "child_select_1" && $6 != $8) x = x (x ? "," : "") $3
			}
			END {
				s = ""
				if (f) s = "FAILED in round " f
				if (x) s = s (s ? "; " : "") "row count != txns in round " x
				print s
			}' "$RUNS_TSV")
		if [ -s "$lat" ]; then
			read -r med p95 n < <(sort -n "$lat" | awk '{ v[NR] = $1 }
				END {
					i = int((NR * 50 + 99) / 100); j = int((NR * 95 + 99) / 100)
					printf "%.3f %.3f %d\n", v[i] / 1000, v[j] / 1000, NR
				}')
		else
			med=NaN p95=NaN n=0
		fi
		xk=$(awk -F'\t' -v m="$m" -v c="$c" '$1 == m && $2 == c && $9 != "" { x += $9; r += $8 }
			END { if (r > 0) printf "%.0f", x * 10000 / r; else print "-" }' "$RUNS_TSV")
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$m" "$c" "$tps" "$med" "$p95" "$n" "$notes" "$xk" >>"$SUMMARY"
	done
done

TABLE=$SCRATCH/table.md
awk -F'\t' '
	function ratio(a, b) { return (a == "NaN" || b == "NaN" || b + 0 == 0) ? "" : sprintf("%.2fx", a / b) }
	{ m[NR] = $1; c[NR] = $2; tps[NR] = $3; med[NR] = $4; p95[NR] = $5; n[NR] = $6; notes[NR] = $7; xk[NR] = $8
	  if ($1 == "plain") { ptps[$2] = $3; pmed[$2] = $4 }
	  if (notes[NR] != "") anynotes = 1 }
	END {
		hdr = "| method | clients | tx/s | median ms | p95 ms | median vs plain | tx/s vs plain | txns | xids per 10k rows |"
		sep = "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
		if (anynotes) { hdr = hdr " notes |"; sep = sep "---|" }
		print hdr; print sep
		for (i = 1; i <= NR; i++) {
			line = sprintf("| %s | %s | %s | %s | %s | %s | %s | %s | %s |", m[i], c[i], tps[i], med[i], p95[i],
				(c[i] in pmed) ? ratio(med[i], pmed[c[i]]) : "",
				(c[i] in ptps) ? ratio(tps[i], ptps[c[i]]) : "", n[i], xk[i])
			if (anynotes) line = line " " notes[i] " |"
			print line
		}
	}' "$SUMMARY" >"$TABLE"

# The head-to-head ratios: the classic emulation (and the best case of dblink)
# against child_txn, by median latency, at every client count.
RATIOS=$SCRATCH/ratios.txt
awk -F'\t' '
	{ med[$1 "," $2] = $4; tps[$1 "," $2] = $3; xk[$1 "," $2] = $8
	  if (!($2 in seen)) { seen[$2] = 1; cs[++k] = $2 } }
	END {
		for (i = 1; i <= k; i++) {
			c = cs[i]; cl = c " client" (c == 1 ? "" : "s")
			p = tps["plain," c]; g = tps["gc_append," c]
			if (p != "" && p != "NaN" && g != "" && g != "NaN" && p + 0 > 0)
				printf "group commit, waiting: gc_append rows/s / plain rows/s at %s: %.2fx\n", cl, g / p
			pm = med["plain," c]; gm = med["gc_append," c]
			if (pm != "" && pm != "NaN" && gm != "" && gm != "NaN" && pm + 0 > 0)
				printf "group commit, waiting: gc_append median / plain median at %s: %.2fx\n", cl, gm / pm
			s = tps["gc_ceiling," c]
			for (j = 1; j <= 2; j++) {
				o = (j == 1) ? "gc_nowait" : "gc_nowait_gather"; n = tps[o "," c]
				if (n != "" && n != "NaN" && s != "" && s != "NaN" && s + 0 > 0)
					printf "group commit, fire-and-forget: %s rows/s / gc_ceiling statements/s at %s: %.0f%%\n", o, cl, 100 * n / s
			}
			for (j = 1; j <= 3; j++) {
				o = (j == 1) ? "gc_append" : (j == 2) ? "gc_nowait" : "gc_nowait_gather"; x = xk[o "," c]
				if (x != "" && x != "-") printf "transaction ids per 10,000 writes, %s at %s: %s\n", o, cl, x
			}
		}
		for (i = 1; i <= k; i++) {
			c = cs[i]; ct = med["child_txn," c]
			if (ct == "" || ct == "NaN" || ct + 0 == 0) continue
			for (j = 1; j <= 2; j++) {
				o = (j == 1) ? "dblink_new" : "dblink_kept"; v = med[o "," c]
				if (v == "" || v == "NaN") continue
				printf "%s median / child_txn median at %s client%s: %.2fx\n", o, c, (c == 1 ? "" : "s"), v / ct
			}
		}
		for (i = 1; i <= k; i++) {
			c = cs[i]; b = med["block_child," c]; p = med["block_plain," c]
			if (b == "" || b == "NaN" || p == "" || p == "NaN" || p + 0 == 0) continue
			printf "block_child median / block_plain median at %s client%s: %.2fx\n", c, (c == 1 ? "" : "s"), b / p
		}
	}' "$SUMMARY" >"$RATIOS"

{
	cat "$HEADER_FILE"
	echo
	cat "$TABLE"
	echo
	cat "$RATIOS"
} >"$SCRATCH/report.txt"
echo
cat "$TABLE"
echo
cat "$RATIOS"

# Parent/child deadlock: how long until the parent has its 40P01.
DEADLOCK_REPORT=$SCRATCH/deadlock.txt
cp "$HERE/scripts/deadlock_time.sql" "$SCRATCH/scripts/"
if [ "$(id -u)" -eq 0 ]; then chown "$RUN_AS:" "$SCRATCH/scripts/deadlock_time.sql"; fi
if DL=$(psql_q -F ' ' -f "$SCRATCH/scripts/deadlock_time.sql" 2>&1); then
	read -r DL_MED DL_MAX DL_TIMEOUT DL_N <<<"$(printf '%s\n' "$DL" | tail -n 1)"
	printf 'parent/child deadlock reported to the parent after: median %s ms, max %s ms over %s deadlocks (child deadlock_timeout %s)\n' \
		"$DL_MED" "$DL_MAX" "$DL_N" "$DL_TIMEOUT" >"$DEADLOCK_REPORT"
else
	printf 'parent/child deadlock timing FAILED:\n%s\n' "$DL" >"$DEADLOCK_REPORT"
	printf 'deadlock timing failed\n' >>"$SCRATCH/failures.txt"
fi
cat "$DEADLOCK_REPORT"
cat "$DEADLOCK_REPORT" >>"$RATIOS"

# Server log lines worth a look (errors from workers, crashes), if any.
ODD=$(grep -E 'ERROR|FATAL|PANIC|terminated by signal|exited with exit code' "$SERVER_LOG" | grep -v 'deadlock detected' | head -n 20 || true)

mkdir -p "$RESULTS_DIR"
{
	echo '# child_txn benchmark: latest run'
	echo
	echo '```'
	cat "$HEADER_FILE"
	echo '```'
	echo
	cat "$TABLE"
	echo
	sed 's/$/  /' "$RATIOS"
	echo
	echo 'Per run (tx/s is pgbench'\''s, without connection time; txns = transactions in the per-transaction log; rows = rows in bench_t afterwards):'
	echo
	echo '| method | clients | round | pgbench exit | tx/s | txns | rows | xids |'
	echo '|---|---:|---:|---:|---:|---:|---:|---:|'
	awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, ($5 == "NaN" ? $5 : sprintf("%.1f", $5)), $6, $8, $9 }' "$RUNS_TSV"
	if [ "$(so_sha)" != "$SO_SHA_AT_START" ]; then
		echo
		echo "Note: $SO was reinstalled during the run; the server kept the build it loaded at start ($SO_SHA_AT_START), which is what these numbers measure."
	fi
	if [ -s "$SCRATCH/failures.txt" ]; then
		echo
		echo '## Failures'
		echo
		echo '```'
		cat "$SCRATCH/failures.txt"
		echo '```'
	fi
	if [ -n "$ODD" ]; then
		echo
		echo '## Server log: errors'
		echo
		echo '```'
		printf '%s\n' "$ODD"
		echo '```'
	fi
} >"$RESULTS_DIR/latest.md"
echo
note "written: $RESULTS_DIR/latest.md"

if [ "$(so_sha)" != "$SO_SHA_AT_START" ]; then
	note ""
	note "note: $SO was reinstalled during the run; the server kept the build it loaded"
	note "      at start ($SO_SHA_AT_START), which is what these numbers measure"
fi
if [ -n "$ODD" ]; then
	note ""
	note "server log has errors (first lines):"
	printf '%s\n' "$ODD" | sed 's/^/  /' >&2
fi
if [ -s "$SCRATCH/failures.txt" ]; then
	note ""
	note "FAILED runs:"
	sed 's/^/  /' "$SCRATCH/failures.txt" >&2
	exit 1
fi
exit 0
