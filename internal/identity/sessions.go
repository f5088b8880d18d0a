package identity

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"bulwark/internal/apperr"
	"bulwark/internal/audit"
	"bulwark/internal/store"
)

// Tokens is what a login or a refresh gives the client.
type Tokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
}

// Session is a login as its user sees it.
type Session struct {
	ID         string    `json:"id"`
	CreatedAt  time.Time `json:"created_at"`
	LastUsedAt time.Time `json:"last_used_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	IP         string    `json:"ip"`
	UserAgent  string    `json:"user_agent"`
	AMR        []string  `json:"amr"`
	Current    bool      `json:"current"`
}

// errSessionOver is the one answer to a refresh that cannot go on.
var errSessionOver = apperr.Errorf(apperr.Unauthorized, "the session is over; log in again")

// startSession creates a session and its first refresh token in tx. The
// access token is issued after the commit (issueAccess): the keyring may
// write its first signing key, which must not happen inside a transaction
// of the same database.
func (s *Service) startSession(ctx context.Context, tx *store.Tx, userID string, amr []string, src audit.Source) (Tokens, string, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return Tokens{}, "", err
	}
	sid := id.String()
	now := tx.Now
	p := s.opts.Sessions
	ua := src.UserAgent
	if len(ua) > 512 {
		ua = ua[:512]
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO sessions (id, user_id, amr, created_at, last_used_at, idle_expires_at,
	absolute_expires_at, ip, user_agent) VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8)`,
		sid, userID, strings.Join(amr, " "), now, now.Add(p.Idle), now.Add(p.Absolute), src.IP, ua); err != nil {
		return Tokens{}, "", fmt.Errorf("identity: start session: %w", err)
	}
	refresh, err := s.newRefresh(ctx, tx, sid)
	if err != nil {
		return Tokens{}, "", err
	}
	return Tokens{RefreshToken: refresh, TokenType: "Bearer"}, sid, nil
}

// issueAccess adds the access token of the session to t: an operator's
// from OpsTokens.
func (s *Service) issueAccess(ctx context.Context, t *Tokens, userID, sid string, amr []string, kind string) error {
	iss := s.opts.Tokens
	if kind == "operator" {
		iss = s.opts.OpsTokens
		if iss == nil {
			return apperr.Errorf(apperr.Unavailable, "operator tokens are not configured")
		}
	}
	access, c, err := iss.Issue(ctx, userID, sid, amr)
	if err != nil {
		return err
	}
	t.AccessToken, t.ExpiresIn = access, int(c.Expires.Sub(c.IssuedAt).Seconds())
	return nil
}

// refreshPrefix marks Bulwark's refresh tokens (opaque to clients).
const refreshPrefix = "bwr_"

func (s *Service) newRefresh(ctx context.Context, tx *store.Tx, sid string) (string, error) {
	text, hash, err := newSecret(32)
	if err != nil {
		return "", err
	}
	text = refreshPrefix + text
	hash = hashSecret(text)
	if _, err := tx.ExecContext(ctx, "INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES ($1, $2, $3)", hash, sid, tx.Now); err != nil {
		return "", fmt.Errorf("identity: store refresh token: %w", err)
	}
	return text, nil
}

