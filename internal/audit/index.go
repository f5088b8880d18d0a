package audit

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"

	"bulwark/internal/store"
)

// indexBatch is how many blooms one transaction of index writes.
const indexBatch = 64

// index builds the blooms (bloom.go) of log logID's complete blocks that
// come after the last block with one and stores them, in transactions of
// their own: the blocks whose events this process committed are built
// from them (bloomFeed), the others read back from the stored events.
// Blocks wholly pruned are skipped. Two indexings of a log at once store
// the same blooms, or a bloom built here where the other read its block
// back; the second insert of a block changes nothing.
func (s *Service) index(ctx context.Context, db *store.DB, logID string) error {
	return s.indexBuilt(ctx, db, logID, s.feed.take(logID))
}

// indexBuilt is index with the blooms built from committed events, taken
// from the feed before the head is read (so that every one of them is of
// a block the head shows complete).
func (s *Service) indexBuilt(ctx context.Context, db *store.DB, logID string, built map[int64]bloom) error {
	h, err := readHead(ctx, db.SQL())
	if err != nil {
		return err
	}
	complete := h.seq / blockEvents // blocks 0 .. complete-1 are full
	var last sql.NullInt64
	if err := db.SQL().QueryRowContext(ctx, "SELECT MAX(block) FROM audit_blooms").Scan(&last); err != nil {
		return fmt.Errorf("audit: index: %w", err)
	}
	from := h.baseSeq / blockEvents
	if last.Valid {
		from = max(from, last.Int64+1)
	}
	for from < complete {
		to := min(from+indexBatch, complete) // blocks [from, to)
		blooms := make([]bloom, to-from)
		for b := from; b < to; {
			if bl := built[b]; bl != nil {
				blooms[b-from] = bl
				b++
				continue
			}
			// Blocks [b, e) were not built here: read them back.
			e := b + 1
			for e < to && built[e] == nil {
				e++
			}
			for i := b; i < e; i++ {
				blooms[i-from] = make(bloom, bloomBytes)
			}
			err := scanEvents(ctx, db.SQL(), max(blockSeqs(b).lo, h.baseSeq+1), blockSeqs(e-1).hi, false, func(f *fields, _ []byte) (bool, error) {
				blooms[blockOf(f.seq)-from].addEvent(f)
				return true, nil
			})
			if err != nil {
				return fmt.Errorf("audit: index: %w", err)
			}
			s.blocksReadBack.Add(e - b)
			b = e
		}
		var b strings.Builder
		b.WriteString("INSERT INTO audit_blooms (block, bits) VALUES ")
		args := make([]any, 0, 2*len(blooms))
		for i, bl := range blooms {
			if i > 0 {
				b.WriteString(", ")
			}
			n := len(args)
			b.WriteString("($" + strconv.Itoa(n+1) + ", $" + strconv.Itoa(n+2) + ")")
			args = append(args, from+int64(i), []byte(bl))
		}
		b.WriteString(" ON CONFLICT (block) DO NOTHING")
		if err := db.InTx(ctx, func(tx *store.Tx) error {
			_, err := tx.ExecContext(ctx, b.String(), args...)
			return err
		}); err != nil {
			return fmt.Errorf("audit: index: %w", err)
		}
		from = to
	}
	s.mu.Lock()
	s.indexed[logID] = max(s.indexed[logID], complete)
	s.mu.Unlock()
	s.wrote(logID, h.seq)
	return nil
}

// wrote notes that log logID's head has reached seq.
func (s *Service) wrote(logID string, seq int64) {
	s.mu.Lock()
	s.written[logID] = max(s.written[logID], seq)
	s.mu.Unlock()
}

// prepareRead makes log logID ready to be read: its inbox chained and its
// blooms built.
func (s *Service) prepareRead(ctx context.Context, db *store.DB, logID string) error {
	if err := s.chain(ctx, db, logID); err != nil {
		return err
	}
	return s.index(ctx, db, logID)
}
