package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"bulwark/internal/store"
)

// Report is the result of Verify.
type Report struct {
	OK            bool        `json:"ok"`
	EventsChecked int64       `json:"events_checked"`
	Head          HeadInfo    `json:"head"`
	Checkpoint    *Checkpoint `json:"checkpoint"`    // the latest checkpoint, null if none
	FirstBadSeq   *int64      `json:"first_bad_seq"` // null when ok
	Problem       string      `json:"problem,omitempty"`
}

// HeadInfo is the last event's seq and hash (hex).
type HeadInfo struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
}

// Verify walks log logID from its start (its first event, or the signed
// retention checkpoint it was pruned to) to its head, recomputing every
// hash, and checks every signed checkpoint of the log against it. The
// report names the first seq that is wrong: an edited event (its hash), a
// deleted one (a gap), two swapped (their hashes and links), a removed
// tail or a database replaced by an older copy (a checkpoint, or the head
// row, beyond the last event). Errors are for failures to read, not for a
// log that does not verify.
//
// The log is read in seq order and hashed on several goroutines at once
// (see walk).
func (s *Service) Verify(ctx context.Context, logID string) (Report, error) {
	var rep Report
	cps, badCP, err := s.checkpoints(ctx, logID)
	if err != nil {
		return rep, err
	}
	if n := len(cps); n > 0 {
		latest := cps[n-1]
		rep.Checkpoint = &latest
	}
	fail := func(seq int64, format string, args ...any) (Report, error) {
		rep.OK = false
		rep.FirstBadSeq = &seq
		rep.Problem = fmt.Sprintf(format, args...)
		return rep, nil
	}
	if badCP != nil {
		return fail(badCP.Seq, "the checkpoint at seq %d does not carry a valid signature of this server's keyring", badCP.Seq)
	}
	err = s.logDB(ctx, logID, func(db *store.DB) error {
		if err := s.chain(ctx, db, logID); err != nil {
			return err
		}
		var err error
		rep, err = s.walk(ctx, db, logID, cps, rep)
		return err
	})
	return rep, err
}

// verifyChunk is how many events one piece of Verify's work holds.
const verifyChunk = 4096

// verifyHashers is how many pieces are hashed at once.
func verifyHashers() int { return min(max(runtime.GOMAXPROCS(0), 1), 4) }

// vpiece is a run of stored records, in seq order, as Verify checks them:
// each record's hash is recomputed over its body and the stored hash of
// the record before it (first, for recs[0]: the last stored hash of the
// piece before, nil for the first piece), and the keys of its event are
// added to the bloom of its block, on several goroutines at once; the
// walk then checks, in order, that each record follows the one before it
// and that its stored hash is the one recomputed, so the chain holds from
// the log's start, and that each complete block's stored bloom holds the
// keys of its events.
type vpiece struct {
	recs     []record
	first    []byte // the stored hash of the record before recs[0]; nil if none
	sums     [][sha256.Size]byte
	blooms   map[int64]bloom // the keys of recs' events, by block
	unparsed int             // the index of the first record whose body does not parse; len(recs) if none
	bad      error           // the segment after recs does not parse
	done     chan struct{}
}

func (p *vpiece) hash(logID string) {
	defer close(p.done)
	p.sums = make([][sha256.Size]byte, len(p.recs))
	p.blooms = map[int64]bloom{}
	p.unparsed = len(p.recs)
	buf := make([]byte, 0, 1024)
	var f fields
	for i, r := range p.recs {
		if f.parse(r.body) != nil {
			p.unparsed = min(p.unparsed, i)
		} else {
			b := p.blooms[blockOf(r.seq)]
			if b == nil {
				b = make(bloom, bloomBytes)
				p.blooms[blockOf(r.seq)] = b
			}
			b.addEvent(&f)
		}
		prev := p.first
		if i > 0 {
			prev = p.recs[i-1].hash
		}
		if prev == nil {
			continue // the walk hashes it over the start of the log
		}
		p.sums[i], buf = sumOf(buf, logID, prev, r.body)
	}
}

// bloomHolds reports whether block b's stored bloom, if it has one, holds
// every bit of keys (the bloom of its events that Verify built).
func bloomHolds(ctx context.Context, db *store.DB, b int64, keys bloom) (bool, error) {
	var stored []byte
	err := db.SQL().QueryRowContext(ctx, "SELECT bits FROM audit_blooms WHERE block = $1", b).Scan(&stored)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return true, nil // a query reads the block
	case err != nil:
		return false, fmt.Errorf("audit: verify: %w", err)
	case len(stored) != bloomBytes:
		return true, nil // not tested by queries either (bloom.has)
	}
	for i, k := range keys {
		if k&^stored[i] != 0 {
			return false, nil
		}
	}
	return true, nil
}

