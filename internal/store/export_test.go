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
