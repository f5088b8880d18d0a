package httpapi

import (
	"errors"
	"net/http"
	"strings"

	"bulwark/internal/apperr"
	"bulwark/internal/audit"
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
}

type ctxKeyCaller struct{}

// caller is who an authenticated request comes from.
type caller struct {
	actor  audit.Actor
	sid    string // access tokens
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
	return caller{actor: audit.Actor{Type: audit.ActorUser, ID: c.Subject}, sid: c.Session}, nil
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

// Authorize: an API key acts in its own org only, with its role; a user's
// roles in orgs come with memberships, which do not exist yet, so a user
// reaches no org.
func (a identityAuth) Authorize(r *http.Request, actor audit.Actor, o org.Org, perm string) error {
	c, err := a.caller(r)
	if err != nil {
		return err
	}
	if c.actor.Type != audit.ActorAPIKey || c.apiKey.OrgID != o.ID {
		return errNoOrg
	}
	if allowed(c.apiKey.Role, perm) {
		return nil
	}
	return apperr.Errorf(apperr.Forbidden, "your role does not allow this")
}

// allowed is the permission table of the routes served so far.
func allowed(role, perm string) bool {
	switch perm {
	case PermAuditRead, PermAPIKeys:
		return role == "owner" || role == "admin"
	}
	return false
}
