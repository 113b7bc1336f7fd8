# shellcheck shell=bash disable=SC2034
# Shared helpers for scripts/setup.sh and scripts/test.sh.  Source it; do not
# run it.  Works on a fresh Debian 12 machine, as root or as a normal user
# with sudo.
#
# Conventions:
#   * Packages are installed with apt-get (as root, or through sudo).
#   * The extension is built as the invoking user and installed as root.
#   * PostgreSQL servers, and the test drivers that start them, never run as
#     root: when we are root they run as the OS user `postgres` (created by
#     the postgresql-15 package), otherwise as the invoking user.

PG_MAJOR=15
PG_BINDIR=/usr/lib/postgresql/${PG_MAJOR}/bin
PG_CONFIG=${PG_BINDIR}/pg_config
PG_PGXS_DIR=/usr/lib/postgresql/${PG_MAJOR}/lib/pgxs
PG_REGRESS_BIN=${PG_PGXS_DIR}/src/test/regress/pg_regress
PG_ISOLATION_REGRESS_BIN=${PG_PGXS_DIR}/src/test/isolation/pg_isolation_regress
PG_PERL_LIB=${PG_PGXS_DIR}/src/test/perl

# Everything we need from Debian.  perl provides `prove` (it is nearly always
# present already, being a dependency of postgresql-common).
CHILD_TXN_DEPS=(
	"postgresql-${PG_MAJOR}"
	"postgresql-server-dev-${PG_MAJOR}"
	"postgresql-client-${PG_MAJOR}"
	libkrb5-dev
	libipc-run-perl
	make
	g++
	libpq-dev
	perl
)

# The repository root (the parent of scripts/).
CHILD_TXN_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

export PATH="${PG_BINDIR}:${PATH}"

log() { printf '%s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() {
	printf 'ERROR: %s\n' "$*" >&2
	exit 1
}

is_root() { [ "$(id -u)" -eq 0 ]; }

# Run a command with root privileges: directly when we are root, through
# sudo otherwise.
as_root() {
	if is_root; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		die "need root for: $* (run as root, or install sudo)"
	fi
}

# The unprivileged OS user that runs servers and test drivers.  Override with
# CHILD_TXN_TEST_USER (as root only).
test_user() {
	if is_root; then
		printf '%s\n' "${CHILD_TXN_TEST_USER:-postgres}"
	else
		id -un
	fi
}

# as_test_user DIR CMD [ARGS...]
# Run CMD in directory DIR as the test user.  The environment is passed on
# explicitly (runuser would otherwise keep root's HOME and USER), with the
# PostgreSQL 15 bin directory first in PATH and a locale that exists on every
# Debian machine, so that initdb and psql behave the same everywhere.
as_test_user() {
	local dir=$1
	shift
	local user
	user=$(test_user)
	local home
	home=$(getent passwd "$user" | cut -d: -f6)
	[ -n "$home" ] || home=/tmp
	local -a envv=(
		"PATH=${PG_BINDIR}:/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
		"HOME=${home}"
		"USER=${user}"
		"LOGNAME=${user}"
		"LANG=C.UTF-8"
		"TZ=${TZ:-UTC}"
	)
	# Pass on the variables that callers set for the test drivers.
	local v
	for v in PG_REGRESS TESTDIR PERL5LIB PG_TEST_TIMEOUT_DEFAULT \
		PG_TEST_NOCLEAN PG_TEST_EXTRA PROVE_FLAGS TEMP_CONFIG CI TERM; do
		if [ -n "${!v+x}" ]; then
			envv+=("${v}=${!v}")
		fi
	done
	if is_root && [ "$user" != root ]; then
		(cd "$dir" && exec runuser -u "$user" -- env -i "${envv[@]}" "$@")
	else
		(cd "$dir" && exec env -i "${envv[@]}" "$@")
	fi
}

# make_scratch_dir PREFIX -> prints the path of a fresh directory under /tmp
# owned by the test user.
make_scratch_dir() {
	local prefix=$1 d
	d=$(mktemp -d "/tmp/${prefix}.XXXXXX")
	chmod 755 "$d"
	if is_root; then
		chown "$(test_user):" "$d"
	fi
	printf '%s\n' "$d"
}

