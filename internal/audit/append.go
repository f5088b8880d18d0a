package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

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
//     segmentMax). They are chained from the end this process last
//     committed to the log, and the first segment is inserted only where
//     the log still ends there; when it does not (another process wrote),
//     the end is read and the batch chained again from it. The head row
//     is written with the log's first batch of each second (headRowEvery)
//     rather than with every batch: its update took 8-11 us of every
//     batch in the writer, and its page was one of the eight or so that
//     each commit wrote to the WAL (see head).
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

// encodeFields appends an event's eleven text fields and its details,
// each length-prefixed: its record's body without the seq, encoded when
// it is appended, before it has a seq.
// It is hashInput's tail, written without eventFieldsOf's array of strings
// and with the time formatted in place: every append runs it, on SQLite
// in the group commit's leader.
func encodeFields(dst []byte, e *Event, details []byte) []byte {
	texts := [...]string{e.Actor.Type, e.Actor.ID, e.Action, e.Resource.Type, e.Resource.ID, e.Outcome, e.IP, e.UserAgent, e.RequestID}
	size := len(e.ID) + len(timeLayout) + len(details) + 4*eventFields + 4
	for _, f := range texts {
		size += len(f)
	}
	dst = slices.Grow(dst, size)
	dst = lp(dst, e.ID)
	dst = appendTime(binary.BigEndian.AppendUint32(dst, uint32(len(timeLayout))), e.Time)
	for _, f := range texts {
		dst = lp(dst, f)
	}
	return lpb(dst, details)
}

// appendTime appends t in timeLayout, as t.UTC().AppendFormat does, for
// the years 0 to 9999 that the layout writes in four digits; outside them
// (which no event time is) through AppendFormat.
func appendTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(dst, timeLayout)
	}
	hour, minute, sec := t.Clock()
	digits := func(b []byte, v, n int) []byte {
		for i := n - 1; i >= 0; i-- {
			b[i] = byte('0' + v%10)
			v /= 10
		}
		return b[n:]
	}
	k := len(dst)
	dst = append(dst, "0000-00-00T00:00:00.000000Z"...)
	b := dst[k:]
	b = digits(b, year, 4)[1:]
	b = digits(b, int(month), 2)[1:]
	b = digits(b, day, 2)[1:]
	b = digits(b, hour, 2)[1:]
	b = digits(b, minute, 2)[1:]
	b = digits(b, sec, 2)[1:]
	digits(b, t.Nanosecond()/1000, 6)
	return dst
}

// pending is a log's events appended in one SQLite transaction, not
// yet written: each one's encodeFields.
type pending struct {
	s      *Service
	logID  string
	events [][]byte
	buf    []byte // hash input, reused
	// What Flush wrote, for Committed: the seqs first to end and the last
	// hash, and whether (and when) it wrote the head row.
	first, end int64
	last       []byte
	row        bool
	now        time.Time
}

// Committed makes the events' end this process's head of the log, and
// hands the events, now stored, to the feed of blooms.
func (p *pending) Committed() {
	if len(p.events) == 0 || p.first == 0 {
		return
	}
	s := p.s
	s.mu.Lock()
	if at, ok := s.heads[p.logID]; !ok || at.seq < p.end {
		s.heads[p.logID] = headAt{p.end, p.last}
	}
	if p.row {
		s.headRows[p.logID] = headRow{p.end, p.now}
	} else if _, ok := s.unchained[p.logID]; !ok {
		// The head row is behind: ChainDue writes it if no batch does.
		s.unchained[p.logID] = 0
	}
	s.mu.Unlock()
	s.wrote(p.logID, p.end)
	s.feed.committed(p.logID, p.first, p.events)
}

func (p *pending) Mark() int { return len(p.events) }

func (p *pending) Undo(mark int) {
	clear(p.events[mark:])
	p.events = p.events[:mark]
}

// headAt is where a log ended after this process's last commit to it.
type headAt struct {
	seq  int64
	hash []byte
}

// headRow is what this process last wrote to a log's head row, and when.
type headRow struct {
	seq int64
	at  time.Time
}

// headRowEvery is how often a SQLite group commit writes a busy log's
// head row.
const headRowEvery = time.Second

// chained is a run of events given their seqs and hashes: their
// segments' rows (seq_start, seq_end, records) and the last hash.
type chained struct {
	starts, ends []int64
	segs         [][]byte
	last         []byte
}

// chainSegments gives the events of fields (encodeFields each) the seqs
// after seq and their hashes after prev, in segments of up to
// segmentMax, building each hash input in buf.
func chainSegments(buf []byte, logID string, seq int64, prev []byte, fields [][]byte) (chained, []byte) {
	var c chained
	for len(fields) > 0 {
		n := min(len(fields), segmentMax)
		size := 0
		for _, f := range fields[:n] {
			size += 4 + 8 + len(f) + sha256.Size
		}
		seg := make([]byte, 0, size)
		for _, f := range fields[:n] {
			seq++
			buf = hashPrefix(buf[:0], logID, prev)
			k := len(buf)
			buf = binary.BigEndian.AppendUint64(buf, uint64(seq))
			buf = append(buf, f...)
			sum := sha256.Sum256(buf)
			seg = appendRecord(seg, buf[k:], sum[:])
			prev = seg[len(seg)-sha256.Size:]
		}
		c.starts, c.ends, c.segs = append(c.starts, seq-int64(n)+1), append(c.ends, seq), append(c.segs, seg)
		fields = fields[n:]
	}
	c.last = prev
	return c, buf
}

