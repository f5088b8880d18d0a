// Package postgres is the scale-out storage backend of package store: the
// control database is the one named by the configured URL, and each
// organization has its own database "<control>_org_<org id without
// dashes>" in the same cluster, created with CREATE DATABASE and removed
// with DROP DATABASE ... WITH (FORCE). Connections go through pgx's
// database/sql driver.
//
// Database names are built only from the control database name (checked
// to fit: PostgreSQL truncates identifiers at 63 bytes, and two orgs must
// never share a name) and an org id that package store has validated; they
// are always quoted as identifiers.
//
// Per-org pools are small (MaxConnsPerOrg, one idle connection, idle
// connections closed after a minute) so that many open orgs do not exhaust
// the server's max_connections.
package postgres
