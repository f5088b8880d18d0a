#!/usr/bin/env bash
# bench.sh is `make bench`: it starts a throwaway PostgreSQL cluster unless
# BULWARK_BENCH_POSTGRES is given, builds the benchmark runner and prints its
# table (scenario, ops/s, p50, p99, peak RSS, ratio to the issue's target).
# Extra arguments go to the runner, e.g. `make bench ARGS="-only org-"`.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

scripts/deps.sh

started=""
# A binary of this run's own: two runs at once must not delete each other's.
bin=$(mktemp /tmp/bulwark-bench.XXXXXX)
cleanup() {
	if [ -n "$started" ]; then scripts/pg.sh stop "$started"; fi
	rm -f "$bin"
}
trap cleanup EXIT INT TERM

if [ -z "${BULWARK_BENCH_POSTGRES:-}" ]; then
	started=$(mktemp -d /tmp/bulwark-bench-pg.XXXXXX)
	BULWARK_BENCH_POSTGRES=$(scripts/pg.sh start "$started")
	export BULWARK_BENCH_POSTGRES
	export BULWARK_BENCH_THROWAWAY=1
	echo "bench: PostgreSQL is a throwaway cluster with fsync=off and synchronous_commit=off (scripts/pg.sh): its commits are not durable, so its figures are better than a durable server's"
fi

go build -o "$bin" ./bench
echo "bench: $(nproc) cores, $(go version | cut -d' ' -f3), $(date -u +%Y-%m-%dT%H:%MZ)"
"$bin" "$@"