// insertSegmentSQL inserts one segment.
const insertSegmentSQL = "INSERT INTO audit_segments (seq_start, seq_end, events) VALUES ($1, $2, $3)"

// insertSegmentAfterSQL inserts one segment only where the log's last
// segment ends at $4: the end this process committed, which another
// process's write would have moved.
const insertSegmentAfterSQL = `INSERT INTO audit_segments (seq_start, seq_end, events)
SELECT $1, $2, $3 WHERE (SELECT seq_end FROM audit_segments ORDER BY seq_start DESC LIMIT 1) = $4`

// setHeadSQL writes the head row.
const setHeadSQL = "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1"

func (p *pending) Flush(ctx context.Context, tx *store.Tx) error {
	if len(p.events) == 0 {
		return nil
	}
	fail := func(err error) error { return fmt.Errorf("audit: append to %s: %w", p.logID, err) }
	s := p.s
	p.now = s.opts.Now()
	s.mu.Lock()
	at, known := s.heads[p.logID]
	row, rowKnown := s.headRows[p.logID]
	s.mu.Unlock()
	for {
		if !known {
			h, err := readHead(ctx, tx)
			if err != nil {
				return fail(err)
			}
			at = headAt{h.seq, h.hash}
		}
		prev := at.hash
		if len(prev) == 0 {
			prev = genesis(p.logID)
		}
		c, buf := chainSegments(p.buf, p.logID, at.seq, prev, p.events)
		p.buf = buf
		segs := 0
		if known {
			res, err := tx.ExecOnce(ctx, insertSegmentAfterSQL, c.starts[0], c.ends[0], c.segs[0], at.seq)
			if err != nil {
				return fail(err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return fail(err)
			} else if n == 0 { // the log ends elsewhere: chain from its end
				known = false
				continue
			}
			segs = 1
		}
		for i := segs; i < len(c.segs); i++ {
			if _, err := tx.ExecOnce(ctx, insertSegmentSQL, c.starts[i], c.ends[i], c.segs[i]); err != nil {
				return fail(err)
			}
		}
		// The last hash copied out of its segment, which the head would keep.
		p.first, p.end, p.last = at.seq+1, c.ends[len(c.ends)-1], bytes.Clone(c.last)
		// The head row with the first batch of a second, and whenever the
		// end was read here (this process's first write, or another's
		// came between).
		p.row = !known || !rowKnown || p.now.Sub(row.at) >= headRowEvery || p.now.Before(row.at)
		if p.row {
			if _, err := tx.ExecOnce(ctx, setHeadSQL, p.end, p.last); err != nil {
				return fail(err)
			}
		}
		return nil
	}
}

// appendSQLite leaves e to be chained and written at the commit.
func (s *Service) appendSQLite(ctx context.Context, tx *store.Tx, logID string, e *Event, fields []byte) error {
	d, ok := tx.Deferred(pendingKey{logID}, func() store.Deferred { return &pending{s: s, logID: logID} })
	if !ok {
		return appendPlain(ctx, tx, logID, e, fields)
	}
	p := d.(*pending)
	p.events = append(p.events, fields)
	return nil
}

// appendPlain writes e at once: the head row locked (on SQLite, the
// database's write lock taken), the log's end read, the event's segment
// inserted and the head row set to it.
func appendPlain(ctx context.Context, tx *store.Tx, logID string, e *Event, fields []byte) error {
	if _, err := tx.ExecContext(ctx, "UPDATE audit_head SET seq = seq WHERE id = 1"); err != nil {
		return fmt.Errorf("audit: append: %w", err)
	}
	h, err := readHead(ctx, tx)
	if err != nil {
		return fmt.Errorf("audit: append: %w", err)
	}
	prev := h.hash
	if len(prev) == 0 {
		prev = genesis(logID)
	}
	c, _ := chainSegments(nil, logID, h.seq, prev, [][]byte{fields})
	e.Seq, e.hash = c.ends[0], c.last
	if _, err := tx.ExecContext(ctx, insertSegmentSQL, c.starts[0], c.ends[0], c.segs[0]); err != nil {
		return fmt.Errorf("audit: append: %w", err)
	}
	if _, err := tx.ExecContext(ctx, setHeadSQL, e.Seq, e.hash); err != nil {
		return fmt.Errorf("audit: append: %w", err)
	}
	return nil
}

// inboxKey is the store.Deferred key of a log's inbox events.
type inboxKey struct{ logID string }

// inbox is a log's events appended in one PostgreSQL transaction, to be
// written to audit_inbox with its COMMIT: each one's encodeFields.
type inbox struct {
	events [][]byte
}

func (b *inbox) Mark() int { return len(b.events) }

func (b *inbox) Undo(mark int) {
	clear(b.events[mark:])
	b.events = b.events[:mark]
}

const insertInboxSQL = `INSERT INTO audit_inbox (fields) VALUES ($1)`

func (b *inbox) AppendStatements(stmts []store.Statement) []store.Statement {
	for _, f := range b.events {
		stmts = append(stmts, store.Statement{SQL: insertInboxSQL, Args: []any{f}})
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
func (s *Service) appendPostgres(tx *store.Tx, logID string, fields []byte) bool {
	d, ok := tx.Deferred(inboxKey{logID}, func() store.Deferred { return &inbox{} })
	if !ok {
		return false
	}
	b := d.(*inbox)
	b.events = append(b.events, fields)
	return true
}
