package org

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"bulwark/internal/apperr"
	"bulwark/internal/store"
)

// Open returns the org's database for one use; the caller must Release
// it. By id it costs no control query while the handle is cached; a slug
// is resolved first. Returns not_found for an unknown or deleted org and
// forbidden "org is suspended" for a suspended one.
func (s *Service) Open(ctx context.Context, idOrSlug string) (*store.OrgDB, error) {
	id := idOrSlug
	if !store.ValidOrgID(idOrSlug) {
		o, err := s.Get(ctx, idOrSlug)
		if err != nil {
			return nil, err
		}
		id = o.ID
	}
	return s.st.AcquireOrg(ctx, id)
}

// gate runs before every cold open of an org database.
func (s *Service) gate(ctx context.Context, orgID string) error {
	var status string
	err := s.st.Control().SQL().QueryRowContext(ctx, "SELECT status FROM orgs WHERE id = $1", orgID).Scan(&status)
	if errors.Is(err, sql.ErrNoRows) || status == string(Deleted) {
		return apperr.Errorf(apperr.NotFound, "org not found")
	}
	if err != nil {
		return fmt.Errorf("org gate: %w", err)
	}
	if status != string(Active) {
		return apperr.Errorf(apperr.Forbidden, "org is suspended")
	}
	return nil
}

// checkOwner refuses an org database that does not name orgID in
// org_meta: a file restored or copied to the wrong place must not serve
// another org's data.
func (s *Service) checkOwner(ctx context.Context, orgID string, db *store.DB) error {
	rows, err := db.SQL().QueryContext(ctx, "SELECT org_id FROM org_meta")
	if err != nil {
		return fmt.Errorf("org %s: read org_meta: %w", orgID, err)
	}
	defer rows.Close()
	var owners []string
	for rows.Next() {
		var owner string
		if err := rows.Scan(&owner); err != nil {
			return fmt.Errorf("org %s: read org_meta: %w", orgID, err)
		}
		owners = append(owners, owner)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("org %s: read org_meta: %w", orgID, err)
	}
	if len(owners) != 1 || owners[0] != orgID {
		s.log.Error("org database belongs to another org: refused", "org_id", orgID, "owners", owners)
		return fmt.Errorf("org %s: database belongs to %v: refused", orgID, owners)
	}
	return nil
}

// Watch evicts, every `every`, the handles of orgs that were suspended or
// deleted since the last look, so that a change made by another process
// (the CLI, another node) takes effect here within `every`. It returns
// when ctx is done; run it in its own goroutine.
func (s *Service) Watch(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	// The first look covers all time; later looks overlap the previous one
	// by a margin for commits that landed late and for clock skew between
	// processes (updated_at is written by their clocks).
	var since time.Time
	for {
		started := s.st.Now()
		if err := s.evictChanged(ctx, since); err != nil && ctx.Err() == nil {
			s.log.Warn("org watch", "err", err)
		} else if err == nil {
			since = started.Add(-every - time.Minute)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Service) evictChanged(ctx context.Context, since time.Time) error {
	rows, err := s.st.Control().SQL().QueryContext(ctx,
		"SELECT id FROM orgs WHERE status <> 'active' AND updated_at >= $1", since)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return err
		}
		s.st.Evict(id)
	}
	return rows.Err()
}
