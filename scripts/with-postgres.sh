#!/usr/bin/env bash
# NARA_PG_FSYNC=on keeps fsync on (for durable benchmark figures; tests run faster without).
# Starts a throwaway PostgreSQL cluster from the machine's binaries in a
# temporary directory, runs the given command with NARA_TEST_POSTGRES_URL
# pointing at it, and removes the cluster afterwards.
#   scripts/with-postgres.sh cargo test --workspace
set -euo pipefail

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  echo "with-postgres: no PostgreSQL server binaries under /usr/lib/postgresql/*/bin" >&2
  exit 1
fi

dir=$(mktemp -d /tmp/nara-pg.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
run_as=()
if [ "$(id -u)" = "0" ]; then
  # PostgreSQL refuses to run as root: use the postgres user if there is one, else nobody.
  owner=$(id -u postgres >/dev/null 2>&1 && echo postgres || echo nobody)
  chown "$owner" "$dir"
  run_as=(runuser -u "$owner" --)
fi

cleanup() {
  "${run_as[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

"${run_as[@]}" "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
  || { cat "$dir/initdb.log" >&2; exit 1; }
"${run_as[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
  -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c fsync=${NARA_PG_FSYNC:-off} -c max_connections=300" start >/dev/null \
  || { cat "$dir/server.log" >&2; exit 1; }

export NARA_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
echo "with-postgres: PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on port $port" >&2
"$@"
