package identity

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"bulwark/internal/apperr"
	"bulwark/internal/audit"
	"bulwark/internal/store"
)

// APIKeyPrefix starts every API key: "bwk_" + 16 hex characters of id +
// "_" + 43 characters of a 256-bit secret.
const APIKeyPrefix = "bwk_"

// The roles, weakest last.
var roles = map[string]bool{"owner": true, "admin": true, "member": true, "viewer": true}

// APIKey is an org's API key as listed (never its secret).
type APIKey struct {
	ID         string     `json:"id"`
	OrgID      string     `json:"-"`
	Name       string     `json:"name"`
	Role       string     `json:"role"`
	CreatedBy  string     `json:"created_by"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	Revoked    bool       `json:"revoked"`
}

// CreateAPIKey makes a key for the org with a role and an optional expiry
// and returns its text, shown this once: only its hash is kept.
func (s *Service) CreateAPIKey(ctx context.Context, src audit.Source, orgID, name, role string, expires *time.Time) (string, APIKey, error) {
	var fields []apperr.FieldError
	name = strings.TrimSpace(name)
	if name == "" || utf8.RuneCountInString(name) > 100 || strings.ContainsAny(name, "\x00\r\n") {
		fields = append(fields, apperr.FieldError{Field: "name", Code: "invalid", Message: "1 to 100 characters, one line"})
	}
	if !roles[role] {
		fields = append(fields, apperr.FieldError{Field: "role", Code: "invalid", Message: "owner, admin, member or viewer"})
	}
	now := s.now()
	if expires != nil && !expires.After(now) {
		fields = append(fields, apperr.FieldError{Field: "expires_at", Code: "in_the_past"})
	}
	if len(fields) > 0 {
		return "", APIKey{}, apperr.WithFields("invalid API key", fields...)
	}
	idb := make([]byte, 8)
	if _, err := rand.Read(idb); err != nil {
		return "", APIKey{}, err
	}
	id := hex.EncodeToString(idb)
	secret, _, err := newSecret(32)
	if err != nil {
		return "", APIKey{}, err
	}
	text := APIKeyPrefix + id + "_" + secret
	k := APIKey{ID: id, OrgID: orgID, Name: name, Role: role, CreatedBy: src.Actor.Type + ":" + src.Actor.ID, ExpiresAt: expires}
	err = s.st.Control().InTx(ctx, func(tx *store.Tx) error {
		k.CreatedAt = tx.Now
		if _, err := tx.ExecContext(ctx, `INSERT INTO api_keys (id, org_id, hash, name, role, created_by, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, id, orgID, hashSecret(text), name, role, k.CreatedBy, tx.Now, expires); err != nil {
			return fmt.Errorf("identity: store API key: %w", err)
		}
		_, err := s.audit.Append(ctx, tx, audit.ControlLog, src.Event("api_key.created", audit.Resource{Type: "api_key", ID: id},
			audit.Success, map[string]string{"org_id": orgID, "role": role}))
		return err
	})
	if err != nil {
		return "", APIKey{}, err
	}
	return text, k, nil
}

// APIKeys lists the org's keys.
func (s *Service) APIKeys(ctx context.Context, orgID string) ([]APIKey, error) {
	rows, err := s.st.Control().SQL().QueryContext(ctx, `SELECT id, name, role, created_by, created_at, expires_at, last_used_at, revoked_at
FROM api_keys WHERE org_id = $1 ORDER BY created_at DESC`, orgID)
	if err != nil {
		return nil, fmt.Errorf("identity: list API keys: %w", err)
	}
	defer rows.Close()
	out := []APIKey{}
	for rows.Next() {
		k := APIKey{OrgID: orgID}
		var exp, used, revoked sql.NullTime
		if err := rows.Scan(&k.ID, &k.Name, &k.Role, &k.CreatedBy, &k.CreatedAt, &exp, &used, &revoked); err != nil {
			return nil, err
		}
		k.CreatedAt = k.CreatedAt.UTC()
		if exp.Valid {
			t := exp.Time.UTC()
			k.ExpiresAt = &t
		}
		if used.Valid {
			t := used.Time.UTC()
			k.LastUsedAt = &t
		}
		k.Revoked = revoked.Valid
		out = append(out, k)
	}
	return out, rows.Err()
}

