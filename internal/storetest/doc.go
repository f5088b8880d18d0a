// Package storetest runs storage tests on both drivers, against real
// databases: Each runs a subtest on SQLite (in t.TempDir) and one on
// PostgreSQL.
//
// PostgreSQL comes from the environment variable BULWARK_TEST_POSTGRES:
//   - a URL of a server where the user may CREATE DATABASE: each subtest
//     gets a fresh control database there;
//   - "skip": PostgreSQL subtests are skipped (say so explicitly; nothing
//     is skipped silently);
//   - unset or empty: a throwaway cluster is started once per test binary
//     (initdb and pg_ctl from /usr/lib/postgresql/*/bin, run as the postgres
//     user when the test runs as root; a temporary directory, a free port on
//     127.0.0.1, fsync=off, max_connections=300) and stopped when the
//     binary exits. Missing binaries fail the test.
//
// A test binary that uses PostgreSQL must call Main from TestMain so that
// the cluster is stopped at exit. Each fresh control database is named
// after the test (sanitized, with a random suffix) and dropped, together
// with its org databases (<name>_org_...), when the subtest ends.
//
// The cluster is the one piece of package-level state in the project: it
// belongs to the test binary, and Main owns its lifetime.
package storetest
