#!/usr/bin/env bash
# A PostgreSQL server for flowd's postgres backend and its tests: installs Debian's
# `postgresql` with apt when it is missing, starts (or reuses) a cluster of the project's
# own on loopback only, and prints its connection URL on stdout (everything else goes to
# stderr), so `export FLOWD_TEST_POSTGRES=$(scripts/postgres.sh)` works.
#
#   FLOWD_PG_DIR   the cluster's directory (default: flowd-postgres in the system's
#                  temporary directory, as mktemp picks it); it must be reachable by the
#                  `postgres` user when run as root
#   FLOWD_PG_PORT  its port (default: 55432)
#   scripts/postgres.sh stop   stops that cluster
#
# The cluster trusts every local connection (it listens on 127.0.0.1 and a socket in its
# own directory only): it is for development and CI, not for production.
set -euo pipefail

dir=${FLOWD_PG_DIR:-$(dirname "$(mktemp -u)")/flowd-postgres}
port=${FLOWD_PG_PORT:-55432}

say() { echo "postgres.sh: $*" >&2; }

bindir() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -n "$d" ] && [ -x "$d/pg_ctl" ] && echo "$d"
}

# As root, the server runs as the `postgres` user (it refuses to run as root).
as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

if ! bin=$(bindir); then
    say "installing postgresql from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
    bin=$(bindir) || { say "postgresql installed but no pg_ctl found under /usr/lib/postgresql"; exit 1; }
fi

data="$dir/data"
if [ "${1:-}" = stop ]; then
    if [ -f "$data/postmaster.pid" ]; then
        as_owner "$bin/pg_ctl" -D "$data" -m fast -w stop >&2
    fi
    exit 0
fi

if [ ! -f "$data/PG_VERSION" ]; then
    say "creating a cluster in $data"
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    as_owner "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >&2
fi

if ! as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    say "starting the cluster on 127.0.0.1:$port"
    # fsync stays on: the backend's durability is what the tests check.
    as_owner "$bin/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200" start >&2 ||
        { cat "$dir/server.log" >&2; exit 1; }
fi

"$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -t 30 || { say "the server does not answer on port $port"; exit 1; }
echo "postgres://postgres@127.0.0.1:$port/postgres"
