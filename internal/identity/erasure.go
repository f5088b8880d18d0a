package identity

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"bulwark/internal/apperr"
	"bulwark/internal/audit"
	"bulwark/internal/store"
)

// Export is everything the control database holds about a user, for the
// user (data portability). Secrets are not in it, only that they exist
// and when they were set: the password's hash, TOTP secret and recovery
// codes stay server-side.
type Export struct {
	Profile  User             `json:"profile"`
	Password ExportedPassword `json:"password"`
	MFA      ExportedMFA      `json:"mfa"`
	Sessions []ExportedSess   `json:"sessions"`
	APIKeys  []ExportedKey    `json:"api_keys_created"`
	// Events are the control-plane audit events by or about the user.
	Events []audit.Event `json:"events"`
}

// ExportedPassword is what is known of the password.
type ExportedPassword struct {
	SetAt        time.Time  `json:"set_at"`
	HistoryKept  int        `json:"previous_hashes_kept"`
	FailedLogins int        `json:"failed_logins"`
	LockedUntil  *time.Time `json:"locked_until"`
}

// ExportedMFA is what is known of the second factor.
type ExportedMFA struct {
	TOTPEnabledAt     *time.Time `json:"totp_enabled_at"`
	RecoveryCodesLeft int        `json:"recovery_codes_left"`
}

// ExportedSess is one session, live or ended.
type ExportedSess struct {
	ID           string     `json:"id"`
	CreatedAt    time.Time  `json:"created_at"`
	LastUsedAt   time.Time  `json:"last_used_at"`
	RevokedAt    *time.Time `json:"revoked_at"`
	RevokeReason string     `json:"revoke_reason,omitempty"`
	IP           string     `json:"ip"`
	UserAgent    string     `json:"user_agent"`
	AMR          string     `json:"amr"`
}

// ExportedKey is an API key the user created (its secret is never kept).
type ExportedKey struct {
	ID        string    `json:"id"`
	OrgID     string    `json:"org_id"`
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
}

// ExportUser returns everything held about userID.
func (s *Service) ExportUser(ctx context.Context, userID string) (Export, error) {
	db := s.st.Control().SQL()
	u, err := s.userByID(ctx, db, userID)
	if err != nil {
		return Export{}, apperr.Errorf(apperr.NotFound, "user not found")
	}
	var out Export
	if out.Profile, err = s.public(ctx, u); err != nil {
		return Export{}, err
	}
	out.Password = ExportedPassword{SetAt: u.passwordSetAt.UTC(), FailedLogins: u.failed}
	if u.lockedUntil.Valid {
		t := u.lockedUntil.Time.UTC()
		out.Password.LockedUntil = &t
	}
	if u.totpEnabledAt.Valid {
		t := u.totpEnabledAt.Time.UTC()
		out.MFA.TOTPEnabledAt = &t
	}
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM password_history WHERE user_id = $1", userID).Scan(&out.Password.HistoryKept); err != nil {
		return Export{}, err
	}
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1", userID).Scan(&out.MFA.RecoveryCodesLeft); err != nil {
		return Export{}, err
	}
	rows, err := db.QueryContext(ctx, `SELECT id, created_at, last_used_at, revoked_at, revoke_reason, ip, user_agent, amr
FROM sessions WHERE user_id = $1 ORDER BY created_at`, userID)
	if err != nil {
		return Export{}, err
	}
	out.Sessions = []ExportedSess{}
	for rows.Next() {
		var e ExportedSess
		var revoked sql.NullTime
		if err := rows.Scan(&e.ID, &e.CreatedAt, &e.LastUsedAt, &revoked, &e.RevokeReason, &e.IP, &e.UserAgent, &e.AMR); err != nil {
			rows.Close()
			return Export{}, err
		}
		e.CreatedAt, e.LastUsedAt = e.CreatedAt.UTC(), e.LastUsedAt.UTC()
		if revoked.Valid {
			t := revoked.Time.UTC()
			e.RevokedAt = &t
		}
		out.Sessions = append(out.Sessions, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return Export{}, err
	}
	rows, err = db.QueryContext(ctx, "SELECT id, org_id, name, role, created_at FROM api_keys WHERE created_by = $1 ORDER BY created_at", userID)
	if err != nil {
		return Export{}, err
	}
	out.APIKeys = []ExportedKey{}
	for rows.Next() {
		var k ExportedKey
		if err := rows.Scan(&k.ID, &k.OrgID, &k.Name, &k.Role, &k.CreatedAt); err != nil {
			rows.Close()
			return Export{}, err
		}
		k.CreatedAt = k.CreatedAt.UTC()
		out.APIKeys = append(out.APIKeys, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return Export{}, err
	}
	out.Events = []audit.Event{}
	seen := map[int64]bool{}
	for _, f := range []audit.Filter{{Actor: audit.ActorUser + ":" + userID}, {Resource: "user:" + userID}} {
		var buf bytes.Buffer
		if _, err := s.audit.Export(ctx, audit.ControlLog, f, audit.JSONL, &buf); err != nil {
			return Export{}, err
		}
		dec := json.NewDecoder(&buf)
		for dec.More() {
			var e audit.Event
			if err := dec.Decode(&e); err != nil {
				return Export{}, fmt.Errorf("identity: export events: %w", err)
			}
			if !seen[e.Seq] {
				seen[e.Seq] = true
				out.Events = append(out.Events, e)
			}
		}
	}
	return out, nil
}

// EraseUser deletes userID's account after checking its password: the
// profile (address, name), password and its history, second factor,
// sessions (revoked at once) and pending tokens. also, when not nil, runs
// in the same transaction (the org memberships); its error undoes all.
// The audit log keeps the user's id in the events it has (a chain cannot
// be rewritten), never an address or a name; the erasure is one more.
func (s *Service) EraseUser(ctx context.Context, src audit.Source, userID, pw string, also func(ctx context.Context, tx *store.Tx) error) error {
	u, err := s.userByID(ctx, s.st.Control().SQL(), userID)
	if err != nil {
		return apperr.Errorf(apperr.NotFound, "user not found")
	}
	ok, _, err := s.opts.Passwords.Verify(ctx, u.hash, pw)
	if err != nil && !ok && (apperr.CodeOf(err) == apperr.Unavailable || apperr.CodeOf(err) == apperr.RateLimited) {
		return err
	}
	if !ok {
		return apperr.WithFields("the password is wrong", apperr.FieldError{Field: "password", Code: "wrong"})
	}
	var revoked []string
	err = s.st.Control().InTx(ctx, func(tx *store.Tx) error {
		if also != nil {
			if err := also(ctx, tx); err != nil {
				return err
			}
		}
		var err error
		if revoked, err = s.revokeOthers(ctx, tx, userID, "", "account_erased"); err != nil {
			return err
		}
		for _, q := range []string{
			"DELETE FROM refresh_tokens WHERE session_id IN (SELECT id FROM sessions WHERE user_id = $1)",
			"DELETE FROM sessions WHERE user_id = $1",
			"DELETE FROM password_history WHERE user_id = $1",
			"DELETE FROM recovery_codes WHERE user_id = $1",
			"DELETE FROM email_tokens WHERE user_id = $1",
			"DELETE FROM mfa_challenges WHERE user_id = $1",
			"DELETE FROM users WHERE id = $1",
		} {
			if _, err := tx.ExecContext(ctx, q, userID); err != nil {
				return fmt.Errorf("identity: erase: %w", err)
			}
		}
		return s.controlEvent(ctx, tx, src, "user.erased", userID, audit.Success, nil)
	})
	if err != nil {
		return err
	}
	s.revoked.revoke(revoked...)
	return nil
}
