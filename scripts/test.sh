#!/usr/bin/env bash
# Run the whole child_txn test suite: pg_regress, pg_isolation_regress and the
# TAP tests, each against its own throwaway server(s).
#
#   bash scripts/test.sh                 # install deps, build, install, run all
#   bash scripts/test.sh regress         # only one suite: regress|isolation|tap
#   CHILD_TXN_SUITE=tap bash scripts/test.sh
#
# Options (or environment variables):
#   --src DIR        (CHILD_TXN_SRC)         test material root: holds sql/,
#                                            expected/ and test/; default: repo
#   --no-build       (CHILD_TXN_NO_BUILD=1)  skip ensure_deps/build/install
#   --keep           (CHILD_TXN_KEEP_SCRATCH=1) keep the scratch dir even when
#                                            everything passed
#   CHILD_TXN_REGRESS_PORT    (default 55432)
#   CHILD_TXN_ISOLATION_PORT  (default 55433)
#   CHILD_TXN_SUITE_TIMEOUT   seconds for the regress / isolation run (1200)
#   CHILD_TXN_TAP_TIMEOUT     seconds per TAP file (default 600)
#   CHILD_TXN_TOTAL_TIMEOUT   seconds for the whole script, build included
#                             (default 4800: CI stops a run at 5400)
#
# Servers and test drivers run as the unprivileged user `postgres` when this
# runs as root (as the invoking user otherwise), in a scratch directory under
# /tmp.  The last line of output is always "N passed, N failed"; the exit
# status is non-zero if anything failed or if no test ran at all.

set -uo pipefail

# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

SRC=${CHILD_TXN_SRC:-$CHILD_TXN_ROOT}
SUITE=${CHILD_TXN_SUITE:-all}
NO_BUILD=${CHILD_TXN_NO_BUILD:-0}
KEEP=${CHILD_TXN_KEEP_SCRATCH:-0}
REGRESS_PORT=${CHILD_TXN_REGRESS_PORT:-55432}
ISOLATION_PORT=${CHILD_TXN_ISOLATION_PORT:-55433}
SUITE_TIMEOUT=${CHILD_TXN_SUITE_TIMEOUT:-1200}
TAP_TIMEOUT=${CHILD_TXN_TAP_TIMEOUT:-600}
TOTAL_TIMEOUT=${CHILD_TXN_TOTAL_TIMEOUT:-4800}
DEADLINE=$(($(date +%s) + TOTAL_TIMEOUT))
DIFF_LINES=${CHILD_TXN_DIFF_LINES:-400}

while [ $# -gt 0 ]; do
	case "$1" in
	--src) SRC=$2; shift 2 ;;
	--src=*) SRC=${1#--src=}; shift ;;
	--no-build) NO_BUILD=1; shift ;;
	--keep) KEEP=1; shift ;;
	regress | isolation | tap | all) SUITE=$1; shift ;;
	-h | --help)
		sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*) die "unknown argument: $1 (expected regress|isolation|tap|all, --src DIR, --no-build, --keep)" ;;
	esac
done
case "$SUITE" in regress | isolation | tap | all) ;; *) die "unknown suite: $SUITE" ;; esac
SRC=$(cd "$SRC" && pwd) || die "no such source dir"

TOTAL_PASS=0
TOTAL_FAIL=0
SUMMARY=()
SCRATCH=

header() {
	printf '\n==================== %s ====================\n' "$*"
}

finish() {
	# Stop anything a killed driver left running, then print the totals as
	# the very last line.
	if [ -n "$SCRATCH" ]; then
		stop_servers_under "$SCRATCH"
		if [ "$TOTAL_FAIL" -eq 0 ] && [ "$TOTAL_PASS" -gt 0 ] && [ "$KEEP" != 1 ]; then
			rm -rf "$SCRATCH"
		else
			log "scratch directory kept: $SCRATCH"
		fi
	fi
	header "summary"
	local s
	for s in "${SUMMARY[@]}"; do log "$s"; done
	if [ $((TOTAL_PASS + TOTAL_FAIL)) -eq 0 ]; then
		log "no test ran"
	fi
	printf '%d passed, %d failed\n' "$TOTAL_PASS" "$TOTAL_FAIL"
	if [ "$TOTAL_FAIL" -ne 0 ] || [ "$TOTAL_PASS" -eq 0 ]; then
		exit 1
	fi
	exit 0
}

