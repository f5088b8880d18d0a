package audit

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"bulwark/internal/apperr"
	"bulwark/internal/store"
)

// DefaultRetentionDays is how long events are kept unless an org says
// otherwise.
const DefaultRetentionDays = 365

// Prune removes the events of log logID written before `before`. It
// verifies the log first (a log that does not verify is not pruned: that
// would hide the damage), then signs a retention checkpoint of the last
// event it removes, so that the rest of the chain still verifies from
// there, then deletes the events and records the base in the log's head,
// with an audit.pruned event, in one transaction. Events are removed only
// up to the first event written at or after `before`, so none younger
// than the limit goes. Returns the number of events removed.
func (s *Service) Prune(ctx context.Context, logID string, before time.Time) (int64, error) {
	rep, err := s.Verify(ctx, logID)
	if err != nil {
		return 0, err
	}
	if !rep.OK {
		return 0, apperr.Errorf(apperr.Conflict, "audit log %s does not verify (first bad seq %d: %s); it is not pruned", logID, *rep.FirstBadSeq, rep.Problem)
	}
	var upTo int64
	var upToHash []byte
	var h head
	err = s.logDB(ctx, logID, func(db *store.DB) error {
		var err error
		if h, err = readHead(ctx, db.SQL()); err != nil {
			return err
		}
		// The oldest events first, by seq (no index of times): the walk
		// reads the events this pruning removes, and one more.
		upTo = h.seq
		err = scanEvents(ctx, db.SQL(), h.baseSeq+1, h.seq, false, func(f *fields, hash []byte) (bool, error) {
			t, err := eventTime(f.f[fTime])
			if err != nil {
				return false, fmt.Errorf("event %d: %w", f.seq, err)
			}
			if !t.Before(before) {
				upTo = f.seq - 1
				return false, nil
			}
			upToHash = append(upToHash[:0], hash...)
			return true, nil
		})
		if err != nil {
			return fmt.Errorf("audit: prune: %w", err)
		}
		if upTo <= h.baseSeq {
			upTo = 0
			return nil
		}
		return db.Sync() // before the event it signs is vouched for elsewhere
	})
	if err != nil || upTo == 0 {
		return 0, err
	}
	if _, err := s.sign(ctx, logID, upTo, upToHash, Retention); err != nil {
		return 0, err
	}
	var removed int64
	err = s.InLogTx(ctx, logID, func(tx *store.Tx) error {
		// Another pruning may have run meanwhile: go on only from the base
		// that was verified.
		cur, err := readHead(ctx, tx)
		if err != nil {
			return err
		}
		if cur.baseSeq != h.baseSeq || !bytes.Equal(cur.baseHash, h.baseHash) {
			return errPruneRace
		}
		if err := cutSegments(ctx, tx, upTo); err != nil {
			return fmt.Errorf("audit: prune: %w", err)
		}
		removed = upTo - cur.baseSeq
		if _, err := tx.ExecContext(ctx, "UPDATE audit_head SET base_seq = $1, base_hash = $2 WHERE id = 1", upTo, upToHash); err != nil {
			return fmt.Errorf("audit: prune: %w", err)
		}
		_, err = s.Append(ctx, tx, logID, System.Event("audit.pruned", Resource{Type: "audit_log", ID: logID}, Success,
			map[string]string{"removed": strconv.FormatInt(removed, 10), "up_to_seq": strconv.FormatInt(upTo, 10),
				"before": before.UTC().Format(time.RFC3339)}))
		return err
	})
	if errors.Is(err, errPruneRace) {
		return 0, nil
	}
	return removed, err
}

var errPruneRace = errors.New("audit: pruned by another process meanwhile")

// cutSegments removes the stored events up to seq upTo: the segments
// that end by it, and the first records of the one that holds it (written
// again from upTo+1), with the blooms of the blocks that end by it.
func cutSegments(ctx context.Context, tx *store.Tx, upTo int64) error {
	var start int64
	var seg []byte
	err := tx.QueryRowContext(ctx, "SELECT seq_start, events FROM audit_segments WHERE seq_start <= $1 AND seq_end > $1", upTo).Scan(&start, &seg)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		seg = nil
	case err != nil:
		return err
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM audit_segments WHERE seq_start <= $1", upTo); err != nil {
		return err
	}
	if seg != nil {
		var rest []byte
		var end int64
		if err := records(seg, func(r record) bool {
			if r.seq > upTo {
				rest = appendRecord(rest, r.body, r.hash)
				end = r.seq
			}
			return true
		}); err != nil {
			return segmentError(start, err)
		}
		if _, err := tx.ExecContext(ctx, insertSegmentSQL, upTo+1, end, rest); err != nil {
			return err
		}
	}
	_, err = tx.ExecContext(ctx, "DELETE FROM audit_blooms WHERE block < $1", upTo/blockEvents)
	return err
}