// walk checks the log from its start (its first event, or the signed
// retention base) to its head as read first, and names the first problem.
func (s *Service) walk(ctx context.Context, db *store.DB, logID string, cps []Checkpoint, rep Report) (Report, error) {
	fail := func(seq int64, format string, args ...any) (Report, error) {
		rep.OK = false
		rep.FirstBadSeq = &seq
		rep.Problem = fmt.Sprintf(format, args...)
		return rep, nil
	}
	// Read the head before the events: events appended meanwhile are past
	// it and not checked; the walk stops at it.
	h, err := readHead(ctx, db.SQL())
	if err != nil {
		return rep, err
	}
	prev, next := genesis(logID), int64(1)
	verified := int64(0) // seq of the last checkpoint matched
	if h.baseSeq > 0 {
		found := false
		for _, c := range cps {
			if c.Kind == Retention && c.Seq == h.baseSeq && bytes.Equal(c.hash, h.baseHash) {
				found = true
			}
		}
		if !found {
			return fail(h.baseSeq+1, "the log starts after seq %d, but no signed retention checkpoint says events up to it were removed", h.baseSeq)
		}
		prev, next, verified = h.baseHash, h.baseSeq+1, h.baseSeq
	}
	ci := 0
	for ci < len(cps) && cps[ci].Seq < next {
		ci++
	}

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	hashers := verifyHashers()
	ordered := make(chan *vpiece, 2*hashers)
	work := make(chan *vpiece, 2*hashers)
	for range hashers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				p.hash(logID)
			}
		}()
	}
	var readErr error
	wg.Add(1)
	go func() { // the reader: the log's segments, oldest first, cut into pieces
		defer wg.Done()
		defer close(work)
		defer close(ordered)
		cur := &vpiece{done: make(chan struct{})}
		var last []byte
		send := func() bool {
			select {
			case ordered <- cur:
			case <-ctx.Done():
				return false
			}
			select {
			case work <- cur:
			case <-ctx.Done():
				return false
			}
			cur = &vpiece{first: last, done: make(chan struct{})}
			return true
		}
		readErr = scanSegments(ctx, db.SQL(), next, h.seq, false, func(start int64, seg []byte) (bool, error) {
			seg = bytes.Clone(seg)
			err := records(seg, func(r record) bool {
				if r.seq > h.seq {
					return false // appended after the head was read
				}
				cur.recs = append(cur.recs, r)
				last = r.hash
				return true
			})
			if err != nil {
				cur.bad = segmentError(start, err)
				send()
				return false, nil
			}
			if len(cur.recs) >= verifyChunk {
				return send(), nil
			}
			return true, nil
		})
		if readErr == nil && (len(cur.recs) > 0 || cur.bad != nil) {
			send()
		}
	}()
	buf := make([]byte, 0, 1024)
	markSeen := false           // the event the head row names was read, with its hash
	blooms := map[int64]bloom{} // the keys of the blocks being read
	for p := range ordered {
		select {
		case <-p.done:
		case <-ctx.Done():
			return rep, ctx.Err()
		}
		for i, r := range p.recs {
			if r.seq < next {
				return fail(r.seq, "event %d lies before the start of the log (seq %d)", r.seq, next)
			}
			if r.seq != next {
				return fail(next, "event %d is missing (the next one is %d)", next, r.seq)
			}
			sum, used := p.sums[i], p.first
			if i > 0 {
				used = p.recs[i-1].hash
			}
			if used == nil || !bytes.Equal(used, prev) { // the start of the log
				sum, buf = sumOf(buf, logID, prev, r.body)
			}
			if !bytes.Equal(sum[:], r.hash) {
				return fail(r.seq, "event %d does not match its hash: it was changed after it was written, or the event before it was rewritten", r.seq)
			}
			if i >= p.unparsed {
				return fail(r.seq, "event %d cannot be read: its stored fields are malformed", r.seq)
			}
			if r.seq == h.mark {
				markSeen = bytes.Equal(sum[:], h.markHash)
			}
			for ci < len(cps) && cps[ci].Seq == r.seq {
				if !bytes.Equal(cps[ci].hash, sum[:]) {
					return fail(verified+1, "the events from seq %d to %d are not those signed in the checkpoint at seq %d (rewritten)", verified+1, r.seq, r.seq)
				}
				verified = r.seq
				ci++
			}
			prev = r.hash
			rep.EventsChecked++
			next++
		}
		// The blooms: each block's keys gathered piece by piece, and
		// checked against the stored bloom once every event of the block
		// is (a bloom that lacks a key would hide its events from
		// queries).
		for b, keys := range p.blooms {
			if acc := blooms[b]; acc != nil {
				for i := range acc {
					acc[i] |= keys[i]
				}
			} else {
				blooms[b] = keys
			}
		}
		for b, keys := range blooms {
			if blockSeqs(b).hi >= next {
				continue // not all read yet
			}
			delete(blooms, b)
			ok, err := bloomHolds(ctx, db, b, keys)
			if err != nil {
				return rep, err
			}
			if !ok {
				lo := max(blockSeqs(b).lo, h.baseSeq+1)
				return fail(lo, "the bloom of the events from seq %d to %d lacks some of their keys: queries would not find them (the bloom was changed)", lo, blockSeqs(b).hi)
			}
		}
		if p.bad != nil {
			return fail(next, "the events from seq %d on cannot be read: %v", next, p.bad)
		}
	}
	cancel()
	wg.Wait()
	if readErr != nil && ctx.Err() == nil {
		return rep, fmt.Errorf("audit: verify: %w", readErr)
	}
	last := next - 1
	rep.Head = HeadInfo{Seq: last, Hash: hex.EncodeToString(prev)}
	if last == h.baseSeq {
		rep.Head.Hash = hex.EncodeToString(h.baseHash)
	}
	if last != h.seq || (last > h.baseSeq && !bytes.Equal(prev, h.hash)) {
		return fail(last+1, "events after seq %d are missing: the log's head is at seq %d (truncated)", last, h.seq)
	}
	if h.mark > h.baseSeq && !markSeen {
		return fail(verified+1, "the events from seq %d to %d are not those the log's head row names at seq %d (rewritten)", verified+1, h.mark, h.mark)
	}
	if ci < len(cps) {
		c := cps[len(cps)-1]
		return fail(last+1, "events after seq %d are missing: a checkpoint signed at %s covers seq %d (truncated, or replaced with an older copy)",
			last, c.CreatedAt.Format("2006-01-02T15:04:05Z07:00"), c.Seq)
	}
	rep.OK = true
	return rep, nil
}
