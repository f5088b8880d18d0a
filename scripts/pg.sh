#!/usr/bin/env bash
# pg.sh start DIR   starts a throwaway PostgreSQL cluster in DIR on a free
#                   loopback port and prints its URL on stdout.
# pg.sh stop DIR    stops it and removes DIR.
# For tests and benchmarks only: fsync is off.
set -euo pipefail
cmd=${1:?usage: pg.sh start|stop DIR}
dir=${2:?usage: pg.sh start|stop DIR}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bin" ] || { echo "pg.sh: PostgreSQL binaries not found under /usr/lib/postgresql" >&2; exit 1; }

as_pg() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
start)
	mkdir -p "$dir"
	[ "$(id -u)" = 0 ] && chown postgres "$dir"
	chmod 700 "$dir"
	as_pg "$bin/initdb" -D "$dir/data" -A trust -U postgres >"$dir/initdb.log" 2>&1 ||
		{ cat "$dir/initdb.log" >&2; exit 1; }
	# A random high port; retried if another process holds it.
	for _ in 1 2 3 4 5 6 7 8; do
		port=$((20000 + RANDOM % 30000))
		if as_pg "$bin/pg_ctl" -D "$dir/data" -w -l "$dir/log" \
			-o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=1300 -c shared_buffers=256MB -c autovacuum_naptime=1h" \
			start >/dev/null 2>&1; then
			break
		fi
		port=
	done
	[ -n "$port" ] || { echo "pg.sh: PostgreSQL did not start; see $dir/log" >&2; cat "$dir/log" >&2; exit 1; }
	echo "postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
	;;
stop)
	[ -d "$dir/data" ] && as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$dir"
	;;
*) echo "pg.sh: unknown command $cmd" >&2; exit 2 ;;
esac
