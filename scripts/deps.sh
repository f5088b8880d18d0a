#!/usr/bin/env bash
# deps.sh installs, when missing, the system packages that the tests and
# benchmarks need on a fresh Debian machine (run as root). It changes nothing
# when everything is already there.
set -euo pipefail

need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v runuser >/dev/null 2>&1 || need+=(util-linux)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v oathtool >/dev/null 2>&1 || need+=(oathtool)

if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "deps: missing ${need[*]}; run as root or install them" >&2
		exit 1
	fi
	echo "deps: installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	# Debian's package starts a cluster of its own; the tests use throwaway ones.
	if command -v pg_ctlcluster >/dev/null 2>&1; then
		pg_lsclusters -h 2>/dev/null | while read -r ver name _; do
			pg_ctlcluster "$ver" "$name" stop >/dev/null 2>&1 || true
		done
	fi
fi
command -v go >/dev/null 2>&1 || { echo "deps: go is not on PATH (expected /usr/local/go/bin)" >&2; exit 1; }
