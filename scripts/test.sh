#!/usr/bin/env bash
# test.sh is `make test`: it installs what the tests need when missing,
# starts a throwaway PostgreSQL cluster unless BULWARK_TEST_POSTGRES is given,
# checks formatting, vet and go.mod, runs every test with the race detector,
# and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

scripts/deps.sh

started=""
cleanup() {
	if [ -n "$started" ]; then scripts/pg.sh stop "$started"; fi
}
trap cleanup EXIT INT TERM

if [ -z "${BULWARK_TEST_POSTGRES:-}" ]; then
	started=$(mktemp -d /tmp/bulwark-test-pg.XXXXXX)
	BULWARK_TEST_POSTGRES=$(scripts/pg.sh start "$started")
	export BULWARK_TEST_POSTGRES
	echo "test: throwaway PostgreSQL at ${BULWARK_TEST_POSTGRES%%\?*}"
fi

# No OpenBao or Vault server can be installed on this machine kind (not on
# the Go module proxy nor in Debian; Vault's last MPL release does not build
# from the proxy), so the real-server test of the Vault KEK provider runs
# only where a binary is given or on PATH.
if [ -z "${BULWARK_TEST_OPENBAO:-}" ] && ! command -v openbao >/dev/null && ! command -v bao >/dev/null && ! command -v vault >/dev/null; then
	export BULWARK_TEST_OPENBAO=skip
	echo "test: no OpenBao/Vault binary: the Vault provider is tested against its HTTP contract only"
fi

# The AWS KMS provider is tested against local-kms, an AWS KMS emulator,
# built from the Go module proxy into a cache outside the repository so
# that it never enters go.mod. A cold install (nothing in the module and
# build caches) takes about a minute; later runs reuse the binary.
localkms_module=github.com/nsmithuk/local-kms@v0.0.0-20260228092603-2a5e92d09ab6
localkms_bin="$HOME/.cache/bulwark/bin"
if [ -z "${BULWARK_TEST_LOCALKMS:-}" ] && ! command -v local-kms >/dev/null; then
	if [ ! -x "$localkms_bin/local-kms" ]; then
		echo "test: no local-kms: installing the AWS KMS emulator: GOBIN=$localkms_bin go install $localkms_module"
		if ! GOBIN="$localkms_bin" go install "$localkms_module"; then
			echo "test: installing local-kms failed (see above): the AWS KMS provider is not tested against an emulator" >&2
		fi
	fi
	if [ -x "$localkms_bin/local-kms" ]; then
		export BULWARK_TEST_LOCALKMS="$localkms_bin/local-kms"
	else
		export BULWARK_TEST_LOCALKMS=skip
	fi
fi

echo "test: gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:" >&2
	echo "$unformatted" >&2
	exit 1
fi

echo "test: go mod tidy"
go mod tidy -diff >/dev/null || { echo "go.mod/go.sum are not tidy: run go mod tidy" >&2; go mod tidy -diff >&2 || true; exit 1; }

echo "test: go vet"
go vet ./...
go vet -tags bulwark_testhooks ./...

echo "test: go test -race"
go test -race -timeout 20m -count=1 ./... "$@"
