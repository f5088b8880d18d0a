package httpapi

import (
	"net/http"

	"bulwark/internal/authz"
	"bulwark/internal/edge"
)

// NewServer returns the handler of the public listener.
func NewServer(d Deps) http.Handler {
	d = d.withDefaults()
	return d.stack(listenerPublic, publicRoutes(d))
}

// NewOpsServer returns the handler of the operators' listener. Only clients
// whose address is in d.OpsAllowlist reach its routes; others get a 403
// problem and leave a log line with their hashed address.
func NewOpsServer(d Deps) http.Handler {
	d = d.withDefaults()
	return d.stack(listenerOps, edge.Allowlist(d.OpsAllowlist, handleOpsDenied(d))(opsRoutes(d)))
}

// publicRoutes lists every path of the public listener.
func publicRoutes(d Deps) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", handleHealthz())
	mux.Handle("GET /readyz", handleReadyz(d.Health))
	if d.Orgs != nil && d.Audit != nil {
		d.orgRoute(mux, "GET /v1/orgs/{org}/audit", authz.AuditRead, d.auditList)
		d.orgRoute(mux, "GET /v1/orgs/{org}/audit/export", authz.AuditRead, d.auditExport)
		d.orgRoute(mux, "GET /v1/orgs/{org}/audit/verify", authz.AuditRead, d.auditVerify)
	}
	if d.Identity != nil && d.Tokens != nil {
		d.authRoutes(mux)
		if d.Orgs != nil {
			d.apiKeyRoutes(mux)
			d.orgRoutes(mux)
			if d.Records != nil {
				d.recordRoutes(mux)
			}
			if d.Support != nil {
				d.supportRoutes(mux)
			}
		}
	}
	addTestRoutes(mux) // only in builds tagged bulwark_testhooks
	return mux
}

// opsRoutes lists every path of the ops listener.
func opsRoutes(d Deps) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", handleHealthz())
	mux.Handle("GET /readyz", handleReadyz(d.Health))
	mux.Handle("GET /metrics", d.Metrics.Handler())
	if d.Identity != nil && d.OpsTokens != nil {
		d.opsAuthRoutes(mux)
		if d.Support != nil && d.Orgs != nil && d.Audit != nil {
			d.opsSupportRoutes(mux)
		}
	}
	return mux
}

// stack wraps a listener's routes in the middleware every request passes
// through, outermost first.
func (d Deps) stack(listener string, routes http.Handler) http.Handler {
	return chain(routes,
		withRequestState(d.Logger),         // X-Request-Id, response accounting, problem+json for 404/405
		edge.SecurityHeaders(d.HSTSMaxAge), // HSTS, CSP, nosniff, ...
		recoverPanics,                      // 500 problem+json; cause and stack logged
		observeRequests(d.Metrics, listener),
		logRequests(d.Logger, d.IPKey, listener),
	)
}
