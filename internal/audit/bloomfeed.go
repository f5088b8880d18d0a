package audit

import (
	"sync"
)

// bloomFeed builds the blooms of a log's blocks from the events this
// process committed to it, so that indexing need not read them back from
// the database (reading a second's events back, on SQLite beside the one
// writer, cost a tenth of the write throughput of a busy log).
//
// A committed run of events (their first seq and encodeFields each) is
// queued by whoever committed it: on SQLite the pending events' Committed
// (after the group commit's COMMIT, on the leader, so it only queues), on
// PostgreSQL chaining after its COMMIT. Indexing then folds the queue into
// the block being built, off the writer. A block's bloom is built in
// memory only from a run of its seqs that starts at its first and has no
// gap, so that it holds every event stored in it: an event that this
// process did not commit (another process wrote it, or a run was dropped
// because the queue was full) leaves a gap, and the block is read back as
// before. A bloom built here can hold more than its block (never less):
// that costs a query a block's read, never an event.
type bloomFeed struct {
	mu     sync.Mutex
	logs   map[string]*feedLog
	queued int // events queued, over all logs
}

// Bounds of what the feed holds: events queued but not yet folded (each
// its encodeFields, a few hundred bytes), and logs with a block being
// built (a bloom each) or runs queued. Past them new runs are dropped and
// their blocks read back.
const (
	feedMaxQueued = 1 << 16
	feedMaxLogs   = 4096
)

type feedLog struct {
	queue []feedRun

	// build is held while the queue is folded; the fields below are
	// under it.
	build sync.Mutex
	next  int64 // the seq after the last one added to bits
	bits  bloom // the block of next-1, being built; nil when none is
}

type feedRun struct {
	first  int64
	events [][]byte
}

// committed queues a run of log logID's events that committed with seqs
// first, first+1, ...; events must not change afterwards.
func (f *bloomFeed) committed(logID string, first int64, events [][]byte) {
	if len(events) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.queued+len(events) > feedMaxQueued {
		return // dropped: a gap, read back
	}
	l := f.logs[logID]
	if l == nil {
		if len(f.logs) >= feedMaxLogs {
			return
		}
		if f.logs == nil {
			f.logs = map[string]*feedLog{}
		}
		l = &feedLog{}
		f.logs[logID] = l
	}
	l.queue = append(l.queue, feedRun{first, events})
	f.queued += len(events)
}

// take folds log logID's queue into its blooms and returns the blooms of
// the blocks it completed, for the caller to store.
func (f *bloomFeed) take(logID string) map[int64]bloom {
	f.mu.Lock()
	l := f.logs[logID]
	f.mu.Unlock()
	if l == nil {
		return nil
	}
	// Folds of one log run one at a time, each on the runs queued before
	// it, in their order.
	l.build.Lock()
	defer l.build.Unlock()
	f.mu.Lock()
	queue := l.queue
	l.queue = nil
	for _, r := range queue {
		f.queued -= len(r.events)
	}
	f.mu.Unlock()
	var (
		fl  fields
		out map[int64]bloom
	)
	for _, r := range queue {
		for i, ev := range r.events {
			seq := r.first + int64(i)
			if l.bits == nil || seq != l.next {
				l.bits = nil
				if (seq-1)%blockEvents != 0 {
					continue // within a block begun elsewhere: read back
				}
				l.bits = make(bloom, bloomBytes)
			}
			if err := fl.parseFields(ev); err != nil {
				l.bits = nil // (never: encodeFields wrote it)
				continue
			}
			l.bits.addEvent(&fl)
			l.next = seq + 1
			if seq%blockEvents == 0 { // the block's last
				if out == nil {
					out = map[int64]bloom{}
				}
				out[blockOf(seq)] = l.bits
				l.bits = nil
			}
		}
	}
	if l.bits == nil {
		f.mu.Lock()
		if len(l.queue) == 0 && f.logs[logID] == l {
			delete(f.logs, logID)
		}
		f.mu.Unlock()
	}
	return out
}

// forget drops what the feed holds of log logID.
func (f *bloomFeed) forget(logID string) {
	f.mu.Lock()
	l := f.logs[logID]
	delete(f.logs, logID)
	if l != nil {
		for _, r := range l.queue {
			f.queued -= len(r.events)
		}
		l.queue = nil
	}
	f.mu.Unlock()
	if l != nil {
		l.build.Lock()
		l.bits = nil
		l.build.Unlock()
	}
}
