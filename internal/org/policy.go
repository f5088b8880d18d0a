package org

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"bulwark/internal/apperr"
	"bulwark/internal/audit"
	"bulwark/internal/authz"
	"bulwark/internal/identity"
	"bulwark/internal/identity/password"
	"bulwark/internal/store"
)

// Policy is an org's security policy (GET/PUT /v1/orgs/{org}/policy).
// The defaults are OWASP ASVS 4.0.3's (2.1.x); character classes and a
// maximum password age are opt-in, and reported as deviations from it.
type Policy struct {
	Password    PasswordPolicy  `json:"password"`
	MFARequired bool            `json:"mfa_required"`
	Session     SessionPolicy   `json:"session"`
	IPAllowlist []string        `json:"ip_allowlist"`
	Retention   RetentionPolicy `json:"retention"`
}

// PasswordPolicy is the org's password rules.
type PasswordPolicy struct {
	MinLength      int      `json:"min_length"`      // 12 to 128
	RequireClasses []string `json:"require_classes"` // of upper, lower, digit, symbol
	MaxAgeDays     int      `json:"max_age_days"`    // 0: no maximum age
	History        int      `json:"history"`         // recent passwords that cannot be reused, 0 to 24
}

// SessionPolicy bounds members' sessions.
type SessionPolicy struct {
	IdleMinutes   int `json:"idle_minutes"`   // 5 to 1440
	AbsoluteHours int `json:"absolute_hours"` // 1 to 720
}

// RetentionPolicy is how long the org's audit events are kept.
type RetentionPolicy struct {
	AuditDays int `json:"audit_days"` // 30 to 3650
}

// DefaultPolicy is the policy of an org that has not set one.
func DefaultPolicy() Policy {
	return Policy{
		Password:    PasswordPolicy{MinLength: 12, RequireClasses: []string{}, History: 5},
		Session:     SessionPolicy{IdleMinutes: 30, AbsoluteHours: 12},
		IPAllowlist: []string{},
		Retention:   RetentionPolicy{AuditDays: audit.DefaultRetentionDays},
	}
}

// The character classes a policy can require.
var passwordClasses = []string{"upper", "lower", "digit", "symbol"}

// MaxAllowlist is the most networks an org's allowlist holds.
const MaxAllowlist = 100

// Validate checks p and puts it in its stored form (classes sorted and
// unique, networks in canonical form). Every broken rule is a field error.
func (p *Policy) Validate() error {
	var fields []apperr.FieldError
	bad := func(field, code, msg string) {
		fields = append(fields, apperr.FieldError{Field: field, Code: code, Message: msg})
	}
	rangeCheck := func(field string, v, lo, hi int) {
		if v < lo || v > hi {
			bad(field, "out_of_range", fmt.Sprintf("must be %d to %d", lo, hi))
		}
	}
	rangeCheck("password.min_length", p.Password.MinLength, 12, 128)
	rangeCheck("password.max_age_days", p.Password.MaxAgeDays, 0, 3650)
	rangeCheck("password.history", p.Password.History, 0, 24)
	rangeCheck("session.idle_minutes", p.Session.IdleMinutes, 5, 1440)
	rangeCheck("session.absolute_hours", p.Session.AbsoluteHours, 1, 720)
	rangeCheck("retention.audit_days", p.Retention.AuditDays, 30, 3650)
	if p.Session.IdleMinutes > p.Session.AbsoluteHours*60 && p.Session.AbsoluteHours >= 1 {
		bad("session.idle_minutes", "out_of_range", "must not exceed the absolute lifetime")
	}
	classes := []string{}
	for _, c := range p.Password.RequireClasses {
		if !slices.Contains(passwordClasses, c) {
			bad("password.require_classes", "invalid", "classes are upper, lower, digit and symbol")
			break
		}
		if !slices.Contains(classes, c) {
			classes = append(classes, c)
		}
	}
	sort.Strings(classes)
	p.Password.RequireClasses = classes
	if len(p.IPAllowlist) > MaxAllowlist {
		bad("ip_allowlist", "too_large", fmt.Sprintf("at most %d networks", MaxAllowlist))
	} else {
		nets := make([]string, 0, len(p.IPAllowlist))
		for i, n := range p.IPAllowlist {
			pfx, err := netip.ParsePrefix(strings.TrimSpace(n))
			if err != nil {
				if a, aerr := netip.ParseAddr(strings.TrimSpace(n)); aerr == nil {
					pfx, err = a.Unmap().Prefix(a.Unmap().BitLen())
				}
			}
			if err != nil {
				bad("ip_allowlist["+strconv.Itoa(i)+"]", "invalid", "not a CIDR network or an IP address")
				continue
			}
			if s := pfx.Masked().String(); !slices.Contains(nets, s) {
				nets = append(nets, s)
			}
		}
		p.IPAllowlist = nets
	}
	if len(fields) > 0 {
		return apperr.WithFields("invalid policy", fields...)
	}
	return nil
}

