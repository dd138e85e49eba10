#!/usr/bin/env bash
# Start a throwaway PostgreSQL server for the tests; prints its URL on stdout.
# Installs Debian's postgresql package when it is missing. The server lives in
# $PGROOT (default /tmp/seqtune-pg) on port $PGPORT and stops with `stop`.
set -euo pipefail
PGROOT=${PGROOT:-/tmp/seqtune-pg}
PGPORT=${PGPORT:-55432}
PGUSER_NAME=seqtune
PGPASS=seqtune

bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

as_owner() {  # initdb and postgres refuse to run as root
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ "${1:-}" = stop ]; then
  [ -d "$PGROOT/data" ] && as_owner "$(bindir)/pg_ctl" -D "$PGROOT/data" -m fast stop >&2 || true
  exit 0
fi

if [ -z "$(bindir)" ]; then
  echo "installing postgresql from Debian's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq postgresql >&2
fi
BIN=$(bindir)

if ! as_owner "$BIN/pg_ctl" -D "$PGROOT/data" status >/dev/null 2>&1; then
  rm -rf "$PGROOT"
  mkdir -p "$PGROOT"
  [ "$(id -u)" = 0 ] && chown postgres "$PGROOT"
  as_owner "$BIN/initdb" -D "$PGROOT/data" -U postgres --auth=trust -E UTF8 >/dev/null
  as_owner "$BIN/pg_ctl" -D "$PGROOT/data" -l "$PGROOT/server.log" -w \
    -o "-p $PGPORT -k $PGROOT -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off" start >&2
  as_owner "$BIN/psql" -q -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres \
    -c "CREATE ROLE $PGUSER_NAME LOGIN CREATEDB PASSWORD '$PGPASS'" \
    -c "CREATE DATABASE $PGUSER_NAME OWNER $PGUSER_NAME" >&2
fi
echo "postgresql://$PGUSER_NAME:$PGPASS@127.0.0.1:$PGPORT/$PGUSER_NAME"