// Refresh spends a refresh token for a new pair. A token presented a
// second time means it was stolen (or the client raced itself): the
// whole session is revoked, and the event audited. An expired or revoked
// session is over.
func (s *Service) Refresh(ctx context.Context, src audit.Source, refresh string) (Tokens, error) {
	if !strings.HasPrefix(refresh, refreshPrefix) || len(refresh) > 100 {
		return Tokens{}, errSessionOver
	}
	hash := hashSecret(refresh)
	var out Tokens
	var reused, outUser, outSID, outKind string
	var outAMR []string
	err := s.st.Control().InTx(ctx, func(tx *store.Tx) error {
		var sid, userID, amr, kind string
		var spent, revoked sql.NullTime
		var idle, absolute time.Time
		err := tx.QueryRowContext(ctx, `SELECT r.session_id, r.spent_at, s.user_id, s.amr, s.revoked_at, s.idle_expires_at, s.absolute_expires_at, u.kind
FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id JOIN users u ON u.id = s.user_id WHERE r.hash = $1`, hash).
			Scan(&sid, &spent, &userID, &amr, &revoked, &idle, &absolute, &kind)
		if errors.Is(err, sql.ErrNoRows) {
			return errSessionOver
		}
		if err != nil {
			return fmt.Errorf("identity: refresh: %w", err)
		}
		now := tx.Now
		if spent.Valid {
			if !revoked.Valid {
				if err := s.revokeLocked(ctx, tx, sid, "refresh_token_reused"); err != nil {
					return err
				}
				reused = sid
				return s.controlEvent(ctx, tx, src, "auth.refresh.reused", userID, audit.Denied, map[string]string{"session_id": sid})
			}
			return nil
		}
		if revoked.Valid || !now.Before(idle) || !now.Before(absolute) {
			return errSessionOver
		}
		if _, err := tx.ExecContext(ctx, "UPDATE refresh_tokens SET spent_at = $1 WHERE hash = $2", now, hash); err != nil {
			return err
		}
		nextIdle := now.Add(s.opts.Sessions.Idle)
		if nextIdle.After(absolute) {
			nextIdle = absolute
		}
		if _, err := tx.ExecContext(ctx, "UPDATE sessions SET last_used_at = $1, idle_expires_at = $2 WHERE id = $3", now, nextIdle, sid); err != nil {
			return err
		}
		next, err := s.newRefresh(ctx, tx, sid)
		if err != nil {
			return err
		}
		out = Tokens{RefreshToken: next, TokenType: "Bearer"}
		outUser, outSID, outAMR, outKind = userID, sid, strings.Fields(amr), kind
		return nil
	})
	if reused != "" {
		s.revoked.revoke(reused)
		return Tokens{}, errSessionOver
	}
	if err != nil {
		return Tokens{}, err
	}
	if out.RefreshToken == "" {
		return Tokens{}, errSessionOver
	}
	if err := s.issueAccess(ctx, &out, outUser, outSID, outAMR, outKind); err != nil {
		return Tokens{}, err
	}
	return out, nil
}

// revokeLocked marks a session revoked in tx and spends its refresh
// tokens.
func (s *Service) revokeLocked(ctx context.Context, tx *store.Tx, sid, reason string) error {
	if _, err := tx.ExecContext(ctx, "UPDATE sessions SET revoked_at = $1, revoke_reason = $2 WHERE id = $3 AND revoked_at IS NULL", tx.Now, reason, sid); err != nil {
		return fmt.Errorf("identity: revoke session: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE refresh_tokens SET spent_at = $1 WHERE session_id = $2 AND spent_at IS NULL", tx.Now, sid); err != nil {
		return fmt.Errorf("identity: revoke session: %w", err)
	}
	return nil
}

// RevokeSession ends one of userID's sessions (logout, or from the
// session list). Another user's session is not found.
func (s *Service) RevokeSession(ctx context.Context, src audit.Source, userID, sid, reason string) error {
	err := s.st.Control().InTx(ctx, func(tx *store.Tx) error {
		var owner string
		err := tx.QueryRowContext(ctx, "SELECT user_id FROM sessions WHERE id = $1", sid).Scan(&owner)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && owner != userID) {
			return apperr.Errorf(apperr.NotFound, "session not found")
		}
		if err != nil {
			return err
		}
		if err := s.revokeLocked(ctx, tx, sid, reason); err != nil {
			return err
		}
		return s.controlEvent(ctx, tx, src, "auth.session.revoked", userID, audit.Success, map[string]string{"session_id": sid, "reason": reason})
	})
	if err == nil {
		s.revoked.revoke(sid)
	}
	return err
}