# shellcheck disable=SC2317  # (invoked by the trap)
on_signal() {
	trap - INT TERM
	log ""
	log "interrupted: stopping the running test driver and its servers"
	if [ -n "$DRIVER_JOB" ]; then
		local pgid
		pgid=$(cat "$DRIVER_PGID_FILE" 2>/dev/null || true)
		case "$pgid" in '' | *[!0-9]*) ;; *) kill -TERM -- "-$pgid" 2>/dev/null || true ;; esac
		[ -n "$SCRATCH" ] && stop_servers_under "$SCRATCH"
		wait "$DRIVER_JOB" 2>/dev/null || true
	fi
	TOTAL_FAIL=$((TOTAL_FAIL + 1))
	SUMMARY+=("interrupted")
	finish
}
trap on_signal INT TERM

# count_pg_regress_output FILE -> sets P and F.
# pg_regress (PG 15) prints one line per test:
#   "test NAME   ... ok   12 ms"  /  "     NAME ... FAILED   12 ms"
#   "... failed (ignored)" for tests the schedule marks as ignorable.
count_pg_regress_output() {
	local file=$1
	P=$(grep -cE '^(test | +)[^ ].* \.\.\. +ok( |$)' "$file" || true)
	F=$(grep -cE '^(test | +)[^ ].* \.\.\. +FAILED( |$)' "$file" || true)
	local ign
	ign=$(grep -cE '^(test | +)[^ ].* \.\.\. +failed \(ignored\)' "$file" || true)
	P=$((P + ign))
}

print_file_head() {
	local file=$1 n=$2
	if [ -s "$file" ]; then
		log "----- $file (first $n lines) -----"
		head -n "$n" "$file"
		local total
		total=$(wc -l <"$file")
		if [ "$total" -gt "$n" ]; then
			log "----- ... $((total - n)) more lines in $file -----"
		fi
	fi
}

print_file_tail() {
	local file=$1 n=$2
	if [ -s "$file" ]; then
		log "----- $file (last $n lines) -----"
		tail -n "$n" "$file"
	fi
}

# run_driver LOGFILE TIMEOUT CMD [ARGS...] -> sets RC
# Runs CMD as the test user in $SCRATCH under `timeout`, showing its output
# and saving it to LOGFILE.  `timeout` makes CMD's process group; its id is
# kept so that an interrupt (Ctrl-C, SIGTERM) can end the driver and the
# servers it started instead of waiting for it.  CMD runs in the background
# and we `wait` for it, so that the signal traps run at once.
DRIVER_JOB=
DRIVER_PGID_FILE=
run_driver() {
	local logf=$1 tmo=$2
	shift 2
	# Never run past the overall deadline.
	local left=$((DEADLINE - $(date +%s)))
	if [ "$left" -lt 30 ]; then
		log "skipped: the overall time limit (${TOTAL_TIMEOUT}s) is used up"
		: >"$logf"
		RC=124
		return
	fi
	[ "$tmo" -le "$left" ] || tmo=$left
	DRIVER_PGID_FILE="$SCRATCH/logs/driver.pgid"
	rm -f "$DRIVER_PGID_FILE"
	(
		# shellcheck disable=SC2016  # ($$ and $0 are the inner shell's)
		as_test_user "$SCRATCH" sh -c 'echo $$ >"$0"; exec timeout -k 30 "$@"' \
			"$DRIVER_PGID_FILE" "$tmo" "$@" 2>&1 </dev/null | tee "$logf"
		exit "${PIPESTATUS[0]}"
	) &
	DRIVER_JOB=$!
	wait "$DRIVER_JOB"
	RC=$?
	DRIVER_JOB=
	rm -f "$DRIVER_PGID_FILE"
	if [ "$RC" -eq 124 ] || [ "$RC" -eq 137 ]; then
		log "timed out after ${tmo}s"
	fi
}

