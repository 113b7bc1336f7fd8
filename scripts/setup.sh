#!/usr/bin/env bash
# Install what child_txn needs, build and install it, and start a throwaway
# demo cluster with the extension preloaded, then run scripts/demo.sql in it.
#
#   bash scripts/setup.sh
#
# Environment:
#   CHILD_TXN_DEMO_PORT  port of the demo cluster   (default 5499)
#   CHILD_TXN_DEMO_DIR   its directory              (default /tmp/child_txn-demo)
#                        (data/ = PGDATA, server.log, demo.sql)
#
# Running it again stops and recreates the demo cluster.  The cluster runs as
# the OS user `postgres` when this runs as root, as the invoking user
# otherwise, and listens on a Unix socket in /tmp (and on localhost).

set -euo pipefail

# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DEMO_PORT=${CHILD_TXN_DEMO_PORT:-5499}
DEMO_DIR=${CHILD_TXN_DEMO_DIR:-/tmp/child_txn-demo}
DEMO_DB=demo
DATA="$DEMO_DIR/data"
LOGFILE="$DEMO_DIR/server.log"
MARKER="$DEMO_DIR/.child_txn-demo"
SOCKDIR=/tmp

case "$DEMO_PORT" in '' | *[!0-9]*) die "CHILD_TXN_DEMO_PORT must be a number" ;; esac
case "$DEMO_DIR" in /*) ;; *) die "CHILD_TXN_DEMO_DIR must be an absolute path" ;; esac

log "== dependencies"
ensure_deps
log "== build and install"
build_install "$CHILD_TXN_ROOT"

USER_NAME=$(test_user)

log "== demo cluster in $DEMO_DIR (port $DEMO_PORT, user $USER_NAME)"

# Stop and remove a previous demo cluster.  Only a directory that we created
# (it holds our marker file) is ever removed.
if [ -e "$DEMO_DIR" ]; then
	if [ -f "$MARKER" ]; then
		if [ -f "$DATA/postmaster.pid" ]; then
			log "stopping the previous demo cluster"
			as_test_user / pg_ctl -D "$DATA" -m fast -w stop ||
				as_test_user / pg_ctl -D "$DATA" -m immediate -w stop || true
		fi
		rm -rf "$DEMO_DIR"
	elif [ -d "$DEMO_DIR" ] && [ -z "$(ls -A "$DEMO_DIR")" ]; then
		rmdir "$DEMO_DIR"
	else
		die "$DEMO_DIR exists and was not made by this script; remove it or set CHILD_TXN_DEMO_DIR"
	fi
fi

# Refuse to start on a port that some other server already uses.
if pg_isready -q -h "$SOCKDIR" -p "$DEMO_PORT" >/dev/null 2>&1 ||
	pg_isready -q -h localhost -p "$DEMO_PORT" >/dev/null 2>&1; then
	die "a server already listens on port $DEMO_PORT; set CHILD_TXN_DEMO_PORT to a free port"
fi

mkdir -p "$DEMO_DIR"
touch "$MARKER"
# The test user cannot read a clone under /root: give it its own copy.
cp "$CHILD_TXN_ROOT/scripts/demo.sql" "$DEMO_DIR/demo.sql"
if is_root; then
	chown -R "$USER_NAME:" "$DEMO_DIR"
fi
chmod 755 "$DEMO_DIR"

as_test_user "$DEMO_DIR" initdb -D "$DATA" -A trust -U "$USER_NAME" >"$DEMO_DIR/initdb.log" 2>&1 || {
	cat "$DEMO_DIR/initdb.log" >&2
	die "initdb failed"
}

cat >>"$DATA/postgresql.conf" <<EOF

# Added by scripts/setup.sh (child_txn demo cluster)
port = $DEMO_PORT
unix_socket_directories = '$SOCKDIR'
listen_addresses = 'localhost'
shared_preload_libraries = 'child_txn'
max_worker_processes = 32
EOF

if ! as_test_user "$DEMO_DIR" pg_ctl -D "$DATA" -l "$LOGFILE" -w -t 60 start; then
	tail -n 40 "$LOGFILE" >&2 || true
	die "the demo cluster did not start"
fi

as_test_user "$DEMO_DIR" createdb -h "$SOCKDIR" -p "$DEMO_PORT" "$DEMO_DB"

log "== running scripts/demo.sql"
as_test_user "$DEMO_DIR" psql -X -v ON_ERROR_STOP=1 -h "$SOCKDIR" -p "$DEMO_PORT" \
	-d "$DEMO_DB" -f demo.sql || die "scripts/demo.sql failed (the cluster is still running; server log: $LOGFILE)"

# (cd /tmp first: pg_ctl complains when it cannot read the current directory,
# e.g. /root.)
if is_root; then
	as_pg="cd /tmp && runuser -u $USER_NAME -- "
else
	as_pg=""
fi
cat <<EOF

The demo cluster is running (data: $DATA, log: $LOGFILE).
Connect to it (as the $USER_NAME user):
  ${as_pg}${PG_BINDIR}/psql -h $SOCKDIR -p $DEMO_PORT -d $DEMO_DB
Stop it:
  ${as_pg}${PG_BINDIR}/pg_ctl -D $DATA stop
Remove it afterwards with: rm -rf $DEMO_DIR
EOF
