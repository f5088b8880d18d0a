package httpapi

import (
	"bulwark/internal/audit"
	"bulwark/internal/authz"
	"bulwark/internal/identity"
	"bulwark/internal/identity/token"
	"bulwark/internal/org"
	"bulwark/internal/records"
	"crypto/rand"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"bulwark/internal/observe"
)

// Listener names, used as the "listener" label of metrics and logs.
const (
	listenerPublic = "public"
	listenerOps    = "ops"
)

// Deps are everything the HTTP handlers depend on.
type Deps struct {
	// Logger receives access logs and errors; nil discards them. It should
	// be an observe.NewLogger logger, which redacts.
	Logger *slog.Logger
	// Metrics records every request and is served on the ops listener's
	// /metrics; nil means a fresh observe.NewMetrics(nil).
	Metrics *observe.Metrics
	// Health answers /readyz; nil means always ready.
	Health *observe.Health
	// HSTSMaxAge is the Strict-Transport-Security max-age; 0 sends none (only
	// sensible when TLS is off).
	HSTSMaxAge time.Duration
	// OpsAllowlist are the client networks that may use the ops listener; an
	// empty list lets nobody in.
	OpsAllowlist []netip.Prefix
	// IPKey is the key that hashes client addresses in logs
	// (observe.LoadOrCreateIPKey); nil means a random key for this process.
	IPKey []byte
	// Orgs resolves the {org} of org routes; Audit serves the audit routes
	// (org routes are served only when both are set). Authorizer decides
	// who may use them; nil lets no one in (401).
	Orgs       *org.Service
	Audit      *audit.Service
	Authorizer Authorizer
	// Identity and Tokens serve /v1/auth and /v1/me; with both set (and
	// Audit), the Authorizer defaults to accounts and API keys.
	Identity *identity.Service
	Tokens   *token.Issuer
	// OpsTokens verifies operators' access tokens on the ops listener.
	OpsTokens *token.Issuer
	// Support keeps operators' support-access requests and grants.
	Support *authz.Support
	// Records serves the collections and records of orgs (with Orgs and an
	// Authorizer); on the ops listener, under a support grant.
	Records *records.Service
}

func (d Deps) withDefaults() Deps {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Metrics == nil {
		d.Metrics = observe.NewMetrics(nil)
	}
	if d.Health == nil {
		d.Health = observe.NewHealth()
		d.Health.SetReady(true)
	}
	if d.Authorizer == nil && d.Identity != nil && d.Tokens != nil && d.Audit != nil {
		d.Authorizer = identityAuth{ids: d.Identity, tokens: d.Tokens, audit: d.Audit, orgs: d.Orgs}
	}
	if d.Authorizer == nil {
		d.Authorizer = noAuthentication{}
	}
	if d.IPKey == nil {
		d.IPKey = make([]byte, 32)
		rand.Read(d.IPKey)
	}
	return d
}

// chain applies middleware to h so that the first one listed runs first.
func chain(h http.Handler, middleware ...func(http.Handler) http.Handler) http.Handler {
	for i := len(middleware) - 1; i >= 0; i-- {
		h = middleware[i](h)
	}
	return h
}
