package audit

import (
	"context"
	"fmt"

	"bulwark/internal/store"
)

// How an event reaches its log's segments depends on the database, but
// the records and hashes are the same (the chain is verified alike
// whichever path wrote it):
//
//   - SQLite (appendSQLite): a transaction holds the database's only write
//     lock from its start, and group commit runs many callers' changes in
//     one transaction. Append checks the event and keeps it; just before
//     the commit (a store.Deferred, which drops a failed caller's events
//     with its savepoint) the log's events of the whole batch get their
//     seqs and hashes and are written as one segment (two or more past
//     segmentMax), with one update of the head. The head is taken from
//     what this process last wrote, and the update is made only where the
//     stored head is still that; when it is not (another process wrote,
//     or a commit failed), the head is read and the batch chained again
//     from it.
//   - PostgreSQL (appendPostgres): transactions run side by side, and a
//     seq taken in one would lock the head row until its COMMIT came back,
//     so that one log's transactions ran one after the other for that
//     time. Instead the event goes to the log's inbox (audit_inbox), in
//     the same transaction, sent with its COMMIT in one round trip (a
//     store.Pipelined); nothing is locked. Chaining (chain.go) then moves
//     committed inbox events into segments in batches, giving each its
//     seq and hash under the head row's lock: every second for the logs
//     this process wrote to, and before any read of the log (Query,
//     Export, Verify, Checkpoint, Prune), so that reads see every
//     committed event.
//   - A Tx made by hand (appendPlain): the head taken (and locked), a
//     segment of the one event, the head stored, as written.
//
// Either way Append returns the event without its seq (0) except in a Tx
// made by hand: the seq is given at the commit.

// pendingKey is the store.Deferred key of a log's pending events.
type pendingKey struct{ logID string }

// pendingEvent is one event waiting for its transaction's commit.
type pendingEvent struct {
	e       Event
	details []byte
}

// pending is a log's events appended in one SQLite transaction, not
// yet written.
type pending struct {
	s      *Service
	logID  string
	events []pendingEvent
	buf    []byte // hash input, reused
}

func (p *pending) Mark() int { return len(p.events) }

func (p *pending) Undo(mark int) {
	clear(p.events[mark:])
	p.events = p.events[:mark]
}

// headAt is where a log's head stood after this process's last write.
type headAt struct {
	seq  int64
	hash []byte
}

// chainSegments gives events their seqs and hashes after seq and prev,
// and returns their segments' rows: seq_start, seq_end, records.
func chainSegments(buf []byte, logID string, seq int64, prev []byte, events []pendingEvent) (starts, ends []int64, segs [][]byte, last []byte, _ []byte) {
	for len(events) > 0 {
		n := min(len(events), segmentMax)
		seg := make([]byte, 0, n*512)
		for i := range events[:n] {
			e := &events[i].e
			seq++
			e.Seq = seq
			var sum []byte
			sum, buf = chainHash(buf, logID, prev, e, events[i].details)
			e.prevHash, e.hash = prev, sum
			seg = appendRecord(seg, buf[hashPrefixLen(logID, prev):], sum)
			prev = sum
		}
		starts, ends, segs = append(starts, seq-int64(n)+1), append(ends, seq), append(segs, seg)
		events = events[n:]
	}
	return starts, ends, segs, prev, buf
}

// insertSegmentSQL inserts one segment.
const insertSegmentSQL = "INSERT INTO audit_segments (seq_start, seq_end, events) VALUES ($1, $2, $3)"

