package audit

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"

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
		var err error
		rep, err = s.walk(ctx, db, logID, cps, rep)
		return err
	})
	return rep, err
}

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
	rows, err := db.SQL().QueryContext(ctx, "SELECT "+eventColumns+" FROM audit_events WHERE seq <= $1 ORDER BY seq", h.seq)
	if err != nil {
		return rep, fmt.Errorf("audit: verify: %w", err)
	}
	defer rows.Close()
	var e rawEvent
	buf := make([]byte, 0, 1024)
	for rows.Next() {
		if err := scanEvent(rows, &e); err != nil {
			return rep, fmt.Errorf("audit: verify: %w", err)
		}
		if e.Seq < next {
			return fail(e.Seq, "event %d lies before the start of the log (seq %d)", e.Seq, next)
		}
		if e.Seq != next {
			return fail(next, "event %d is missing (the next one is %d)", next, e.Seq)
		}
		if !bytes.Equal(e.prevHash, prev) {
			return fail(e.Seq, "event %d does not link to the event before it (removed, reordered or rewritten)", e.Seq)
		}
		var sum []byte
		sum, buf = chainHash(buf, logID, prev, &e.Event, e.details)
		if !bytes.Equal(sum, e.hash) {
			return fail(e.Seq, "event %d was changed after it was written (its hash does not match its content)", e.Seq)
		}
		for ci < len(cps) && cps[ci].Seq == e.Seq {
			if !bytes.Equal(cps[ci].hash, sum) {
				return fail(verified+1, "the events from seq %d to %d are not those signed in the checkpoint at seq %d (rewritten)", verified+1, e.Seq, e.Seq)
			}
			verified = e.Seq
			ci++
		}
		prev = append(prev[:0:0], sum...)
		rep.EventsChecked++
		next++
	}
	if err := rows.Err(); err != nil {
		return rep, fmt.Errorf("audit: verify: %w", err)
	}
	last := next - 1
	rep.Head = HeadInfo{Seq: last, Hash: hex.EncodeToString(prev)}
	if last == h.baseSeq {
		rep.Head.Hash = hex.EncodeToString(h.baseHash)
	}
	if last != h.seq || (last > h.baseSeq && !bytes.Equal(prev, h.hash)) {
		return fail(last+1, "events after seq %d are missing: the log's head is at seq %d (truncated)", last, h.seq)
	}
	if ci < len(cps) {
		c := cps[len(cps)-1]
		return fail(last+1, "events after seq %d are missing: a checkpoint signed at %s covers seq %d (truncated, or replaced with an older copy)",
			last, c.CreatedAt.Format("2006-01-02T15:04:05Z07:00"), c.Seq)
	}
	rep.OK = true
	return rep, nil
}
