package audit

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"bulwark/internal/store"
)

// A query for a time window ("since", "until") reads the log by seq, not
// by time: an event's time is its transaction's time, so seq and time
// grow together, and a window becomes a seq range that the seq-ordered
// indexes serve (the newest events of a window, or of an actor or an
// outcome within it) without sorting every event of the window.
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
// Both k are found with the time index (the oldest event at or after
// until+L, the newest before since-L), and the query keeps its exact
// time conditions inside that seq range: the result is the same as a scan
// of the whole log, only cheaper.
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
	if !until.IsZero() {
		var k int64
		err := db.SQL().QueryRowContext(ctx, "SELECT seq FROM audit_events WHERE time >= $1 AND seq <= $2 ORDER BY time LIMIT 1",
			until.UTC().Add(tl.lag), tl.upTo).Scan(&k)
		switch {
		case err == nil:
			r.hi = k - 1
		case !errors.Is(err, sql.ErrNoRows):
			return r, fmt.Errorf("audit: query: %w", err)
		}
	}
	if !since.IsZero() {
		var k int64
		err := db.SQL().QueryRowContext(ctx, "SELECT seq FROM audit_events WHERE time < $1 AND seq <= $2 ORDER BY time DESC LIMIT 1",
			since.UTC().Add(-tl.lag), tl.upTo).Scan(&k)
		switch {
		case err == nil:
			r.lo = k + 1
		case !errors.Is(err, sql.ErrNoRows):
			return r, fmt.Errorf("audit: query: %w", err)
		}
	}
	return r, nil
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
		var hash []byte
		err := db.SQL().QueryRowContext(ctx, "SELECT hash FROM audit_events WHERE seq = $1", tl.upTo).Scan(&hash)
		switch {
		case err != nil && !errors.Is(err, sql.ErrNoRows):
			return timeline{}, fmt.Errorf("audit: query: %w", err)
		case err != nil || tl.upTo > h.seq || !bytes.Equal(hash, tl.hash):
			tl = timeline{} // pruned past it, or not the log it read: read it all
		}
	}
	// The scan holds no lock: two queries that find the timeline behind
	// may both read, and the one that read further is kept.
	rows, err := db.SQL().QueryContext(ctx, "SELECT seq, time, hash FROM audit_events WHERE seq > $1 AND seq <= $2 ORDER BY seq", tl.upTo, h.seq)
	if err != nil {
		return timeline{}, fmt.Errorf("audit: query: %w", err)
	}
	defer rows.Close()
	var (
		seq  int64
		t    time.Time
		hash sql.RawBytes
	)
	for rows.Next() {
		if err := rows.Scan(&seq, &t, &hash); err != nil {
			return timeline{}, fmt.Errorf("audit: query: %w", err)
		}
		if tl.newest.After(t) {
			tl.lag = max(tl.lag, tl.newest.Sub(t))
		} else {
			tl.newest = t
		}
		tl.upTo = seq
		tl.hash = append(tl.hash[:0:0], hash...)
	}
	if err := rows.Err(); err != nil {
		return timeline{}, fmt.Errorf("audit: query: %w", err)
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
