package audit

import (
	"context"
	"database/sql"
	"fmt"

	"bulwark/internal/store"
)

// segmentsSQL reads the segments that hold seqs in [$1, $2]: from the one
// that holds $1 (the last to start at or before it) to the last that
// starts at or before $2.
const (
	segmentsAsc = `SELECT seq_start, events FROM audit_segments
	WHERE seq_start <= $2 AND seq_start >= COALESCE((SELECT MAX(seq_start) FROM audit_segments WHERE seq_start <= $1), $1)
	ORDER BY seq_start`
	segmentsDesc = segmentsAsc + " DESC"
)

// querier is what reads segments: a database or a transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// scanSegments calls fn with each segment that holds a seq in [lo, hi],
// in seq order (newest first when desc), until fn returns false. seg is
// only valid during the call.
func scanSegments(ctx context.Context, q querier, lo, hi int64, desc bool, fn func(start int64, seg []byte) (bool, error)) error {
	query := segmentsAsc
	if desc {
		query = segmentsDesc
	}
	rows, err := q.QueryContext(ctx, query, lo, hi)
	if err != nil {
		return fmt.Errorf("audit: read segments: %w", err)
	}
	defer rows.Close()
	var (
		start int64
		seg   sql.RawBytes
	)
	for rows.Next() {
		if err := rows.Scan(&start, &seg); err != nil {
			return fmt.Errorf("audit: read segments: %w", err)
		}
		more, err := fn(start, seg)
		if err != nil || !more {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("audit: read segments: %w", err)
	}
	return nil
}

// scanEvents calls fn with each stored event with a seq in [lo, hi] whose
// record parses, in seq order (newest first when desc), until fn returns
// false. f is only valid during the call. A record that does not parse
// is an error (Verify names it).
func scanEvents(ctx context.Context, q querier, lo, hi int64, desc bool, fn func(f *fields, hash []byte) (bool, error)) error {
	var (
		f    fields
		recs []record
	)
	return scanSegments(ctx, q, lo, hi, desc, func(start int64, seg []byte) (bool, error) {
		recs = recs[:0]
		if err := records(seg, func(r record) bool {
			if r.seq >= lo && r.seq <= hi {
				recs = append(recs, r)
			}
			return true
		}); err != nil {
			return false, segmentError(start, err)
		}
		for i := range recs {
			r := recs[i]
			if desc {
				r = recs[len(recs)-1-i]
			}
			if err := f.parse(r.body); err != nil {
				return false, segmentError(start, err)
			}
			if more, err := fn(&f, r.hash); err != nil || !more {
				return false, err
			}
		}
		return true, nil
	})
}

// eventAt reads the stored event seq; found is false when there is none.
func eventAt(ctx context.Context, db *store.DB, seq int64) (e rawEvent, found bool, err error) {
	err = scanEvents(ctx, db.SQL(), seq, seq, false, func(f *fields, hash []byte) (bool, error) {
		found = true
		return false, f.event(&e, hash)
	})
	return e, found, err
}
