package httpapi

import (
	"net/http"

	"bulwark/internal/apperr"
	"bulwark/internal/audit"
	"bulwark/internal/authz"
	"bulwark/internal/edge"
	"bulwark/internal/org"
)

// Authorizer authenticates a request's caller and decides what they may
// do. Every org route asks it, through orgRoute.
type Authorizer interface {
	// Authenticate returns the request's caller as an audit actor;
	// unauthorized (401) without valid credentials.
	Authenticate(r *http.Request) (audit.Actor, error)
	// Authorize returns the caller's role in o when that role has perm
	// (authz.Allowed): not_found when the caller has nothing to do with
	// the org (answered exactly as an org that does not exist); forbidden
	// (403), with the role, for a member without the permission.
	Authorize(r *http.Request, actor audit.Actor, o org.Org, perm authz.Perm) (authz.Role, error)
}

// noAuthentication is the Authorizer when accounts and tokens are not
// configured: it lets no one in, so that no org route serves anything
// unauthenticated.
type noAuthentication struct{}

func (noAuthentication) Authenticate(*http.Request) (audit.Actor, error) {
	return audit.Actor{}, apperr.Errorf(apperr.Unauthorized, "authentication required")
}

func (noAuthentication) Authorize(*http.Request, audit.Actor, org.Org, authz.Perm) (authz.Role, error) {
	return "", errNoOrg
}

// errNoOrg is the one answer for an org that does not exist, is deleted,
// or is not the caller's.
var errNoOrg = apperr.Errorf(apperr.NotFound, "organization not found")

// access is an org route's caller after its decision: the org, the audit
// source of the request and the caller's role there.
type access struct {
	Org  org.Org
	Src  audit.Source
	Role authz.Role
}

// orgHandler serves an org route for a caller that was let in.
type orgHandler func(w http.ResponseWriter, r *http.Request, a access) error

// orgRoute registers an org route: every request first gets the one
// decision (orgFor with perm), and only a caller that has perm reaches h.
// A member's denial is recorded in the org's log. Org routes are
// registered only through here (a test walks the sources to check).
func (d Deps) orgRoute(mux *http.ServeMux, pattern string, perm authz.Perm, h orgHandler) {
	if !authz.Known(perm) {
		panic("httpapi: route " + pattern + " asks for unknown permission " + string(perm))
	}
	mux.Handle(pattern, handle(func(w http.ResponseWriter, r *http.Request) error {
		a, err := d.orgFor(r, perm)
		if err != nil {
			if apperr.CodeOf(err) == apperr.Forbidden && a.Org.ID != "" && d.Audit != nil {
				denied := a.Src.Event("access.denied", audit.Resource{Type: "route", ID: pattern}, audit.Denied,
					map[string]string{"permission": string(perm), "role": string(a.Role)})
				if rerr := d.Audit.Record(r.Context(), a.Org.ID, denied); rerr != nil {
					d.Logger.Error("denial not recorded", "org_id", a.Org.ID, "error", rerr.Error())
				}
			}
			return err
		}
		return h(w, r, a)
	}))
}

// orgFor resolves the {org} of the path (id or slug) and authorizes the
// caller for perm in it. An unknown org and an org the caller may not see
// get the same error; a forbidden one comes with the org, the source and
// the role, so that the denial can be recorded in its log.
func (d Deps) orgFor(r *http.Request, perm authz.Perm) (access, error) {
	if d.Orgs == nil {
		return access{}, errNoOrg
	}
	// Authenticate before looking the org up, so that an anonymous caller
	// learns nothing about which orgs exist.
	actor, err := d.Authorizer.Authenticate(r)
	if err != nil {
		return access{}, err
	}
	o, err := d.Orgs.Get(r.Context(), r.PathValue("org"))
	if apperr.CodeOf(err) == apperr.NotFound || apperr.CodeOf(err) == apperr.Invalid {
		return access{}, errNoOrg
	}
	if err != nil {
		return access{}, err
	}
	role, err := d.Authorizer.Authorize(r, actor, o, perm)
	if apperr.CodeOf(err) == apperr.NotFound {
		return access{}, errNoOrg
	}
	a := access{Org: o, Src: sourceOf(r, actor), Role: role}
	if err != nil {
		return a, err
	}
	return a, nil
}

// sourceOf is the audit source of a request by actor.
func sourceOf(r *http.Request, actor audit.Actor) audit.Source {
	src := audit.Source{Actor: actor, UserAgent: r.UserAgent(), RequestID: RequestID(r.Context())}
	if a, ok := edge.ClientAddr(r); ok {
		src.IP = a.String()
	}
	return src
}
