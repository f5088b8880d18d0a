package org

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"bulwark/internal/apperr"
	"bulwark/internal/audit"
	"bulwark/internal/authz"
	"bulwark/internal/store"
)

// Member is a user's membership of an org.
type Member struct {
	UserID    string    `json:"user_id"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Membership is an org and the caller's role in it.
type Membership struct {
	Org  Org
	Role string
}

// Invite is a pending invitation. The address is not kept, only its
// blind index; the token only as its SHA-256.
type Invite struct {
	ID        string    `json:"id"`
	Role      string    `json:"role"`
	InvitedBy string    `json:"invited_by"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// InviteTTL is how long an invitation can be accepted.
const InviteTTL = 7 * 24 * time.Hour

// UseAudit makes the service record member and policy changes: in the
// control-plane log, in the transaction of the change, and in the org's
// own log once it has committed (members and policy live in the control
// database, which the org's log is not in). Call it at startup.
func (s *Service) UseAudit(a *audit.Service) { s.aud = a }

// event records e for org orgID in tx's control log and returns a
// function that copies it to the org's log, to call after the commit.
func (s *Service) event(ctx context.Context, tx *store.Tx, orgID string, e audit.Event) (func(), error) {
	if s.aud == nil {
		return func() {}, nil
	}
	if e.Details == nil {
		e.Details = map[string]string{}
	}
	e.Details["org_id"] = orgID
	if _, err := s.aud.Append(ctx, tx, audit.ControlLog, e); err != nil {
		return nil, err
	}
	return func() {
		delete(e.Details, "org_id")
		if err := s.aud.Record(context.WithoutCancel(ctx), orgID, e); err != nil {
			s.log.Error("copy event to the org's log", "org_id", orgID, "action", e.Action, "err", err)
		}
	}, nil
}

// lockOrg takes the org's row lock in tx (on SQLite the transaction holds
// the database's write lock already), so that checks of its members, such
// as "one owner stays", hold until the commit.
func lockOrg(ctx context.Context, tx *store.Tx, orgID string) error {
	res, err := tx.ExecContext(ctx, "UPDATE orgs SET updated_at = updated_at WHERE id = $1 AND status <> 'deleted'", orgID)
	if err != nil {
		return fmt.Errorf("lock org: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return apperr.Errorf(apperr.NotFound, "organization not found")
	}
	return nil
}

// CreateOwned creates an org (as Create) whose first member, an owner,
// is ownerID: a user's own new org.
func (s *Service) CreateOwned(ctx context.Context, src audit.Source, name, slug, ownerID string) (Org, error) {
	var after func()
	o, err := s.create(ctx, name, slug, func(tx *store.Tx, o Org) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO org_members (org_id, user_id, role, created_at, updated_at)
VALUES ($1, $2, 'owner', $3, $3)`, o.ID, ownerID, tx.Now); err != nil {
			return fmt.Errorf("add owner: %w", err)
		}
		var err error
		after, err = s.event(ctx, tx, o.ID, src.Event("member.added", audit.Resource{Type: "member", ID: ownerID}, audit.Success,
			map[string]string{"role": string(authz.Owner), "via": "org_created"}))
		return err
	})
	if err != nil {
		return Org{}, err
	}
	after()
	return o, nil
}

// Role returns userID's role in org orgID, "" when they are not a member.
func (s *Service) Role(ctx context.Context, orgID, userID string) (authz.Role, error) {
	var role string
	err := s.st.Control().SQL().QueryRowContext(ctx, "SELECT role FROM org_members WHERE org_id = $1 AND user_id = $2", orgID, userID).Scan(&role)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read membership: %w", err)
	}
	return authz.Role(role), nil
}

// OrgsOf returns the orgs (not deleted) that userID belongs to, by slug.
func (s *Service) OrgsOf(ctx context.Context, userID string) ([]Membership, error) {
	rows, err := s.st.Control().SQL().QueryContext(ctx, `SELECT o.id, o.slug, o.name, o.status, o.created_at, o.updated_at, m.role
FROM org_members m JOIN orgs o ON o.id = m.org_id WHERE m.user_id = $1 AND o.status <> 'deleted' ORDER BY o.slug`, userID)
	if err != nil {
		return nil, fmt.Errorf("list orgs of user: %w", err)
	}
	defer rows.Close()
	out := []Membership{}
	for rows.Next() {
		var m Membership
		var status string
		if err := rows.Scan(&m.Org.ID, &m.Org.Slug, &m.Org.Name, &status, &m.Org.CreatedAt, &m.Org.UpdatedAt, &m.Role); err != nil {
			return nil, err
		}
		m.Org.Status = Status(status)
		m.Org.CreatedAt, m.Org.UpdatedAt = m.Org.CreatedAt.UTC(), m.Org.UpdatedAt.UTC()
		out = append(out, m)
	}
	return out, rows.Err()
}

// Members returns a page of org orgID's members, by user id. cursor is ""
// or the last user id of the previous page.
func (s *Service) Members(ctx context.Context, orgID string, limit int, after string) ([]Member, error) {
	rows, err := s.st.Control().SQL().QueryContext(ctx, `SELECT user_id, role, created_at, updated_at FROM org_members
WHERE org_id = $1 AND user_id > $2 ORDER BY user_id LIMIT $3`, orgID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list members: %w", err)
	}
	defer rows.Close()
	out := []Member{}
	for rows.Next() {
		var m Member
		if err := rows.Scan(&m.UserID, &m.Role, &m.CreatedAt, &m.UpdatedAt); err != nil {
			return nil, err
		}
		m.CreatedAt, m.UpdatedAt = m.CreatedAt.UTC(), m.UpdatedAt.UTC()
		out = append(out, m)
	}
	return out, rows.Err()
}

var errNoMember = apperr.Errorf(apperr.NotFound, "member not found")

func badRole() error {
	return apperr.WithFields("role must be owner, admin, member or viewer", apperr.FieldError{Field: "role", Code: "invalid"})
}

// member reads a membership in tx.
func member(ctx context.Context, tx *store.Tx, orgID, userID string) (Member, error) {
	var m Member
	err := tx.QueryRowContext(ctx, "SELECT user_id, role, created_at, updated_at FROM org_members WHERE org_id = $1 AND user_id = $2",
		orgID, userID).Scan(&m.UserID, &m.Role, &m.CreatedAt, &m.UpdatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return Member{}, errNoMember
	}
	if err != nil {
		return Member{}, fmt.Errorf("read member: %w", err)
	}
	m.CreatedAt, m.UpdatedAt = m.CreatedAt.UTC(), m.UpdatedAt.UTC()
	return m, nil
}

// owners counts the org's owners in tx.
func owners(ctx context.Context, tx *store.Tx, orgID string) (int, error) {
	var n int
	err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM org_members WHERE org_id = $1 AND role = 'owner'", orgID).Scan(&n)
	return n, err
}

var errLastOwner = apperr.Errorf(apperr.Conflict, "the last owner cannot leave or be demoted: make another member owner first")

// SetRole changes userID's role in org orgID. by is the caller's role: a
// caller cannot give a role stronger than its own, nor change a member
// whose role is stronger than its own. The last owner cannot be demoted.
func (s *Service) SetRole(ctx context.Context, src audit.Source, orgID string, by authz.Role, userID, role string) (Member, error) {
	if !authz.ValidMemberRole(role) {
		return Member{}, badRole()
	}
	if authz.Rank(authz.Role(role)) > authz.Rank(by) {
		return Member{}, apperr.Errorf(apperr.Forbidden, "you cannot give a role stronger than your own")
	}
	var m Member
	var after func()
	err := s.write(ctx, func(tx *store.Tx) error {
		if err := lockOrg(ctx, tx, orgID); err != nil {
			return err
		}
		var err error
		if m, err = member(ctx, tx, orgID, userID); err != nil {
			return err
		}
		if authz.Rank(authz.Role(m.Role)) > authz.Rank(by) {
			return apperr.Errorf(apperr.Forbidden, "you cannot change a member whose role is stronger than your own")
		}
		if m.Role == role {
			return nil
		}
		if m.Role == string(authz.Owner) {
			n, err := owners(ctx, tx, orgID)
			if err != nil {
				return err
			}
			if n <= 1 {
				return errLastOwner
			}
		}
		if _, err := tx.ExecContext(ctx, "UPDATE org_members SET role = $1, updated_at = $2 WHERE org_id = $3 AND user_id = $4",
			role, tx.Now, orgID, userID); err != nil {
			return err
		}
		from := m.Role
		m.Role, m.UpdatedAt = role, tx.Now
		after, err = s.event(ctx, tx, orgID, src.Event("member.role_changed", audit.Resource{Type: "member", ID: userID}, audit.Success,
			map[string]string{"from": from, "to": role}))
		return err
	})
	if err != nil {
		return Member{}, err
	}
	if after != nil {
		after()
	}
	return m, nil
}

// RemoveMember removes userID from org orgID: a member leaving (userID is
// the caller, byID) or removed by a caller of role by, who cannot remove
// a member whose role is stronger than its own. The last owner cannot.
func (s *Service) RemoveMember(ctx context.Context, src audit.Source, orgID string, by authz.Role, byID, userID string) error {
	var after func()
	err := s.write(ctx, func(tx *store.Tx) error {
		if err := lockOrg(ctx, tx, orgID); err != nil {
			return err
		}
		m, err := member(ctx, tx, orgID, userID)
		if err != nil {
			return err
		}
		if userID != byID && authz.Rank(authz.Role(m.Role)) > authz.Rank(by) {
			return apperr.Errorf(apperr.Forbidden, "you cannot remove a member whose role is stronger than your own")
		}
		if m.Role == string(authz.Owner) {
			n, err := owners(ctx, tx, orgID)
			if err != nil {
				return err
			}
			if n <= 1 {
				return errLastOwner
			}
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM org_members WHERE org_id = $1 AND user_id = $2", orgID, userID); err != nil {
			return err
		}
		action := "member.removed"
		if userID == byID {
			action = "member.left"
		}
		after, err = s.event(ctx, tx, orgID, src.Event(action, audit.Resource{Type: "member", ID: userID}, audit.Success,
			map[string]string{"role": m.Role}))
		return err
	})
	if err != nil {
		return err
	}
	after()
	return nil
}

// hashToken is what is stored of an invitation token.
func hashToken(text string) []byte {
	h := sha256.Sum256([]byte("bulwark/org/invite/v1\x00" + text))
	return h[:]
}

// Invite invites the holder of the address whose blind index is
// emailIndex to org orgID with role, on behalf of a caller of role by
// (who cannot invite to a stronger role than its own). It returns the
// invitation and its single-use token, to be sent to that address; the
// token is not stored.
func (s *Service) Invite(ctx context.Context, src audit.Source, orgID string, by authz.Role, emailIndex []byte, role string) (string, Invite, error) {
	if !authz.ValidMemberRole(role) {
		return "", Invite{}, badRole()
	}
	if authz.Rank(authz.Role(role)) > authz.Rank(by) {
		return "", Invite{}, apperr.Errorf(apperr.Forbidden, "you cannot invite to a role stronger than your own")
	}
	if len(emailIndex) == 0 {
		return "", Invite{}, apperr.WithFields("an e-mail address is required", apperr.FieldError{Field: "email", Code: "required"})
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", Invite{}, fmt.Errorf("invite token: %w", err)
	}
	text := "bwi_" + base64.RawURLEncoding.EncodeToString(raw)
	id, err := uuid.NewV7()
	if err != nil {
		return "", Invite{}, err
	}
	inv := Invite{ID: id.String(), Role: role, InvitedBy: src.Actor.ID}
	var after func()
	err = s.write(ctx, func(tx *store.Tx) error {
		if err := lockOrg(ctx, tx, orgID); err != nil {
			return err
		}
		inv.CreatedAt, inv.ExpiresAt = tx.Now, tx.Now.Add(InviteTTL)
		if _, err := tx.ExecContext(ctx, `INSERT INTO org_invites (id, org_id, email_index, role, token_hash, invited_by, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, inv.ID, orgID, emailIndex, role, hashToken(text), inv.InvitedBy, inv.CreatedAt, inv.ExpiresAt); err != nil {
			return fmt.Errorf("store invite: %w", err)
		}
		var err error
		after, err = s.event(ctx, tx, orgID, src.Event("member.invited", audit.Resource{Type: "invite", ID: inv.ID}, audit.Success,
			map[string]string{"role": role}))
		return err
	})
	if err != nil {
		return "", Invite{}, err
	}
	after()
	return text, inv, nil
}

// Invites returns org orgID's pending invitations (not accepted, not
// expired), newest first.
func (s *Service) Invites(ctx context.Context, orgID string, now time.Time) ([]Invite, error) {
	rows, err := s.st.Control().SQL().QueryContext(ctx, `SELECT id, role, invited_by, created_at, expires_at FROM org_invites
WHERE org_id = $1 AND accepted_at IS NULL AND expires_at > $2 ORDER BY id DESC LIMIT 100`, orgID, now.UTC())
	if err != nil {
		return nil, fmt.Errorf("list invites: %w", err)
	}
	defer rows.Close()
	out := []Invite{}
	for rows.Next() {
		var inv Invite
		if err := rows.Scan(&inv.ID, &inv.Role, &inv.InvitedBy, &inv.CreatedAt, &inv.ExpiresAt); err != nil {
			return nil, err
		}
		inv.CreatedAt, inv.ExpiresAt = inv.CreatedAt.UTC(), inv.ExpiresAt.UTC()
		out = append(out, inv)
	}
	return out, rows.Err()
}

// errBadInvite is the one answer for a token that is unknown, spent,
// expired, revoked or sent to another address.
var errBadInvite = apperr.Errorf(apperr.NotFound, "invitation not found or no longer valid")

// AcceptInvite makes userID, whose address has the blind index
// emailIndex, a member with the invitation's role. The token is spent.
func (s *Service) AcceptInvite(ctx context.Context, src audit.Source, token, userID string, emailIndex []byte) (Org, Member, error) {
	if !strings.HasPrefix(token, "bwi_") || len(token) > 100 {
		return Org{}, Member{}, errBadInvite
	}
	var o Org
	var m Member
	var after func()
	err := s.write(ctx, func(tx *store.Tx) error {
		var id, orgID, role string
		var idx []byte
		var expires time.Time
		var accepted sql.NullTime
		err := tx.QueryRowContext(ctx, "SELECT id, org_id, email_index, role, expires_at, accepted_at FROM org_invites WHERE token_hash = $1",
			hashToken(token)).Scan(&id, &orgID, &idx, &role, &expires, &accepted)
		if errors.Is(err, sql.ErrNoRows) {
			return errBadInvite
		}
		if err != nil {
			return fmt.Errorf("read invite: %w", err)
		}
		if accepted.Valid || !tx.Now.Before(expires) || subtle.ConstantTimeCompare(idx, emailIndex) != 1 {
			return errBadInvite
		}
		if err := lockOrg(ctx, tx, orgID); err != nil {
			return errBadInvite
		}
		if o, err = findOrg(ctx, tx, orgID); err != nil || o.Status != Active {
			return errBadInvite
		}
		if _, err := member(ctx, tx, orgID, userID); err == nil {
			return apperr.Errorf(apperr.Conflict, "you are already a member of this organization")
		}
		if _, err := tx.ExecContext(ctx, "UPDATE org_invites SET accepted_at = $1, accepted_by = $2 WHERE id = $3", tx.Now, userID, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO org_members (org_id, user_id, role, created_at, updated_at)
VALUES ($1, $2, $3, $4, $4)`, orgID, userID, role, tx.Now); err != nil {
			return fmt.Errorf("add member: %w", err)
		}
		m = Member{UserID: userID, Role: role, CreatedAt: tx.Now, UpdatedAt: tx.Now}
		after, err = s.event(ctx, tx, orgID, src.Event("member.added", audit.Resource{Type: "member", ID: userID}, audit.Success,
			map[string]string{"role": role, "via": "invite", "invite_id": id}))
		return err
	})
	if err != nil {
		return Org{}, Member{}, err
	}
	after()
	return o, m, nil
}

// RevokeInvite withdraws a pending invitation of org orgID.
func (s *Service) RevokeInvite(ctx context.Context, src audit.Source, orgID, id string) error {
	var after func()
	err := s.write(ctx, func(tx *store.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM org_invites WHERE id = $1 AND org_id = $2 AND accepted_at IS NULL", id, orgID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return apperr.Errorf(apperr.NotFound, "invitation not found")
		}
		after, err = s.event(ctx, tx, orgID, src.Event("member.invite_revoked", audit.Resource{Type: "invite", ID: id}, audit.Success, nil))
		return err
	})
	if err != nil {
		return err
	}
	after()
	return nil
}

// RemoveUser takes userID out of every org, in tx (the erasure of the
// account): refused with conflict, naming the orgs, while the user is the
// last owner of any org that is not deleted.
func (s *Service) RemoveUser(ctx context.Context, tx *store.Tx, userID string) error {
	defer s.cache.clear()
	rows, err := tx.QueryContext(ctx, `SELECT o.slug FROM org_members m JOIN orgs o ON o.id = m.org_id
WHERE m.user_id = $1 AND m.role = 'owner' AND o.status <> 'deleted'
AND (SELECT COUNT(*) FROM org_members m2 WHERE m2.org_id = m.org_id AND m2.role = 'owner') = 1 ORDER BY o.slug`, userID)
	if err != nil {
		return fmt.Errorf("read ownerships: %w", err)
	}
	var sole []string
	for rows.Next() {
		var slug string
		if err := rows.Scan(&slug); err != nil {
			rows.Close()
			return err
		}
		sole = append(sole, slug)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(sole) > 0 {
		return apperr.Errorf(apperr.Conflict, "you are the last owner of %s: make another member owner, or delete the organization, first",
			strings.Join(sole, ", "))
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM org_members WHERE user_id = $1", userID); err != nil {
		return fmt.Errorf("remove memberships: %w", err)
	}
	return nil
}
