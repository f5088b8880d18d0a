package audit

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"bulwark/internal/store"
)

// How an event reaches its log's tables depends on the database, but the
// rows and hashes are the same (the chain is verified alike whichever path
// wrote it):
//
//   - SQLite (appendSQLite): a transaction holds the database's only write
//     lock from its start, and group commit runs many callers' changes in
//     one transaction. The first append of a log in a transaction reads
//     the head; later ones take their seq and previous hash from the
//     events before them in memory; all of them are inserted just before
//     the commit (a store.Deferred, which drops a failed caller's events
//     with its savepoint), with one head update.
//   - PostgreSQL (appendPostgres): transactions run side by side, and a
//     seq taken in one would lock the head row until its COMMIT came back,
//     so that one log's transactions ran one after the other for that
//     time. Instead the event goes to the log's inbox (audit_inbox), in
//     the same transaction, sent with its COMMIT in one round trip (a
//     store.Pipelined); nothing is locked. Chaining (chain.go) then moves
//     committed inbox events into audit_events in batches, giving each its
//     seq, previous hash and hash under the head row's lock: every second
//     for the logs this process wrote to, and before any read of the log
//     (Query, Export, Verify, Checkpoint, Prune), so that reads see every
//     committed event.
//   - A Tx made by hand (appendPlain): the three statements, as written.

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
	logID     string
	loaded    bool
	startSeq  int64  // the head as read in the transaction
	startHash []byte // (genesis when the log is empty)
	events    []pendingEvent
}

func (p *pending) Mark() int { return len(p.events) }

func (p *pending) Undo(mark int) {
	clear(p.events[mark:])
	p.events = p.events[:mark]
}

// last returns the seq and hash of the log's last event in this
// transaction.
func (p *pending) last() (int64, []byte) {
	if n := len(p.events); n > 0 {
		return p.events[n-1].e.Seq, p.events[n-1].e.hash
	}
	return p.startSeq, p.startHash
}

// insertBatch is the most events one INSERT carries (15 parameters each,
// well under SQLite's limit of 32,766).
const insertBatch = 128

const insertHead = `INSERT INTO audit_events (seq, id, time, actor_type, actor_id, action, resource_type, resource_id,
	outcome, ip, user_agent, request_id, details, prev_hash, hash) VALUES `

// insertSQL returns the INSERT of n events (1 ≤ n ≤ insertBatch).
var insertSQL = func() func(n int) string {
	var cache [insertBatch + 1]string
	var once [insertBatch + 1]sync.Once
	return func(n int) string {
		once[n].Do(func() {
			var b strings.Builder
			b.WriteString(insertHead)
			for i := range n {
				if i > 0 {
					b.WriteString(", ")
				}
				b.WriteByte('(')
				for j := range 15 {
					if j > 0 {
						b.WriteString(", ")
					}
					b.WriteByte('$')
					b.WriteString(strconv.Itoa(i*15 + j + 1))
				}
				b.WriteByte(')')
			}
			cache[n] = b.String()
		})
		return cache[n]
	}
}()

func (p *pending) Flush(ctx context.Context, tx *store.Tx) error {
	if len(p.events) == 0 {
		return nil
	}
	// One prepared single-row INSERT run for each event: SQLite compiles a
	// statement of many rows more slowly than it runs a small one often.
	for _, pe := range p.events {
		e := &pe.e
		if _, err := tx.ExecOnce(ctx, insertSQL(1), e.Seq, e.ID, e.Time, e.Actor.Type, e.Actor.ID, e.Action, e.Resource.Type, e.Resource.ID,
			e.Outcome, e.IP, e.UserAgent, e.RequestID, string(pe.details), e.prevHash, e.hash); err != nil {
			return fmt.Errorf("audit: append to %s: %w", p.logID, err)
		}
	}
	seq, hash := p.last()
	if _, err := tx.ExecOnce(ctx, "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1", seq, hash); err != nil {
		return fmt.Errorf("audit: append to %s: %w", p.logID, err)
	}
	return nil
}

// appendSQLite takes e's seq and previous hash from the transaction's
// pending events of the log (the head, for the first) and leaves e to be
// written at the commit.
func (s *Service) appendSQLite(ctx context.Context, tx *store.Tx, logID string, e *Event, details []byte) error {
	d, ok := tx.Deferred(pendingKey{logID}, func() store.Deferred { return &pending{logID: logID} })
	if !ok {
		return appendPlain(ctx, tx, logID, e, details)
	}
	p := d.(*pending)
	if !p.loaded {
		// The transaction holds the write lock: the head cannot move
		// under it.
		if err := tx.QueryRowOnce(ctx, "SELECT seq, hash FROM audit_head WHERE id = 1").Scan(&p.startSeq, &p.startHash); err != nil {
			return fmt.Errorf("audit: append: %w", err)
		}
		if len(p.startHash) == 0 {
			p.startHash = genesis(logID)
		}
		p.loaded = true
	}
	seq, prev := p.last()
	e.Seq, e.prevHash = seq+1, prev
	e.hash, _ = chainHash(make([]byte, 0, 512), logID, prev, e, details)
	p.events = append(p.events, pendingEvent{e: *e, details: details})
	return nil
}

// appendPlain writes e with three statements: take the next seq (locking
// the head row until the transaction ends), insert, store the new hash.
func appendPlain(ctx context.Context, tx *store.Tx, logID string, e *Event, details []byte) error {
	var prev []byte
	if err := tx.QueryRowContext(ctx, "UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash").Scan(&e.Seq, &prev); err != nil {
		return fmt.Errorf("audit: append: %w", err)
	}
	if len(prev) == 0 {
		prev = genesis(logID)
	}
	e.prevHash = prev
	e.hash, _ = chainHash(make([]byte, 0, 512), logID, prev, e, details)
	if _, err := tx.ExecContext(ctx, insertSQL(1), e.Seq, e.ID, e.Time, e.Actor.Type, e.Actor.ID, e.Action, e.Resource.Type,
		e.Resource.ID, e.Outcome, e.IP, e.UserAgent, e.RequestID, string(details), e.prevHash, e.hash); err != nil {
		return fmt.Errorf("audit: append: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE audit_head SET hash = $1 WHERE id = 1", e.hash); err != nil {
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
