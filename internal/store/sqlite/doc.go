// Package sqlite is the embedded storage backend of package store: the
// control database is DATA/control.db and each organization has its own
// file DATA/orgs/<org-id>.db, opened through modernc.org/sqlite (no cgo).
//
// Every connection is configured through its DSN so that no connection of
// the pool can miss a setting: WAL journal, foreign keys on, a busy
// timeout, synchronous=FULL (a commit is on disk when it returns;
// package store groups concurrent commits so that costs one fsync per
// batch), BEGIN IMMEDIATE for transactions (a
// transaction is meant to write, and taking the write lock up front avoids
// the deadlock of two readers upgrading at once), and times written in UTC
// as "2006-01-02 15:04:05.999999999+00:00" text, which sorts in time order
// and is read back as time.Time from columns declared TIMESTAMP.
//
// Directories are created 0700 and database files 0600 (SQLite gives the
// -wal and -shm files the mode of the database file). Org databases are
// opened with mode=rw so that a connection opened after the file was
// removed fails instead of silently creating an empty database.
//
// This package never validates organization ids: package store does that
// before any id reaches a file name here.
package sqlite