// Deviations lists the settings of p that OWASP ASVS 4.0.3 advises
// against, each with the requirement it departs from.
func (p Policy) Deviations() []string {
	out := []string{}
	if len(p.Password.RequireClasses) > 0 {
		out = append(out, "password.require_classes: ASVS 2.1.9 asks for no composition rules")
	}
	if p.Password.MaxAgeDays > 0 {
		out = append(out, "password.max_age_days: ASVS 2.1.10 asks for no periodic password rotation")
	}
	if p.Password.History < 5 {
		out = append(out, "password.history: fewer than the 5 remembered passwords of Bulwark's default")
	}
	return out
}

// SetDefaultPolicy makes p the policy of orgs that have not set one, and
// the base of settings that a PUT leaves out (the server's defaults, from
// its configuration). It must be valid. Call it at startup.
func (s *Service) SetDefaultPolicy(p Policy) error {
	// The server's own retention may be shorter than an org may choose
	// (audit.retention_days is 1 to 36500).
	days := p.Retention.AuditDays
	if days < 1 || days > 36500 {
		return fmt.Errorf("default policy: retention.audit_days %d is not 1 to 36500", days)
	}
	p.Retention.AuditDays = 365
	if err := p.Validate(); err != nil {
		return err
	}
	p.Retention.AuditDays = days
	s.mu.Lock()
	defer s.mu.Unlock()
	s.defPolicy = &p
	return nil
}

// DefaultPolicy returns the server's default policy (SetDefaultPolicy, or
// the package's DefaultPolicy).
func (s *Service) DefaultPolicy() Policy {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.defPolicy == nil {
		return DefaultPolicy()
	}
	p := *s.defPolicy
	p.Password.RequireClasses = slices.Clone(p.Password.RequireClasses)
	p.IPAllowlist = slices.Clone(p.IPAllowlist)
	return p
}

// Policy returns org orgID's policy (the server's default if it never set
// one).
//
// An answer may be up to readTTL old when another process changed the
// policy (see readCache).
func (s *Service) Policy(ctx context.Context, orgID string) (Policy, error) {
	if p, ok := s.cache.policyOf(orgID); ok {
		return p, nil
	}
	at := time.Now()
	p, err := s.policy(ctx, orgID)
	if err != nil {
		return Policy{}, err
	}
	s.cache.putPolicy(orgID, p, at)
	return p, nil
}

func (s *Service) policy(ctx context.Context, orgID string) (Policy, error) {
	var text string
	err := s.st.Control().SQL().QueryRowContext(ctx, "SELECT policy FROM org_policies WHERE org_id = $1", orgID).Scan(&text)
	if errors.Is(err, sql.ErrNoRows) {
		return s.DefaultPolicy(), nil
	}
	if err != nil {
		return Policy{}, fmt.Errorf("read policy: %w", err)
	}
	p := s.DefaultPolicy()
	if err := json.Unmarshal([]byte(text), &p); err != nil {
		return Policy{}, fmt.Errorf("read policy: %w", err)
	}
	return p, nil
}

