// Package store owns the connections to Bulwark's databases: one control
// database (orgs, operators, everything that is not one org's data) and one
// database per organization, on SQLite (the embedded default, package
// store/sqlite) or PostgreSQL (package store/postgres), both through
// database/sql.
//
// # Organization databases
//
// An org database is opened lazily by AcquireOrg and shared: callers
// Release what they acquire, and a handle closes only when its last user has
// released it. At most Options.MaxOpenOrgs handles stay cached (least
// recently used first out); a handle unused for Options.IdleTimeout is
// closed by a janitor goroutine that Close stops. Concurrent first uses of
// one org open it once. A cold open first asks the gate (SetGate: is the org
// allowed to be opened at all?), then opens, migrates the org schemas when
// the database is behind, and runs the open check (SetOpenCheck: is this
// database really that org's?).
//
// Org ids are validated (lower-case canonical UUID text, 36 characters of
// [0-9a-f-]) before they reach a file name or an SQL identifier, so no id
// can escape DATA/orgs or name another database.
//
// # SQL
//
// SQL is written once, in the subset SQLite and PostgreSQL share, with $1,
// $2 placeholders (modernc.org/sqlite binds $N by number; a test checks it).
// A Migration carries per-driver text only where types differ.
//
// # Time
//
// Tx.Now is the time of one change, in UTC and truncated to microseconds
// (PostgreSQL's precision), so that every timestamp a change writes is
// equal and reads back equal on both drivers. Declare time columns
// TIMESTAMP on SQLite and TIMESTAMPTZ on PostgreSQL and bind time.Time
// values. On SQLite they are stored as TEXT in UTC,
// "2006-01-02 15:04:05.999999999+00:00" (the driver converts any bound
// time to UTC first, so text order is time order) and come back as
// time.Time because the column is declared TIMESTAMP. PostgreSQL returns
// times in the local zone: call .UTC() when a UTC value matters.
//
// # Migrations
//
// Each database has schema_migrations(schema, version, name, applied_at).
// A Schema's migrations run in version order, each in its own transaction
// together with its schema_migrations row. A database whose version is
// newer than this binary knows is refused rather than used.
//
// This package imports no capability package and never builds SQL from
// input: database names and file names come only from validated org ids.
package store