// RevokeAPIKey revokes one of the org's keys; another org's key is not
// found.
func (s *Service) RevokeAPIKey(ctx context.Context, src audit.Source, orgID, id string) error {
	err := s.st.Control().InTx(ctx, func(tx *store.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND org_id = $3 AND revoked_at IS NULL", tx.Now, id, orgID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return apperr.Errorf(apperr.NotFound, "API key not found")
		}
		_, err = s.audit.Append(ctx, tx, audit.ControlLog, src.Event("api_key.revoked", audit.Resource{Type: "api_key", ID: id},
			audit.Success, map[string]string{"org_id": orgID}))
		return err
	})
	if err == nil {
		s.keyCache.drop(id)
	}
	return err
}

// errBadAPIKey is the one answer to a key that does not authenticate.
var errBadAPIKey = apperr.Errorf(apperr.Unauthorized, "invalid API key")

// AuthenticateAPIKey returns the key a request presents, if it is valid
// (not revoked, not expired). Keys are cached for revocationTTL, so a
// revocation elsewhere takes at most that long here. The last use is
// written at most once a minute per key.
func (s *Service) AuthenticateAPIKey(ctx context.Context, text string) (APIKey, error) {
	rest, ok := strings.CutPrefix(text, APIKeyPrefix)
	if !ok || len(text) > 100 {
		return APIKey{}, errBadAPIKey
	}
	id, _, ok := strings.Cut(rest, "_")
	if !ok || len(id) != 16 {
		return APIKey{}, errBadAPIKey
	}
	now := s.now()
	e, cached := s.keyCache.get(id, now)
	if !cached {
		var exp, revoked sql.NullTime
		err := s.st.Control().SQL().QueryRowContext(ctx, "SELECT org_id, hash, role, expires_at, revoked_at FROM api_keys WHERE id = $1", id).
			Scan(&e.key.OrgID, &e.hash, &e.key.Role, &exp, &revoked)
		if errors.Is(err, sql.ErrNoRows) {
			return APIKey{}, errBadAPIKey
		}
		if err != nil {
			return APIKey{}, fmt.Errorf("identity: read API key: %w", err)
		}
		e.key.ID = id
		if exp.Valid {
			t := exp.Time.UTC()
			e.key.ExpiresAt = &t
		}
		e.key.Revoked = revoked.Valid
		s.keyCache.put(id, e, now)
	}
	if subtle.ConstantTimeCompare(e.hash, hashSecret(text)) != 1 || e.key.Revoked ||
		(e.key.ExpiresAt != nil && !now.Before(*e.key.ExpiresAt)) {
		return APIKey{}, errBadAPIKey
	}
	if s.keyCache.touch(id, now) {
		if _, err := s.st.Control().SQL().ExecContext(ctx, "UPDATE api_keys SET last_used_at = $1 WHERE id = $2", now, id); err != nil {
			s.opts.Logger.Warn("API key last use not saved", "error", err.Error())
		}
	}
	return e.key, nil
}

// apiKeyCache keeps API key rows for revocationTTL and the time of the
// last saved use.
type apiKeyCache struct {
	mu      sync.Mutex
	entries map[string]keyEntry
	touched map[string]time.Time
}

type keyEntry struct {
	key  APIKey
	hash []byte
	at   time.Time
}

func (c *apiKeyCache) get(id string, now time.Time) (keyEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[id]
	if !ok || now.Sub(e.at) > revocationTTL {
		return keyEntry{}, false
	}
	return e, true
}

func (c *apiKeyCache) put(id string, e keyEntry, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) > 100_000 {
		c.entries = map[string]keyEntry{}
	}
	e.at = now
	c.entries[id] = e
}

func (c *apiKeyCache) drop(id string) {
	c.mu.Lock()
	delete(c.entries, id)
	c.mu.Unlock()
}

// touch reports whether the key's last use should be saved now.
func (c *apiKeyCache) touch(id string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.touched == nil || len(c.touched) > 100_000 {
		c.touched = map[string]time.Time{}
	}
	if last, ok := c.touched[id]; ok && now.Sub(last) < time.Minute {
		return false
	}
	c.touched[id] = now
	return true
}
