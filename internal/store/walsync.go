package store

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// walSync makes group commits durable after they commit instead of
// inside the commit, so that the one writer of a SQLite database does not
// wait for the disk.
//
// With synchronous=FULL, a WAL commit writes its frames and fsyncs the
// WAL file while it holds the database's write lock: nothing else can
// write until the disk answers (0.8 ms here, the larger part of a batch's
// time). A group commit instead commits with synchronous=NORMAL (frames
// written, no fsync; SQLite stays consistent after a crash, it only may
// lose the last commits) and hands the batch to a syncer, which fsyncs
// the WAL file and only then wakes the batch's callers; the leader
// meanwhile runs the next batch. One fsync covers every frame written
// before it, so the syncer takes all the batches waiting and wakes them
// in commit order: no InTx returns before its changes are on disk, as
// before.
//
// What changes: between its commit and the fsync, a batch's changes are
// visible to readers of the database although not yet durable (a crash
// then loses them, and their callers, still waiting, never saw success).
//
// The WAL is SQLite's file; it is opened here a second time, read-only,
// to fsync it (on Linux, fsync flushes a file whatever descriptor it is
// called on). It is looked up while the committing connection is open, so
// SQLite cannot remove it in between (it does so when the last connection
// closes, after checkpointing it into the database file and syncing
// that). A file that was replaced since is reopened; the old one is
// closed once no waiting batch needs it. When the WAL cannot be found or
// opened, the batch commits with synchronous=FULL, as without walSync.
type walSync struct {
	mu      sync.Mutex
	path    string // the WAL's path; "" until looked up, noWAL when there is none
	cur     *walFile
	waiting []syncWait
	running bool
	// inflight counts the batches handed to the syncer and not yet woken;
	// drained is signalled when it falls.
	inflight int
	drained  *sync.Cond
}

// maxInflight is how many committed batches may wait for an fsync before
// the leader waits too: one being synced and one committed while it is.
// Deeper, the batches shrink to a caller or two, and each commit has its
// own cost (its pages written again, BEGIN, COMMIT).
const maxInflight = 2

// wait blocks while maxInflight batches wait for their fsync.
func (s *walSync) wait() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.inflight >= maxInflight {
		s.cond().Wait()
	}
}

func (s *walSync) cond() *sync.Cond {
	if s.drained == nil {
		s.drained = sync.NewCond(&s.mu)
	}
	return s.drained
}

// noWAL marks a database whose WAL path is not known (an in-memory or
// temporary database).
const noWAL = "\x00"

// walFile is an open WAL file and the batches that wait for its fsync.
type walFile struct {
	f       *os.File
	info    os.FileInfo
	refs    int
	retired bool
	// dirSynced: the directory holding the file has been fsynced since the
	// file was opened here (read and written by the syncer only). A WAL
	// file that SQLite made anew is only there after a crash once its
	// directory entry is on disk; SQLite syncs the directory at a new
	// WAL's first sync, which a commit with synchronous=NORMAL skips.
	dirSynced bool
}

type syncWait struct {
	batch []*groupReq
	w     *walFile
}

// syncFile fsyncs f (a variable for tests).
var syncFile = func(f *os.File) error { return f.Sync() }

// syncDir fsyncs the directory dir (a variable for tests).
var syncDir = func(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// file returns the WAL file of the database that conn is connected to, or
// nil when there is none to fsync.
func (s *walSync) file(conn *sql.Conn) *walFile {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.path == "" {
		var file string
		err := conn.QueryRowContext(context.Background(), "SELECT file FROM pragma_database_list WHERE name = 'main'").Scan(&file)
		if err != nil {
			return nil // looked up again next time
		}
		s.path = noWAL
		if file != "" {
			s.path = file + "-wal"
		}
	}
	if s.path == noWAL {
		return nil
	}
	info, err := os.Stat(s.path)
	if err != nil {
		// Not there yet (no write since the database was created), or
		// unreadable: this commit fsyncs itself.
		return nil
	}
	if s.cur != nil && os.SameFile(info, s.cur.info) {
		return s.cur
	}
	f, err := os.Open(s.path)
	if err != nil {
		return nil
	}
	if fi, err := f.Stat(); err != nil || !os.SameFile(fi, info) {
		f.Close()
		return nil
	}
	s.retire()
	s.cur = &walFile{f: f, info: info}
	return s.cur
}

// retire lets go of the current file: it is closed now or, when batches
// still wait for its fsync, by the syncer after it.
func (s *walSync) retire() {
	if s.cur == nil {
		return
	}
	s.cur.retired = true
	if s.cur.refs == 0 {
		s.cur.f.Close()
	}
	s.cur = nil
}

// await hands a committed batch to the syncer, starting it when none
// runs. The batch's callers are woken after w's fsync.
func (s *walSync) await(batch []*groupReq, w *walFile) {
	s.mu.Lock()
	w.refs++
	s.inflight++
	s.waiting = append(s.waiting, syncWait{batch, w})
	start := !s.running
	s.running = true
	s.mu.Unlock()
	if start {
		go s.run()
	}
}

// run fsyncs and wakes the waiting batches until none is left.
func (s *walSync) run() {
	for {
		s.mu.Lock()
		waits := s.waiting
		s.waiting = nil
		if len(waits) == 0 {
			s.running = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		// Usually one file; after a replacement, each file once, oldest
		// first (the order the batches committed in).
		var errs = map[*walFile]error{}
		for _, sw := range waits {
			if _, done := errs[sw.w]; done {
				continue
			}
			err := syncFile(sw.w.f)
			if err == nil && !sw.w.dirSynced {
				if err = syncDir(filepath.Dir(sw.w.f.Name())); err == nil {
					sw.w.dirSynced = true
				}
			}
			errs[sw.w] = err
		}
		s.mu.Lock()
		s.inflight -= len(waits)
		s.cond().Broadcast()
		for _, sw := range waits {
			sw.w.refs--
			if sw.w.refs == 0 && sw.w.retired {
				sw.w.f.Close()
			}
		}
		s.mu.Unlock()
		for _, sw := range waits {
			for _, r := range sw.batch {
				if err := errs[sw.w]; err != nil && r.err == nil && r.panic == nil {
					// Committed but perhaps not on disk: the caller is
					// told it failed, as when a commit's own fsync fails.
					r.err = fmt.Errorf("commit: sync %s: %w", sw.w.f.Name(), err)
				}
				close(r.done)
			}
		}
	}
}

// syncNow fsyncs the current WAL file (and its directory) now: every
// change committed on it so far is then durable, including those of
// batches still waiting for the syncer. Without a current file, no commit
// has skipped its fsync.
func (s *walSync) syncNow() error {
	s.mu.Lock()
	w := s.cur
	if w == nil {
		s.mu.Unlock()
		return nil
	}
	w.refs++
	s.mu.Unlock()
	err := syncFile(w.f)
	if err == nil {
		err = syncDir(filepath.Dir(w.f.Name()))
	}
	s.mu.Lock()
	w.refs--
	if w.refs == 0 && w.retired {
		w.f.Close()
	}
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("sync %s: %w", w.f.Name(), err)
	}
	return nil
}

// close closes the WAL file; the database is closing and no batch waits.
func (s *walSync) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retire()
}
