// Package e2e holds black-box tests of the built bulwark binary: they build it
// (with the bulwark_testhooks tag, which adds a slow route for shutdown
// tests), start it as a separate process on free ports and drive it over real
// TLS and through its command line, on SQLite and on PostgreSQL.
package e2e
