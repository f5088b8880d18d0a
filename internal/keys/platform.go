package keys

import (
	"context"
	"fmt"

	"bulwark/internal/apperr"
	"bulwark/internal/store"
)

// PlatformID is the key owner of data that belongs to no org: the personal
// data of accounts in the control database (e-mail addresses, names, TOTP
// secrets). It is the nil UUID, which no org ever gets (org ids are
// UUIDv7), and has keys of every purpose like an org.
const PlatformID = "00000000-0000-0000-0000-000000000000"

// EnsurePlatformKeys creates the platform's keys if they do not exist yet.
// Concurrent first starts on several nodes end with one set. Returns
// unavailable when the KEK provider cannot be used.
func (r *Ring) EnsurePlatformKeys(ctx context.Context) error {
	var n int
	if err := r.st.Control().SQL().QueryRowContext(ctx,
		"SELECT COUNT(*) FROM org_keys WHERE org_id = $1 AND purpose = $2", PlatformID, purposeData).Scan(&n); err != nil {
		return fmt.Errorf("keys: read platform keys: %w", err)
	}
	if n > 0 {
		return nil
	}
	err := r.st.Control().InTx(ctx, func(tx *store.Tx) error { return r.CreateOrgKeys(ctx, tx, PlatformID) })
	if apperr.CodeOf(err) == apperr.Conflict {
		return nil // another node made them first
	}
	return err
}
