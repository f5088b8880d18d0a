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
//     events before them in memory; all of them are inserted in one
//     statement, with one head update, just before the commit (a
//     store.Deferred, which drops a failed caller's events with its
//     savepoint). Three statements per event become three per batch.
//   - PostgreSQL (appendPostgres): one statement that locks the head row,
//     advances it, hashes the event (sha256() over the same encoding,
//     built from Go's bytes and the head's hash) and inserts it. The head
//     row stays locked until the transaction ends, as before; what is
//     gone are two round trips made while holding it.
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

// appendPostgresSQL advances the head and inserts the event in one
// statement. Every SET expression reads the head row as it was, so prev
// is the previous event's hash (the genesis hash $1 for the first event)
// and hash is SHA-256 over hashInput's encoding: $2 is everything before
// the previous hash (the tag, the log id and the previous hash's length,
// always 32), then the previous hash, the seq as 8 bytes big-endian
// (int8send), and $3 everything after it (the fields and the details).
const appendPostgresSQL = `WITH h AS (
	UPDATE audit_head SET
		prev = CASE WHEN hash = ''::bytea THEN $1::bytea ELSE hash END,
		seq = seq + 1,
		hash = sha256($2::bytea || CASE WHEN hash = ''::bytea THEN $1::bytea ELSE hash END || int8send(seq + 1) || $3::bytea)
	WHERE id = 1
	RETURNING seq, prev, hash)
INSERT INTO audit_events (seq, id, time, actor_type, actor_id, action, resource_type, resource_id,
	outcome, ip, user_agent, request_id, details, prev_hash, hash)
SELECT h.seq, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, h.prev, h.hash FROM h
RETURNING seq, prev_hash, hash`

// appendPostgres writes e with appendPostgresSQL and checks the hash that
// PostgreSQL computed against Go's.
func appendPostgres(ctx context.Context, tx *store.Tx, logID string, e *Event, details []byte) error {
	gen := genesis(logID)
	// hashInput with a zero seq and an all-zero previous hash of the right
	// length: the bytes before the hash and after the seq are the two
	// parts PostgreSQL puts around them.
	in := hashInput(make([]byte, 0, 512), logID, make([]byte, len(gen)), 0, eventFieldsOf(e), details)
	before := len(lp(nil, "bulwark/audit/event/v1")) + len(lp(nil, logID)) + 4
	after := before + len(gen) + 8
	if err := tx.QueryRowContext(ctx, appendPostgresSQL, gen, in[:before], in[after:],
		e.ID, e.Time, e.Actor.Type, e.Actor.ID, e.Action, e.Resource.Type, e.Resource.ID, e.Outcome, e.IP, e.UserAgent,
		e.RequestID, string(details)).Scan(&e.Seq, &e.prevHash, &e.hash); err != nil {
		return fmt.Errorf("audit: append: %w", err)
	}
	// The encoding is Go's; a server that hashed otherwise would write a
	// chain that does not verify: refuse it here instead.
	if sum, _ := chainHash(in[:0], logID, e.prevHash, e, details); len(e.prevHash) != len(gen) || string(sum) != string(e.hash) {
		return fmt.Errorf("audit: append: the database computed hash %x for event %d, want %x", e.hash, e.Seq, sum)
	}
	return nil
}
