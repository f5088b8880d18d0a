package audit

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"math"
	"time"

	"bulwark/internal/store"
)

// A query for a time window ("since", "until") reads the log by seq, not
// by time: an event's time is its transaction's time, so seq and time
// grow together, and a window becomes a seq range, read newest first
// from the segments (and the blooms of its blocks, for the other filters)
// without sorting every event of the window.
//
// They grow together only nearly: a transaction takes its time when it
// starts and its seq when it appends, so an event may be older than some
// event before it. The lag of an event is how much older it is than the
// newest event before it (0 if none is newer); a log's lag is the largest
// of its events'. With L that lag, every event is at least as new as any
// event before it minus L, so:
//
//   - an event k with time(k) ≥ until+L has only events at or after until
//     after it: the window's events all lie before k;
//   - an event k with time(k) < since-L has only events before since
//     before it: the window's events all lie after k.
//
// Both k are found by bisection over seqs (bisector: any k with the
// property will do, so times that do not quite grow with seqs do not
// matter), and the query keeps its exact time conditions inside that seq
// range: the result is the same as a scan of the whole log, only cheaper.
//
// The lag is not stored: a Service learns it by reading each log's event
// times once and then only the events appended since (timelines). The
// range is computed up to the head as read then, and the query reads no
// event past it: it answers as of that head.

// timeline is what a Service knows of a log's event times: up to seq
// upTo, whose hash was hash, the newest time seen and the lag.
type timeline struct {
	upTo   int64
	hash   []byte
	newest time.Time
	lag    time.Duration
}

// seqRange is a range of seqs [lo, hi]; lo > hi is empty.
type seqRange struct{ lo, hi int64 }

var allSeqs = seqRange{0, math.MaxInt64}

// windowSeqs returns the seq range that holds every event of log logID
// with since ≤ time < until (a zero bound is open), as of the log's head
// when it is called.
func (s *Service) windowSeqs(ctx context.Context, db *store.DB, logID string, since, until time.Time) (seqRange, error) {
	tl, err := s.timeline(ctx, db, logID)
	if err != nil {
		return seqRange{}, err
	}
	r := seqRange{0, tl.upTo}
	if until.IsZero() && since.IsZero() {
		return r, nil
	}
	var first sql.NullInt64
	if err := db.SQL().QueryRowContext(ctx, "SELECT MIN(seq_start) FROM audit_segments WHERE seq_start <= $1", tl.upTo).Scan(&first); err != nil {
		return r, fmt.Errorf("audit: query: %w", err)
	}
	if !first.Valid {
		return r, nil // no event
	}
	b := bisector{ctx: ctx, db: db}
	if !until.IsZero() {
		// An event k with time(k) ≥ until+L ends the window: its events
		// all lie before k.
		bound := until.UTC().Add(tl.lag)
		after := func(t time.Time) bool { return !t.Before(bound) }
		if p, found, err := b.at(tl.upTo, after); err != nil {
			return r, err
		} else if found && p {
			k, ok, err := b.step(first.Int64-1, tl.upTo, after)
			if err != nil {
				return r, err
			}
			if ok {
				r.hi = k - 1
			}
		}
	}
	if !since.IsZero() {
		// An event k with time(k) < since-L starts it: its events all lie
		// after k.
		bound := since.UTC().Add(-tl.lag)
		notBefore := func(t time.Time) bool { return !t.Before(bound) }
		if p, found, err := b.at(first.Int64, notBefore); err != nil {
			return r, err
		} else if found && !p {
			k, ok, err := b.step(first.Int64, tl.upTo+1, notBefore)
			if err != nil {
				return r, err
			}
			if ok {
				r.lo = k // k-1 is the last event before since-L
			}
		}
	}
	return r, nil
}

// bisector finds a window's bounds by bisection over seqs, reading one
// event's time per step from its segment, instead of keeping an index of
// every event's time, which every append would pay for. About 20 reads
// over a million events.
type bisector struct {
	ctx context.Context
	db  *store.DB
}

// at reports pred of the time of event seq, and whether there is one.
func (b bisector) at(seq int64, pred func(time.Time) bool) (p, found bool, err error) {
	e, found, err := eventAt(b.ctx, b.db, seq)
	if err != nil || !found {
		return false, false, err
	}
	return pred(e.Time), true, nil
}

// step bisects the seqs strictly between lo and hi, with pred false at
// lo and true at hi (as checked, or taken so for a seq just outside the
// log), and returns k with pred false at k-1 and true at k. Times need not
// grow with seqs for this: any such k is a bound (see the top of this
// file). ok is false when an event in between is missing (a log pruned
// meanwhile): the caller keeps its open bound, which is correct, only
// slower.
func (b bisector) step(lo, hi int64, pred func(time.Time) bool) (int64, bool, error) {
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		p, found, err := b.at(mid, pred)
		if err != nil || !found {
			return 0, false, err
		}
		if p {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi, true, nil
}

// timeline brings the Service's timeline of log logID up to the log's
// head, reading the times of the events appended since it last looked
// (all of them the first time, or when the log is not the one it read:
// the event it stopped at has changed), and returns it.
func (s *Service) timeline(ctx context.Context, db *store.DB, logID string) (timeline, error) {
	h, err := readHead(ctx, db.SQL())
	if err != nil {
		return timeline{}, err
	}
	s.timelineMu.Lock()
	tl := s.timelines[logID]
	s.timelineMu.Unlock()
	if tl.upTo == h.seq && bytes.Equal(tl.hash, h.hash) {
		return tl, nil
	}
	if tl.upTo > 0 {
		// Still the log it read? The event it stopped at must be there,
		// unchanged, and not past the head.
		e, found, err := eventAt(ctx, db, tl.upTo)
		switch {
		case err != nil:
			return timeline{}, fmt.Errorf("audit: query: %w", err)
		case !found || tl.upTo > h.seq || !bytes.Equal(e.hash, tl.hash):
			tl = timeline{} // pruned past it, or not the log it read: read it all
		}
	}
	// The scan holds no lock: two queries that find the timeline behind
	// may both read, and the one that read further is kept.
	err = scanEvents(ctx, db.SQL(), tl.upTo+1, h.seq, false, func(f *fields, hash []byte) (bool, error) {
		t, err := eventTime(f.f[fTime])
		if err != nil {
			return false, fmt.Errorf("audit: query: event %d: %w", f.seq, err)
		}
		if tl.newest.After(t) {
			tl.lag = max(tl.lag, tl.newest.Sub(t))
		} else {
			tl.newest = t
		}
		tl.upTo = f.seq
		tl.hash = append(tl.hash[:0:0], hash...)
		return true, nil
	})
	if err != nil {
		return timeline{}, err
	}
	s.timelineMu.Lock()
	defer s.timelineMu.Unlock()
	if s.timelines == nil {
		s.timelines = map[string]timeline{}
	}
	if cur, ok := s.timelines[logID]; !ok || cur.upTo <= tl.upTo {
		s.timelines[logID] = tl
	}
	return tl, nil
}
