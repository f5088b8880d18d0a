// Command bench runs Bulwark's load scenarios and prints one table: scenario,
// ops/s, p50, p99, peak RSS, and the ratio of the measured figure to the
// target that the scenario's issue names.
//
// Each scenario runs in a child process of its own (the runner re-executes
// itself with -scenario NAME) so that peak RSS belongs to that scenario alone.
// PostgreSQL scenarios use BULWARK_BENCH_POSTGRES, a URL of a server where the
// user may create databases; scripts/bench.sh starts a throwaway one.
//
// BULWARK_BENCH_AUDIT_EVENTS sets the size of the log that audit-read
// fills (default 1,000,000 on SQLite, 200,000 on PostgreSQL).
// BULWARK_BENCH_CPUPROFILE=DIR writes a CPU profile of each scenario to
// DIR/<scenario>.pprof (slashes turned into dashes), for go tool pprof.
package main
