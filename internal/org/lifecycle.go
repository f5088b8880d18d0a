package org

import (
	"context"
	"fmt"

	"bulwark/internal/apperr"
	"bulwark/internal/store"
)

// Suspend stops the org's database from being opened: Open returns
// forbidden, and the handle this process holds is evicted (other
// processes learn of it through Watch). Suspending a suspended org
// changes nothing. Operators call it. Returns not_found for an unknown or
// deleted org.
func (s *Service) Suspend(ctx context.Context, idOrSlug string) (Org, error) {
	o, err := s.setStatus(ctx, idOrSlug, Suspended)
	if err != nil {
		return Org{}, err
	}
	s.st.Evict(o.ID)
	return o, nil
}

// Resume makes a suspended org usable again. Resuming an active org
// changes nothing. Operators call it. Returns not_found for an unknown or
// deleted org.
func (s *Service) Resume(ctx context.Context, idOrSlug string) (Org, error) {
	return s.setStatus(ctx, idOrSlug, Active)
}

func (s *Service) setStatus(ctx context.Context, idOrSlug string, status Status) (Org, error) {
	var o Org
	err := s.write(ctx, func(tx *store.Tx) error {
		var err error
		if o, err = findOrg(ctx, tx, idOrSlug); err != nil {
			return err
		}
		if o.Status == status {
			return nil
		}
		o.Status, o.UpdatedAt = status, tx.Now
		if _, err = tx.ExecContext(ctx, "UPDATE orgs SET status = $1, updated_at = $2 WHERE id = $3", string(status), tx.Now, o.ID); err != nil {
			return err
		}
		change := ChangeResumed
		if status == Suspended {
			change = ChangeSuspended
		}
		return s.changed(ctx, tx, o, change)
	})
	if err != nil {
		return Org{}, fmt.Errorf("set org status %s: %w", status, err)
	}
	s.log.Info("org status changed", "org_id", o.ID, "status", string(status))
	return o, nil
}

// Delete deletes the org: it runs the OnDelete hooks (an error stops the
// deletion and is returned), marks the org deleted (the row stays as a
// tombstone and the slug is free again), evicts its handle and drops its
// database. Operators call it. Returns not_found for an unknown or deleted
// org.
func (s *Service) Delete(ctx context.Context, idOrSlug string) (Org, error) {
	o, err := s.Get(ctx, idOrSlug)
	if err != nil {
		return Org{}, err
	}
	s.mu.Lock()
	hooks := append([]func(context.Context, Org) error(nil), s.onDelete...)
	s.mu.Unlock()
	for _, hook := range hooks {
		if err := hook(ctx, o); err != nil {
			return Org{}, fmt.Errorf("org delete hook: %w", err)
		}
	}
	err = s.write(ctx, func(tx *store.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE orgs SET status = 'deleted', updated_at = $1, deleted_at = $1
WHERE id = $2 AND status <> 'deleted'`, tx.Now, o.ID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return apperr.Errorf(apperr.NotFound, "org not found") // deleted meanwhile
		}
		o.Status, o.UpdatedAt = Deleted, tx.Now
		return s.changed(ctx, tx, o, ChangeDeleted)
	})
	if err != nil {
		return Org{}, fmt.Errorf("delete org: %w", err)
	}
	s.st.Evict(o.ID)
	if err := s.st.DropOrgDB(ctx, o.ID); err != nil && apperr.CodeOf(err) != apperr.NotFound {
		s.log.Error("drop database of deleted org", "org_id", o.ID, "err", err)
		return Org{}, fmt.Errorf("drop org database: %w", err)
	}
	s.log.Info("org deleted", "org_id", o.ID)
	return o, nil
}
