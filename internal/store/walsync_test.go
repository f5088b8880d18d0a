package store_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"bulwark/internal/store"
)

// These tests are SQLite's only: group commit and its WAL fsync are how
// SQLite commits (PostgreSQL commits each transaction itself).

// openSQLiteControl opens a store on SQLite and returns its control
// database, the database's file, and a function that inserts a thing in a
// transaction of its own, after one first insert (so that the WAL file
// exists).
func openSQLiteControl(t *testing.T) (*store.DB, string, func(id int) error) {
	t.Helper()
	dir := t.TempDir()
	st := open(t, store.Options{Driver: store.SQLite, DataDir: dir, BusyTimeout: 5 * time.Second}, controlSchema(1))
	db := st.Control()
	var file string
	if err := db.SQL().QueryRow("SELECT file FROM pragma_database_list WHERE name = 'main'").Scan(&file); err != nil {
		t.Fatal(err)
	}
	insert := func(id int) error {
		return db.InTx(context.Background(), func(tx *store.Tx) error {
			_, err := tx.ExecContext(context.Background(), "INSERT INTO things (id, label) VALUES ($1, 'x')", id)
			return err
		})
	}
	if err := insert(1); err != nil {
		t.Fatal(err)
	}
	return db, file, insert
}

// A group commit commits without an fsync and InTx returns only after the
// WAL file has been fsynced: while the fsync is held back, the change is
// committed (another connection sees it) and its InTx has not returned.
func TestInTx_ReturnsOnlyAfterTheWALIsSynced(t *testing.T) {
	db, file, insert := openSQLiteControl(t)

	entered := make(chan string, 10)
	release := make(chan struct{})
	store.SetSyncFile(t, func(f *os.File) error {
		entered <- f.Name()
		<-release
		return f.Sync()
	})
	result := make(chan error, 1)
	go func() { result <- insert(2) }()
	var synced string
	select {
	case synced = <-entered:
	case err := <-result:
		t.Fatalf("InTx returned (%v) without fsyncing the WAL file", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no fsync of the WAL file within 10 s")
	}
	if want := file + "-wal"; filepath.Clean(synced) != filepath.Clean(want) {
		t.Errorf("fsynced %q, want the WAL file %q", synced, want)
	}
	var n int
	if err := db.SQL().QueryRow("SELECT COUNT(*) FROM things WHERE id = 2").Scan(&n); err != nil || n != 1 {
		t.Errorf("before the fsync, the change is committed: count %d, %v; want 1", n, err)
	}
	select {
	case err := <-result:
		t.Fatalf("InTx returned (%v) while the WAL's fsync was still running", err)
	default:
	}
	close(release)
	if err := <-result; err != nil {
		t.Fatalf("InTx after the fsync: %v", err)
	}
}

// A failed fsync fails every caller of the batches it was for, naming the
// file; the next commits, synced again, succeed.
func TestInTx_FailsWhenTheWALSyncFails(t *testing.T) {
	_, _, insert := openSQLiteControl(t)
	disk := errors.New("input/output error")
	var mu sync.Mutex
	failing := true
	store.SetSyncFile(t, func(f *os.File) error {
		mu.Lock()
		defer mu.Unlock()
		if failing {
			return disk
		}
		return f.Sync()
	})
	err := insert(2)
	if !errors.Is(err, disk) {
		t.Fatalf("InTx with a failing fsync = %v, want the fsync's error", err)
	}
	mu.Lock()
	failing = false
	mu.Unlock()
	if err := insert(3); err != nil {
		t.Fatalf("InTx once the fsync works again: %v", err)
	}
}

// The connections of the pool keep synchronous=FULL: a group commit sets
// NORMAL for its own commit and sets it back, so a commit made by hand on
// any connection still fsyncs by itself.
func TestInTx_PoolConnectionsKeepSynchronousFull(t *testing.T) {
	db, _, insert := openSQLiteControl(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 64)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = insert(100 + i)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("InTx %d: %v", i, err)
		}
	}
	open := db.SQL().Stats().OpenConnections
	if open == 0 {
		t.Fatal("no connection open after the commits")
	}
	// Hold every open connection at once, so that each is checked.
	conns := make([]interface{ Close() error }, 0, open)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range open {
		c, err := db.SQL().Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		var mode int
		if err := c.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&mode); err != nil {
			t.Fatal(err)
		}
		if mode != 2 {
			t.Errorf("a pool connection has synchronous=%d after group commits, want 2 (FULL)", mode)
		}
	}
}

// When SQLite removes the WAL file (its last connection closed) and makes
// a new one, the fsync follows it to the new file.
func TestInTx_SyncsTheWALFileThatIsThere(t *testing.T) {
	db, file, insert := openSQLiteControl(t)
	wal := file + "-wal"
	// No idle connection: the last one closes, and SQLite checkpoints the
	// WAL into the database file and removes it.
	db.SQL().SetMaxIdleConns(0)
	if _, err := os.Stat(wal); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the WAL file is still there after its last connection closed (%v): the test cannot replace it", err)
	}
	db.SQL().SetMaxIdleConns(2)
	var mu sync.Mutex
	var same []bool
	var dirs []string
	store.SetSyncDir(t, func(dir string) error {
		mu.Lock()
		dirs = append(dirs, dir)
		mu.Unlock()
		return nil
	})
	store.SetSyncFile(t, func(f *os.File) error {
		fi, err1 := f.Stat()
		pi, err2 := os.Stat(wal)
		mu.Lock()
		same = append(same, err1 == nil && err2 == nil && os.SameFile(fi, pi))
		mu.Unlock()
		return f.Sync()
	})
	for id := 2; id < 5; id++ {
		if err := insert(id); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(same) == 0 {
		t.Fatal("no WAL fsync after the WAL file was made anew")
	}
	for i, ok := range same {
		if !ok {
			t.Errorf("fsync %d was of another file than the WAL file at %s", i, wal)
		}
	}
	// The new file's directory entry is made durable once, with its first
	// fsync, before the first caller on it returns.
	if len(dirs) != 1 || filepath.Clean(dirs[0]) != filepath.Dir(wal) {
		t.Errorf("directory fsyncs for the new WAL file: %q, want one of %q", dirs, filepath.Dir(wal))
	}
}

// Sync fsyncs the WAL file and its directory at once: what a reader saw
// committed is durable when it returns, whatever the syncer is doing.
func TestDB_SyncFsyncsTheWALNow(t *testing.T) {
	db, file, insert := openSQLiteControl(t)
	if err := insert(2); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var files, dirs []string
	store.SetSyncFile(t, func(f *os.File) error {
		mu.Lock()
		files = append(files, f.Name())
		mu.Unlock()
		return f.Sync()
	})
	store.SetSyncDir(t, func(dir string) error {
		mu.Lock()
		dirs = append(dirs, dir)
		mu.Unlock()
		return nil
	})
	if err := db.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(files) != 1 || filepath.Clean(files[0]) != filepath.Clean(file+"-wal") {
		t.Errorf("Sync fsynced %q, want the WAL file %s once", files, file+"-wal")
	}
	if len(dirs) != 1 || filepath.Clean(dirs[0]) != filepath.Dir(file) {
		t.Errorf("Sync fsynced the directories %q, want %s once", dirs, filepath.Dir(file))
	}
}
