package identity

import (
	"context"
	"errors"
	"slices"
	"time"

	"bulwark/internal/apperr"
	"bulwark/internal/audit"
	"bulwark/internal/identity/password"
	"bulwark/internal/store"
)

// OrgRules are the password rules of one org a user belongs to, with the
// org's name (which a password may not contain).
type OrgRules struct {
	OrgName string
	Policy  password.Policy
}

// rules returns every policy a new password of userID must meet: the
// server's, and each of the user's orgs' (Options.OrgRules).
func (s *Service) rules(ctx context.Context, userID string) ([]OrgRules, error) {
	out := []OrgRules{{Policy: s.opts.Policy}}
	if s.opts.OrgRules == nil || userID == "" {
		return out, nil
	}
	more, err := s.opts.OrgRules(ctx, userID)
	if err != nil {
		return nil, err
	}
	return append(out, more...), nil
}

// checkPassword returns every rule of rules that pw breaks, each code
// once (the strictest org names the limit).
func checkPassword(rules []OrgRules, pw, email string, prev []string) []apperr.FieldError {
	var out []apperr.FieldError
	for _, r := range rules {
		for _, f := range r.Policy.Check(pw, password.Context{Email: email, OrgName: r.OrgName, Previous: prev}) {
			if !slices.ContainsFunc(out, func(g apperr.FieldError) bool { return g.Code == f.Code }) {
				out = append(out, f)
			}
		}
	}
	return out
}

// maxHistory is the longest history of rules.
func maxHistory(rules []OrgRules) int {
	n := 0
	for _, r := range rules {
		n = max(n, r.Policy.History)
	}
	return n
}

// maxAge is the shortest maximum password age of rules; 0 for none.
func maxAge(rules []OrgRules) time.Duration {
	days := 0
	for _, r := range rules {
		if d := r.Policy.MaxAgeDays; d > 0 && (days == 0 || d < days) {
			days = d
		}
	}
	return time.Duration(days) * 24 * time.Hour
}

// passwordChangeTTL is how long the token of an expired password's
// change lasts.
const passwordChangeTTL = 10 * time.Minute

// ChangeExpiredPassword sets a new password with the token that Login
// gave for an expired one (LoginResult.PasswordExpired), and revokes every
// session; the user then signs in with it (and a second factor, if they
// have one). A password the policy refuses does not spend the token.
func (s *Service) ChangeExpiredPassword(ctx context.Context, src audit.Source, tokenText, next string) error {
	var userID string
	err := s.st.Control().InTx(ctx, func(tx *store.Tx) error {
		var err error
		if userID, err = spendEmailToken(ctx, tx, tokenText, "password_expired"); err != nil {
			return err
		}
		return errPeek
	})
	if !errors.Is(err, errPeek) {
		return err
	}
	u, err := s.userByID(ctx, s.st.Control().SQL(), userID)
	if err != nil {
		return err
	}
	return s.setPassword(ctx, src, u, "", next, "auth.password.expired_changed", func(tx *store.Tx) error {
		_, err := spendEmailToken(ctx, tx, tokenText, "password_expired")
		return err
	})
}