// SetPolicy validates p and makes it org orgID's policy. The change is
// audited with the names of the settings that changed.
func (s *Service) SetPolicy(ctx context.Context, src audit.Source, orgID string, p Policy) (Policy, error) {
	if err := p.Validate(); err != nil {
		return Policy{}, err
	}
	text, err := json.Marshal(p)
	if err != nil {
		return Policy{}, err
	}
	var after func()
	err = s.write(ctx, func(tx *store.Tx) error {
		if err := lockOrg(ctx, tx, orgID); err != nil {
			return err
		}
		old := s.DefaultPolicy()
		var prev string
		err := tx.QueryRowContext(ctx, "SELECT policy FROM org_policies WHERE org_id = $1", orgID).Scan(&prev)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		default:
			if err := json.Unmarshal([]byte(prev), &old); err != nil {
				return fmt.Errorf("read policy: %w", err)
			}
		}
		changed := policyDiff(old, p)
		if len(changed) == 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO org_policies (org_id, policy, updated_at) VALUES ($1, $2, $3)
ON CONFLICT (org_id) DO UPDATE SET policy = excluded.policy, updated_at = excluded.updated_at`, orgID, string(text), tx.Now); err != nil {
			return fmt.Errorf("store policy: %w", err)
		}
		after, err = s.event(ctx, tx, orgID, src.Event("policy.updated", audit.Resource{Type: "policy", ID: orgID}, audit.Success,
			map[string]string{"changed": strings.Join(changed, ",")}))
		return err
	})
	if err != nil {
		return Policy{}, err
	}
	if after != nil {
		after()
	}
	return p, nil
}

// policyDiff names the settings that differ between a and b.
func policyDiff(a, b Policy) []string {
	var out []string
	add := func(name string, differ bool) {
		if differ {
			out = append(out, name)
		}
	}
	add("password.min_length", a.Password.MinLength != b.Password.MinLength)
	add("password.require_classes", !slices.Equal(a.Password.RequireClasses, b.Password.RequireClasses))
	add("password.max_age_days", a.Password.MaxAgeDays != b.Password.MaxAgeDays)
	add("password.history", a.Password.History != b.Password.History)
	add("mfa_required", a.MFARequired != b.MFARequired)
	add("session.idle_minutes", a.Session.IdleMinutes != b.Session.IdleMinutes)
	add("session.absolute_hours", a.Session.AbsoluteHours != b.Session.AbsoluteHours)
	add("ip_allowlist", !slices.Equal(a.IPAllowlist, b.IPAllowlist))
	add("retention.audit_days", a.Retention.AuditDays != b.Retention.AuditDays)
	return out
}

// Rename changes org orgID's name (PATCH /v1/orgs/{org}).
func (s *Service) Rename(ctx context.Context, src audit.Source, orgID, name string) (Org, error) {
	name = strings.TrimSpace(name)
	if code, msg := nameProblem(name); code != "" {
		return Org{}, apperr.WithFields("invalid organization", apperr.FieldError{Field: "name", Code: code, Message: msg})
	}
	var o Org
	var after func()
	err := s.write(ctx, func(tx *store.Tx) error {
		if err := lockOrg(ctx, tx, orgID); err != nil {
			return err
		}
		var err error
		if o, err = findOrg(ctx, tx, orgID); err != nil {
			return err
		}
		if o.Name == name {
			return nil
		}
		if _, err := tx.ExecContext(ctx, "UPDATE orgs SET name = $1, updated_at = $2 WHERE id = $3", name, tx.Now, orgID); err != nil {
			return err
		}
		o.Name, o.UpdatedAt = name, tx.Now
		after, err = s.event(ctx, tx, orgID, src.Event("org.renamed", audit.Resource{Type: "org", ID: orgID}, audit.Success, nil))
		return err
	})
	if err != nil {
		return Org{}, err
	}
	if after != nil {
		after()
	}
	return o, nil
}

// Access returns, in one read, userID's role in org orgID ("" when not a
// member) and the org's policy: what every request of a member needs.
//
// An answer may be up to readTTL old when another process changed the
// membership or the policy (see readCache).
func (s *Service) Access(ctx context.Context, orgID, userID string) (authz.Role, Policy, error) {
	if role, p, ok := s.cache.accessOf(orgID, userID); ok {
		return role, p, nil
	}
	at := time.Now()
	role, p, err := s.access(ctx, orgID, userID)
	if err != nil {
		return "", Policy{}, err
	}
	s.cache.putAccess(orgID, userID, role, p, at)
	return role, p, nil
}

func (s *Service) access(ctx context.Context, orgID, userID string) (authz.Role, Policy, error) {
	var role string
	var text sql.NullString
	err := s.st.Control().SQL().QueryRowContext(ctx, `SELECT m.role, p.policy FROM org_members m
LEFT JOIN org_policies p ON p.org_id = m.org_id WHERE m.org_id = $1 AND m.user_id = $2`, orgID, userID).Scan(&role, &text)
	if errors.Is(err, sql.ErrNoRows) {
		return "", Policy{}, nil
	}
	if err != nil {
		return "", Policy{}, fmt.Errorf("read membership: %w", err)
	}
	p := s.DefaultPolicy()
	if text.Valid {
		if err := json.Unmarshal([]byte(text.String), &p); err != nil {
			return "", Policy{}, fmt.Errorf("read policy: %w", err)
		}
	}
	return authz.Role(role), p, nil
}

// Allows reports whether a client at addr may reach the org under p: yes
// when the allowlist is empty or holds a network with addr.
func (p Policy) Allows(addr netip.Addr) bool {
	if len(p.IPAllowlist) == 0 {
		return true
	}
	addr = addr.Unmap()
	for _, n := range p.IPAllowlist {
		if pfx, err := netip.ParsePrefix(n); err == nil && pfx.Contains(addr) {
			return true
		}
	}
	return false
}

// Rules are the password rules of the policy, for package password.
func (p PasswordPolicy) Rules() password.Policy {
	return password.Policy{MinLength: p.MinLength, MaxLength: 128, ForbidCommon: true, History: p.History, MaxAgeDays: p.MaxAgeDays,
		RequireUpper: slices.Contains(p.RequireClasses, "upper"), RequireLower: slices.Contains(p.RequireClasses, "lower"),
		RequireDigit: slices.Contains(p.RequireClasses, "digit"), RequireSymbol: slices.Contains(p.RequireClasses, "symbol")}
}

// PasswordRules returns the password rules of every org userID belongs
// to, with the org's name (identity.Options.OrgRules).
func (s *Service) PasswordRules(ctx context.Context, userID string) ([]identity.OrgRules, error) {
	mine, err := s.OrgsOf(ctx, userID)
	if err != nil {
		return nil, err
	}
	out := make([]identity.OrgRules, 0, len(mine))
	for _, m := range mine {
		p, err := s.Policy(ctx, m.Org.ID)
		if err != nil {
			return nil, err
		}
		out = append(out, identity.OrgRules{OrgName: m.Org.Name, Policy: p.Password.Rules()})
	}
	return out, nil
}
