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
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
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
//
// The range is read in pieces, from scanPieceMin seqs growing to
// scanPieceMax, each its own query: PostgreSQL sends every row of a query,
// so a read that stops early (a page of a query) must not ask for the
// whole log.
func scanEvents(ctx context.Context, q querier, lo, hi int64, desc bool, fn func(f *fields, hash []byte) (bool, error)) error {
	var (
		f    fields
		recs []record
		more = true
	)
	piece := func(plo, phi int64) error {
		return scanSegments(ctx, q, plo, phi, desc, func(start int64, seg []byte) (bool, error) {
			recs = recs[:0]
			if err := records(seg, func(r record) bool {
				if r.seq >= plo && r.seq <= phi {
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
				var err error
				if more, err = fn(&f, r.hash); err != nil || !more {
					return false, err
				}
			}
			return true, nil
		})
	}
	if lo <= hi && uint64(hi)-uint64(lo) > 1<<40 { // open-ended: the stored seqs bound it
		var first, last sql.NullInt64
		if err := q.QueryRowContext(ctx, "SELECT MIN(seq_start), MAX(seq_end) FROM audit_segments").Scan(&first, &last); err != nil {
			return fmt.Errorf("audit: read segments: %w", err)
		}
		if !first.Valid {
			return nil
		}
		lo, hi = max(lo, first.Int64), min(hi, last.Int64)
	}
	size := int64(scanPieceMin)
	for lo <= hi && more {
		var plo, phi int64
		if desc {
			phi, plo = hi, max(lo, hi-size+1)
			hi = plo - 1
		} else {
			plo, phi = lo, min(hi, lo+size-1)
			lo = phi + 1
		}
		if err := piece(plo, phi); err != nil {
			return err
		}
		size = min(size*4, scanPieceMax)
	}
	return nil
}

// The pieces of scanEvents.
const (
	scanPieceMin = 256
	scanPieceMax = 65536
)

// eventAt reads the stored event seq; found is false when there is none.
func eventAt(ctx context.Context, db *store.DB, seq int64) (e rawEvent, found bool, err error) {
	err = scanEvents(ctx, db.SQL(), seq, seq, false, func(f *fields, hash []byte) (bool, error) {
		found = true
		return false, f.event(&e, hash)
	})
	return e, found, err
}