func (p *pending) Flush(ctx context.Context, tx *store.Tx) error {
	if len(p.events) == 0 {
		return nil
	}
	fail := func(err error) error { return fmt.Errorf("audit: append to %s: %w", p.logID, err) }
	s := p.s
	s.mu.Lock()
	at, known := s.heads[p.logID]
	s.mu.Unlock()
	var h head
	if !known {
		var err error
		if h, err = readHead(ctx, tx); err != nil {
			return fail(err)
		}
		at = headAt{h.seq, h.hash}
	}
	prev := at.hash
	if len(prev) == 0 {
		prev = genesis(p.logID)
	}
	starts, ends, segs, last, buf := chainSegments(p.buf, p.logID, at.seq, prev, p.events)
	p.buf = buf
	end := ends[len(ends)-1]
	if known {
		res, err := tx.ExecOnce(ctx, "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1 AND seq = $3 AND hash = $4", end, last, at.seq, at.hash)
		if err != nil {
			return fail(err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fail(err)
		} else if n == 0 { // the head moved: chain from it
			s.mu.Lock()
			delete(s.heads, p.logID)
			s.mu.Unlock()
			return p.Flush(ctx, tx)
		}
	} else if _, err := tx.ExecOnce(ctx, "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1", end, last); err != nil {
		return fail(err)
	}
	for i := range segs {
		if _, err := tx.ExecOnce(ctx, insertSegmentSQL, starts[i], ends[i], segs[i]); err != nil {
			return fail(err)
		}
	}
	// Taken as the head from now on; a commit that fails after this leaves
	// it ahead of the stored head, which the next Flush finds.
	s.mu.Lock()
	s.heads[p.logID] = headAt{end, last}
	s.mu.Unlock()
	return nil
}

// appendSQLite leaves e to be chained and written at the commit.
func (s *Service) appendSQLite(ctx context.Context, tx *store.Tx, logID string, e *Event, details []byte) error {
	d, ok := tx.Deferred(pendingKey{logID}, func() store.Deferred { return &pending{s: s, logID: logID} })
	if !ok {
		return appendPlain(ctx, tx, logID, e, details)
	}
	p := d.(*pending)
	p.events = append(p.events, pendingEvent{e: *e, details: details})
	return nil
}

// appendPlain writes e with three statements: take the next seq (locking
// the head row until the transaction ends), insert its segment, store
// the new hash.
func appendPlain(ctx context.Context, tx *store.Tx, logID string, e *Event, details []byte) error {
	var prev []byte
	if err := tx.QueryRowContext(ctx, "UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash").Scan(&e.Seq, &prev); err != nil {
		return fmt.Errorf("audit: append: %w", err)
	}
	if len(prev) == 0 {
		prev = genesis(logID)
	}
	events := []pendingEvent{{e: *e, details: details}}
	starts, ends, segs, last, _ := chainSegments(nil, logID, e.Seq-1, prev, events)
	e.prevHash, e.hash = prev, last
	if _, err := tx.ExecContext(ctx, insertSegmentSQL, starts[0], ends[0], segs[0]); err != nil {
		return fmt.Errorf("audit: append: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE audit_head SET hash = $1, prev = $2 WHERE id = 1", e.hash, prev); err != nil {
		return fmt.Errorf("audit: append: %w", err)
	}
	return nil
}

// inboxKey is the store.Deferred key of a log's inbox events.
type inboxKey struct{ logID string }

// inbox is a log's events appended in one PostgreSQL transaction, to be
// written to audit_inbox with its COMMIT.
type inbox struct {
	events []pendingEvent
}

func (b *inbox) Mark() int { return len(b.events) }

func (b *inbox) Undo(mark int) {
	clear(b.events[mark:])
	b.events = b.events[:mark]
}

const insertInboxSQL = `INSERT INTO audit_inbox (id, time, actor_type, actor_id, action, resource_type, resource_id, outcome,
	ip, user_agent, request_id, details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`

func (b *inbox) AppendStatements(stmts []store.Statement) []store.Statement {
	for _, pe := range b.events {
		e := &pe.e
		stmts = append(stmts, store.Statement{SQL: insertInboxSQL, Args: []any{e.ID, e.Time, e.Actor.Type, e.Actor.ID, e.Action,
			e.Resource.Type, e.Resource.ID, e.Outcome, e.IP, e.UserAgent, e.RequestID, string(pe.details)}})
	}
	return stmts
}

// Flush writes the events when the transaction has deferred work that
// cannot be sent with its COMMIT.
func (b *inbox) Flush(ctx context.Context, tx *store.Tx) error {
	for _, st := range b.AppendStatements(nil) {
		if _, err := tx.ExecContext(ctx, st.SQL, st.Args...); err != nil {
			return fmt.Errorf("audit: append: %w", err)
		}
	}
	return nil
}

// appendPostgres leaves e in the transaction's inbox for logID, to be
// written with the commit and chained after it. e keeps seq 0.
func (s *Service) appendPostgres(tx *store.Tx, logID string, e *Event, details []byte) bool {
	d, ok := tx.Deferred(inboxKey{logID}, func() store.Deferred { return &inbox{} })
	if !ok {
		return false
	}
	b := d.(*inbox)
	b.events = append(b.events, pendingEvent{e: *e, details: details})
	s.mu.Lock()
	s.unchained[logID] = true
	s.mu.Unlock()
	return true
}
