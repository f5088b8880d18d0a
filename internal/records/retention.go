package records

import (
	"context"
	"strconv"
	"time"

	"bulwark/internal/audit"
	"bulwark/internal/store"
)

// PurgeBatch is how many records one purge transaction removes.
const PurgeBatch = 500

// Purge removes, from every collection of the org with a retention, the
// records created more than retention_days before now. Each batch of at
// most PurgeBatch records is one transaction with one "record.purged"
// event (the collection, how many, the cutoff). It returns how many
// records it removed; a failure stops it and leaves the rest for the next
// run. The system calls it.
func (s *Service) Purge(ctx context.Context, orgID string, now time.Time) (int, error) {
	cols, err := s.retained(ctx, orgID)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, c := range cols {
		cutoff := now.Add(-time.Duration(c.RetentionDays) * 24 * time.Hour).UTC()
		for {
			var n int64
			err := s.inTx(ctx, orgID, func(tx *store.Tx) error {
				res, err := tx.ExecContext(ctx, `DELETE FROM records WHERE id IN (
	SELECT id FROM records WHERE collection_id = $1 AND created_at < $2 ORDER BY created_at LIMIT $3)`, c.ID, cutoff, PurgeBatch)
				if err != nil {
					return err
				}
				if n, err = res.RowsAffected(); err != nil || n == 0 {
					return err
				}
				// Index keys go with their records (ON DELETE CASCADE).
				return s.event(ctx, tx, orgID, audit.System.Event("record.purged", audit.Resource{Type: "collection", ID: c.ID}, audit.Success,
					map[string]string{"collection": c.Name, "count": strconv.FormatInt(n, 10),
						"retention_days": strconv.Itoa(c.RetentionDays), "created_before": cutoff.Format(time.RFC3339)}))
			})
			if err != nil {
				return total, err
			}
			total += int(n)
			if n < PurgeBatch {
				break
			}
		}
	}
	return total, nil
}

// retained lists the org's collections that have a retention.
func (s *Service) retained(ctx context.Context, orgID string) ([]Collection, error) {
	return s.queryCollections(ctx, orgID, "SELECT "+collectionColumns+" FROM collections WHERE retention_days > 0 ORDER BY name")
}
