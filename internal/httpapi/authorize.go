package httpapi

import (
	"net/http"

	"bulwark/internal/apperr"
	"bulwark/internal/audit"
	"bulwark/internal/edge"
	"bulwark/internal/org"
)

// The permissions that org routes ask for.
const (
	PermAuditRead = "audit.read" // query, export and verify the org's audit log: owners and admins
)

// Authorizer authenticates a request's caller and decides what they may
// do. Every org route asks it.
type Authorizer interface {
	// Authenticate returns the request's caller as an audit actor;
	// unauthorized (401) without valid credentials.
	Authenticate(r *http.Request) (audit.Actor, error)
	// Authorize decides whether actor may use perm in o: nil; not_found
	// when the caller has nothing to do with the org (answered exactly as
	// an org that does not exist); forbidden (403) for a member without
	// the permission.
	Authorize(r *http.Request, actor audit.Actor, o org.Org, perm string) error
}

// noAuthentication is the Authorizer until accounts and tokens exist: it
// lets no one in, so that no org route serves anything unauthenticated.
type noAuthentication struct{}

func (noAuthentication) Authenticate(*http.Request) (audit.Actor, error) {
	return audit.Actor{}, apperr.Errorf(apperr.Unauthorized, "authentication required")
}

func (noAuthentication) Authorize(*http.Request, audit.Actor, org.Org, string) error {
	return errNoOrg
}

// errNoOrg is the one answer for an org that does not exist, is deleted,
// or is not the caller's.
var errNoOrg = apperr.Errorf(apperr.NotFound, "organization not found")

// orgFor resolves the {org} of the path (id or slug) and authorizes the
// caller for perm in it. An unknown org and an org the caller may not see
// get the same error; a forbidden one comes with the org and the source.
func (d Deps) orgFor(r *http.Request, perm string) (org.Org, audit.Source, error) {
	if d.Orgs == nil {
		return org.Org{}, audit.Source{}, errNoOrg
	}
	// Authenticate before looking the org up, so that an anonymous caller
	// learns nothing about which orgs exist.
	actor, err := d.Authorizer.Authenticate(r)
	if err != nil {
		return org.Org{}, audit.Source{}, err
	}
	o, err := d.Orgs.Get(r.Context(), r.PathValue("org"))
	if apperr.CodeOf(err) == apperr.NotFound || apperr.CodeOf(err) == apperr.Invalid {
		return org.Org{}, audit.Source{}, errNoOrg
	}
	if err != nil {
		return org.Org{}, audit.Source{}, err
	}
	err = d.Authorizer.Authorize(r, actor, o, perm)
	if apperr.CodeOf(err) == apperr.NotFound {
		return org.Org{}, audit.Source{}, errNoOrg
	}
	if err != nil {
		// Forbidden: the caller is a member; the org and source are
		// returned so that the denial can be recorded in its log.
		return o, sourceOf(r, actor), err
	}
	return o, sourceOf(r, actor), nil
}

// sourceOf is the audit source of a request by actor.
func sourceOf(r *http.Request, actor audit.Actor) audit.Source {
	src := audit.Source{Actor: actor, UserAgent: r.UserAgent(), RequestID: RequestID(r.Context())}
	if a, ok := edge.ClientAddr(r); ok {
		src.IP = a.String()
	}
	return src
}