# copy_into SRC_ROOT DEST NAME... : copy the named files/dirs (those that
# exist) from SRC_ROOT into DEST, owned by the test user.  Works even when
# the test user cannot read SRC_ROOT (we read as ourselves, write as root).
# Leaves out benchmarks and the output of earlier local test runs.
copy_into() {
	local src=$1 dest=$2
	shift 2
	local -a names=()
	local n
	for n in "$@"; do
		[ -e "$src/$n" ] && names+=("./$n")
	done
	[ "${#names[@]}" -gt 0 ] || return 0
	tar -C "$src" -cf - \
		--exclude=./test/bench \
		--exclude=./test/isolation/results \
		--exclude=./test/isolation/output_iso \
		--exclude=./test/tap/tmp_check \
		"${names[@]}" | tar -C "$dest" -xf - || die "copying test files failed"
	if is_root; then
		chown -R "$(test_user):" "$dest"
	fi
}

_CHILD_TXN_APT_UPDATED=${_CHILD_TXN_APT_UPDATED:-0}

# Install whatever is missing among CHILD_TXN_DEPS; no apt at all when
# everything is present.
ensure_deps() {
	local -a missing=()
	local p st
	for p in "${CHILD_TXN_DEPS[@]}"; do
		st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
		if [ "$st" != "install ok installed" ]; then
			missing+=("$p")
		fi
	done
	if [ "${#missing[@]}" -eq 0 ]; then
		log "dependencies: all present"
		return 0
	fi
	log "dependencies: installing ${missing[*]}"
	# apt's output goes to a log file, shown only when apt fails.
	local aptlog
	aptlog=$(mktemp /tmp/child_txn-apt.XXXXXX.log)
	if [ "$_CHILD_TXN_APT_UPDATED" != 1 ]; then
		if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q \
			</dev/null >>"$aptlog" 2>&1; then
			tail -n 40 "$aptlog" >&2
			die "apt-get update failed (log: $aptlog)"
		fi
		_CHILD_TXN_APT_UPDATED=1
	fi
	if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends "${missing[@]}" </dev/null >>"$aptlog" 2>&1; then
		tail -n 60 "$aptlog" >&2
		die "apt-get install failed (log: $aptlog)"
	fi
	log "dependencies: installed ($(grep -c '^Setting up ' "$aptlog") packages; apt log: $aptlog)"
	id postgres >/dev/null 2>&1 || die "the postgresql-${PG_MAJOR} package did not create the postgres user"
	[ -x "$PG_CONFIG" ] || die "$PG_CONFIG missing after install"
}

# Build the extension in SRC (default: the repository root) and install it
# into the PostgreSQL 15 installation.
build_install() {
	local src=${1:-$CHILD_TXN_ROOT}
	log "building in $src"
	make -C "$src" -j2 PG_CONFIG="$PG_CONFIG" || die "build failed"
	log "installing (make install)"
	as_root make -C "$src" install PG_CONFIG="$PG_CONFIG" >/dev/null ||
		die "make install failed"
}

# stop_servers_under DIR: stop (immediate mode) every server whose data
# directory lies under DIR and still has a live postmaster.pid.  Used to
# clean up after test drivers that were killed.
stop_servers_under() {
	local dir=$1 pidfile datadir pid
	[ -d "$dir" ] || return 0
	while IFS= read -r pidfile; do
		datadir=$(dirname "$pidfile")
		pid=$(head -n1 "$pidfile" 2>/dev/null || true)
		case "$pid" in '' | *[!0-9]*) continue ;; esac
		if kill -0 "$pid" 2>/dev/null; then
			printf "\n" >&2
			warn "stopping leftover server in $datadir (pid $pid)"
			as_test_user / "${PG_BINDIR}/pg_ctl" -D "$datadir" -m immediate -w stop \
				>/dev/null 2>&1 || kill -9 "$pid" 2>/dev/null || true
		fi
	done < <(find "$dir" -name postmaster.pid -type f 2>/dev/null)
}
