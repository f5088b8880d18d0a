package store

import "os"

// CloseIdle runs one pass of the idle janitor, so that tests can drive it
// with a fake clock instead of waiting.
func (s *Store) CloseIdle() { s.closeIdle() }

// SetSyncFile replaces the fsync of a SQLite database's WAL file after a
// group commit until the test ends.
func SetSyncFile(t interface{ Cleanup(func()) }, fn func(f *os.File) error) {
	old := syncFile
	syncFile = fn
	t.Cleanup(func() { syncFile = old })
}

// SetSyncDir replaces the fsync of the directory of a SQLite database's
// WAL file until the test ends.
func SetSyncDir(t interface{ Cleanup(func()) }, fn func(dir string) error) {
	old := syncDir
	syncDir = fn
	t.Cleanup(func() { syncDir = old })
}

// MaxCachedStmts is the most prepared statements a database keeps.
const MaxCachedStmts = maxCachedStmts

// CachedStmt reports whether query is in db's statement cache.
func CachedStmt(db *DB, query string) bool {
	_, ok := db.stmts.Load(query)
	return ok
}

// CachedStmts returns how many statements db's cache holds.
func CachedStmts(db *DB) int {
	n := 0
	db.stmts.Range(func(any, any) bool { n++; return true })
	return n
}

// WaitPrepared waits for the statements db is preparing for its cache.
func WaitPrepared(db *DB) { db.preps.Wait() }

// BatchPrepares returns how many statements group commits have prepared
// for their batch alone, not finding them in the cache.
func BatchPrepares() int64 { return batchPrepares.Load() }