// revokeOthers ends every session of userID but keep (none if ""), in tx;
// the caller tells the cache after commit.
func (s *Service) revokeOthers(ctx context.Context, tx *store.Tx, userID, keep, reason string) ([]string, error) {
	rows, err := tx.QueryContext(ctx, "SELECT id FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND id <> $2", userID, keep)
	if err != nil {
		return nil, err
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, id := range ids {
		if err := s.revokeLocked(ctx, tx, id, reason); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// Sessions lists userID's live sessions, current marking the caller's.
func (s *Service) Sessions(ctx context.Context, userID, current string) ([]Session, error) {
	now := s.now()
	rows, err := s.st.Control().SQL().QueryContext(ctx, `SELECT id, created_at, last_used_at, idle_expires_at, absolute_expires_at, ip, user_agent, amr
FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND idle_expires_at > $2 AND absolute_expires_at > $2 ORDER BY created_at DESC`, userID, now)
	if err != nil {
		return nil, fmt.Errorf("identity: list sessions: %w", err)
	}
	defer rows.Close()
	out := []Session{}
	for rows.Next() {
		var ss Session
		var idle, abs time.Time
		var amr string
		if err := rows.Scan(&ss.ID, &ss.CreatedAt, &ss.LastUsedAt, &idle, &abs, &ss.IP, &ss.UserAgent, &amr); err != nil {
			return nil, err
		}
		ss.ExpiresAt = idle.UTC()
		if abs.Before(idle) {
			ss.ExpiresAt = abs.UTC()
		}
		ss.CreatedAt, ss.LastUsedAt = ss.CreatedAt.UTC(), ss.LastUsedAt.UTC()
		ss.AMR = strings.Fields(amr)
		ss.Current = ss.ID == current
		out = append(out, ss)
	}
	return out, rows.Err()
}

// SessionActive reports whether a session may still be used: not revoked
// and not expired. It answers from a cache: a revocation in this process
// is seen at once; one made by another process within revocationTTL.
func (s *Service) SessionActive(ctx context.Context, sid string) (bool, error) {
	if ok, known := s.revoked.get(sid); known {
		return ok, nil
	}
	var revoked sql.NullTime
	var idle, absolute time.Time
	err := s.st.Control().SQL().QueryRowContext(ctx, "SELECT revoked_at, idle_expires_at, absolute_expires_at FROM sessions WHERE id = $1", sid).
		Scan(&revoked, &idle, &absolute)
	if errors.Is(err, sql.ErrNoRows) {
		s.revoked.put(sid, false)
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("identity: read session: %w", err)
	}
	now := s.now()
	ok := !revoked.Valid && now.Before(absolute) && now.Before(idle)
	s.revoked.put(sid, ok)
	return ok, nil
}

// revocationTTL bounds how long another process's revocation can go
// unseen here.
const revocationTTL = time.Second

// revocations caches whether sessions are active. It is in-process; a
// shared implementation (Redis) can stand behind the same methods when
// nodes are many.
type revocations struct {
	mu      sync.Mutex
	now     func() time.Time
	entries map[string]revEntry
}

type revEntry struct {
	active bool
	at     time.Time
}

const maxRevocationEntries = 500_000

func newRevocations(now func() time.Time) *revocations {
	return &revocations{now: now, entries: map[string]revEntry{}}
}

func (c *revocations) get(sid string) (active, known bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[sid]
	if !ok {
		return false, false
	}
	if !e.active {
		return false, true // revoked stays revoked
	}
	if c.now().Sub(e.at) > revocationTTL {
		return false, false
	}
	return true, true
}

func (c *revocations) put(sid string, active bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxRevocationEntries {
		now := c.now()
		for k, e := range c.entries {
			if e.active && now.Sub(e.at) > revocationTTL {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= maxRevocationEntries {
			c.entries = map[string]revEntry{}
		}
	}
	c.entries[sid] = revEntry{active: active, at: c.now()}
}

func (c *revocations) revoke(sids ...string) {
	for _, sid := range sids {
		c.put(sid, false)
	}
}