# run_pg_regress_driver NAME BINARY TEMP_INSTANCE OUTPUTDIR PORT EXTRA_ARGS...
run_pg_regress_driver() {
	local name=$1 bin=$2 inst=$3 outdir=$4 port=$5
	shift 5
	local logf="$SCRATCH/logs/$name.out"
	as_test_user "$SCRATCH" mkdir -p "$outdir"
	run_driver "$logf" "$SUITE_TIMEOUT" "$bin" \
		--temp-instance="$inst" \
		--temp-config=test/regress.conf \
		--bindir="$PG_BINDIR" \
		--port="$port" \
		--outputdir="$outdir" \
		"$@"
	local rc=$RC
	stop_servers_under "$inst"
	count_pg_regress_output "$logf"
	if [ "$rc" -ne 0 ] && [ "$F" -eq 0 ]; then
		# The driver failed without reporting a failed test (could not start
		# the server, timed out, crashed): count that as one failure.
		F=1
	fi
	if [ "$F" -ne 0 ] || [ "$rc" -ne 0 ]; then
		log ""
		log "$name: FAILED (exit $rc)"
		print_file_head "$outdir/regression.diffs" "$DIFF_LINES"
		if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
			# Killed mid-test: the newest results file shows where it hung.
			local last
			# shellcheck disable=SC2012  # (our own file names)
			last=$(ls -t "$outdir"/results/*.out 2>/dev/null | head -n 1)
			[ -n "$last" ] && print_file_tail "$last" 30
		fi
		if [ "$rc" -ge 2 ]; then
			# Not a plain test failure: the instance may not have come up.
			print_file_tail "$outdir/log/initdb.log" 30
		fi
		print_file_tail "$outdir/log/postmaster.log" 40
	fi
	TOTAL_PASS=$((TOTAL_PASS + P))
	TOTAL_FAIL=$((TOTAL_FAIL + F))
	SUMMARY+=("$(printf '%-10s %3d passed, %3d failed' "$name:" "$P" "$F")")
}

suite_regress() {
	header "regress (pg_regress)"
	if [ ! -f "$SCRATCH/test/regress_schedule" ]; then
		log "no test/regress_schedule: counted as a failure"
		TOTAL_FAIL=$((TOTAL_FAIL + 1))
		SUMMARY+=("regress:   missing test/regress_schedule")
		return
	fi
	run_pg_regress_driver regress "$PG_REGRESS_BIN" \
		"$SCRATCH/tmp_check" "$SCRATCH/regress" "$REGRESS_PORT" \
		--inputdir=. \
		--schedule=test/regress_schedule \
		--dbname=contrib_regression
}

suite_isolation() {
	header "isolation (pg_isolation_regress)"
	if [ ! -f "$SCRATCH/test/isolation_schedule" ]; then
		log "no test/isolation_schedule: counted as a failure"
		TOTAL_FAIL=$((TOTAL_FAIL + 1))
		SUMMARY+=("isolation: missing test/isolation_schedule")
		return
	fi
	run_pg_regress_driver isolation "$PG_ISOLATION_REGRESS_BIN" \
		"$SCRATCH/tmp_check_iso" "$SCRATCH/isolation" "$ISOLATION_PORT" \
		--inputdir=test/isolation \
		--schedule=test/isolation_schedule
}

# count_tap_output FILE -> sets P, F, S (passed, failed, skipped) from the
# top-level, numbered TAP lines that `prove -v` echoes ("ok 3 - ...",
# "not ok 4 - ..."; subtest lines are indented and are summarised by their
# parent line; "# TODO" failures count as passed, "# skip" as skipped).
count_tap_output() {
	local file=$1
	P=0 F=0 S=0
	local line
	while IFS= read -r line; do
		case "$line" in
		"not ok "[0-9]*)
			if [[ "$line" =~ \#[[:space:]]*[Tt][Oo][Dd][Oo] ]]; then
				P=$((P + 1)) # expected failure
			else
				F=$((F + 1))
			fi
			;;
		"ok "[0-9]*)
			# (prove's own per-file verdict is a bare "ok": not counted)
			if [[ "$line" =~ ^ok\ [0-9]+([[:space:]].*)?\#[[:space:]]*[Ss][Kk][Ii][Pp] ]]; then
				S=$((S + 1))
			else
				P=$((P + 1))
			fi
			;;
		esac
	done <"$file"
}

suite_tap() {
	header "tap (prove)"
	local -a files=()
	local f
	for f in "$SCRATCH"/test/tap/*.pl; do
		[ -f "$f" ] && files+=("$f")
	done
	if [ "${#files[@]}" -eq 0 ]; then
		log "no test/tap/*.pl"
		SUMMARY+=("tap:       no test files")
		return
	fi
	local tapdir="$SCRATCH/tap"
	as_test_user "$SCRATCH" mkdir -p "$tapdir"
	local sp=0 sf=0 ss=0 name logf rc
	for f in "${files[@]}"; do
		name=$(basename "$f" .pl)
		logf="$SCRATCH/logs/tap-$name.out"
		log ""
		log "--- test/tap/$name.pl"
		# TEMP_CONFIG is deliberately not set: each TAP test decides its own
		# configuration (e.g. shared_preload_libraries) with append_conf.
		PG_REGRESS="$PG_REGRESS_BIN" TESTDIR="$tapdir" PERL5LIB="$PG_PERL_LIB" \
			run_driver "$logf" "$TAP_TIMEOUT" \
			prove -v -I "$PG_PERL_LIB" "test/tap/$name.pl"
		rc=$RC
		count_tap_output "$logf"
		if [ "$rc" -ne 0 ] && [ "$F" -eq 0 ]; then
			# Died, bad plan, timed out, or non-zero exit without a failed
			# assertion: at least one failure.
			F=1
		fi
		if [ "$F" -ne 0 ]; then
			log "tap $name: FAILED (exit $rc)"
			print_file_tail "$tapdir/tmp_check/log/regress_log_$name" 80
			local nl
			for nl in "$tapdir"/tmp_check/log/"${name}"_*.log; do
				[ -f "$nl" ] && print_file_tail "$nl" 40
			done
		fi
		log "tap $name: $P passed, $F failed, $S skipped"
		sp=$((sp + P))
		sf=$((sf + F))
		ss=$((ss + S))
	done
	stop_servers_under "$tapdir"
	TOTAL_PASS=$((TOTAL_PASS + sp))
	TOTAL_FAIL=$((TOTAL_FAIL + sf))
	SUMMARY+=("$(printf '%-10s %3d passed, %3d failed, %d skipped' "tap:" "$sp" "$sf" "$ss")")
}

main() {
	if [ "$NO_BUILD" != 1 ]; then
		header "dependencies and build"
		# In a subshell so that a failure (which exits) still ends with the
		# totals line.
		if ! (ensure_deps && build_install "$CHILD_TXN_ROOT"); then
			TOTAL_FAIL=$((TOTAL_FAIL + 1))
			SUMMARY+=("build:     FAILED (dependencies, build or install)")
			finish
		fi
	else
		[ -x "$PG_REGRESS_BIN" ] || die "$PG_REGRESS_BIN missing; run without --no-build once"
	fi

	SCRATCH=$(make_scratch_dir child_txn-test)
	log "source:  $SRC"
	log "scratch: $SCRATCH (as user $(test_user))"
	copy_into "$SRC" "$SCRATCH" sql expected input output data test
	as_test_user "$SCRATCH" mkdir -p "$SCRATCH/logs"
	if [ ! -f "$SCRATCH/test/regress.conf" ]; then
		log "ERROR: missing $SRC/test/regress.conf"
		TOTAL_FAIL=$((TOTAL_FAIL + 1))
		SUMMARY+=("setup:     missing test/regress.conf")
		finish
	fi

	case "$SUITE" in
	all)
		suite_regress
		suite_isolation
		suite_tap
		;;
	regress) suite_regress ;;
	isolation) suite_isolation ;;
	tap) suite_tap ;;
	esac
	finish
}

main
