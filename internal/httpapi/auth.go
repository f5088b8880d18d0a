package httpapi

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"bulwark/internal/apperr"
	"bulwark/internal/audit"
	"bulwark/internal/authz"
	"bulwark/internal/edge"
	"bulwark/internal/identity"
	"bulwark/internal/identity/token"
	"bulwark/internal/org"
)

// anonymous is the audit source of a request before authentication.
func anonymous(r *http.Request) audit.Source {
	return sourceOf(r, audit.Actor{Type: audit.ActorUser, ID: ""})
}

// bearer returns the credential of "Authorization: Bearer X".
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, cred, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	cred = strings.TrimSpace(cred)
	return cred, cred != ""
}

// identityAuth is the Authorizer of accounts and API keys: an access
// token (whose session must still be active) or an API key (bound to one
// org, with a role).
type identityAuth struct {
	ids    *identity.Service
	tokens *token.Issuer
	audit  *audit.Service
	orgs   *org.Service
}

type ctxKeyCaller struct{}

// caller is who an authenticated request comes from.
type caller struct {
	actor  audit.Actor
	sid    string   // access tokens
	amr    []string // access tokens: how the user signed in
	apiKey identity.APIKey
}

var errAuthRequired = apperr.Errorf(apperr.Unauthorized, "authentication required")

// authResult is a request's authentication, kept in its state so that
// Authenticate, Authorize and handlers check the credential once.
type authResult struct {
	c   caller
	err error
}

func (a identityAuth) caller(r *http.Request) (caller, error) {
	st := stateFrom(r.Context())
	if st != nil && st.authn != nil {
		return st.authn.c, st.authn.err
	}
	c, err := a.authenticate(r)
	if st != nil {
		st.authn = &authResult{c, err}
	}
	return c, err
}

func (a identityAuth) authenticate(r *http.Request) (caller, error) {
	cred, ok := bearer(r)
	if !ok {
		return caller{}, errAuthRequired
	}
	ctx := r.Context()
	if strings.HasPrefix(cred, identity.APIKeyPrefix) {
		k, err := a.ids.AuthenticateAPIKey(ctx, cred)
		if err != nil {
			return caller{}, err
		}
		return caller{actor: audit.Actor{Type: audit.ActorAPIKey, ID: k.ID}, apiKey: k}, nil
	}
	c, err := a.tokens.Verify(ctx, cred)
	if err != nil {
		if apperr.CodeOf(err) == apperr.Unauthorized {
			a.recordRefusal(r, err)
		}
		return caller{}, err
	}
	active, err := a.ids.SessionActive(ctx, c.Session)
	if err != nil {
		return caller{}, err
	}
	if !active {
		a.recordRefusal(r, &token.Invalid{Reason: "session_revoked"})
		return caller{}, errAuthRequired
	}
	return caller{actor: audit.Actor{Type: audit.ActorUser, ID: c.Subject}, sid: c.Session, amr: c.AMR}, nil
}

// recordRefusal puts a refused access token in the control-plane log
// (with the reason, never the token).
func (a identityAuth) recordRefusal(r *http.Request, err error) {
	reason := "invalid"
	var inv *token.Invalid
	if errors.As(err, &inv) {
		reason = inv.Reason
	}
	_ = a.audit.Record(r.Context(), audit.ControlLog, anonymous(r).Event("auth.token.refused",
		audit.Resource{Type: "access_token"}, audit.Denied, map[string]string{"reason": reason}))
}

func (a identityAuth) Authenticate(r *http.Request) (audit.Actor, error) {
	c, err := a.caller(r)
	return c.actor, err
}

// Authorize: an API key acts in its own org only, with its role; a user
// with their membership's role, within the org's policy (its IP
// allowlist, and 2FA when the org requires it: a member who has not
// enrolled can only enrol, under /v1/me). The decision is authz.Allowed.
func (a identityAuth) Authorize(r *http.Request, actor audit.Actor, o org.Org, perm authz.Perm) (authz.Role, error) {
	c, err := a.caller(r)
	if err != nil {
		return "", err
	}
	var role authz.Role
	var pol org.Policy
	switch {
	case c.actor.Type == audit.ActorAPIKey:
		if c.apiKey.OrgID != o.ID {
			return "", errNoOrg
		}
		role = authz.Role(c.apiKey.Role)
		if pol, err = a.orgs.Policy(r.Context(), o.ID); err != nil {
			return "", err
		}
	case c.actor.Type == audit.ActorUser && a.orgs != nil:
		if role, pol, err = a.orgs.Access(r.Context(), o.ID, c.actor.ID); err != nil {
			return "", err
		}
		if role == "" {
			return "", errNoOrg
		}
		if pol.MFARequired && !slices.Contains(c.amr, "otp") {
			return role, &apperr.Error{Code: apperr.Forbidden, Message: "this organization requires two-factor authentication: enrol under /v1/me/mfa/totp and sign in again",
				Fields: []apperr.FieldError{{Field: "mfa", Code: "mfa_required"}}}
		}
	default:
		return "", errNoOrg
	}
	if addr, ok := edge.ClientAddr(r); !ok || !pol.Allows(addr) {
		return role, apperr.Errorf(apperr.Forbidden, "this organization does not allow access from your network")
	}
	if !authz.Allowed(role, perm) {
		return role, apperr.Errorf(apperr.Forbidden, "your role does not allow this")
	}
	return role, nil
}
