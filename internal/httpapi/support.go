package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"bulwark/internal/apperr"
	"bulwark/internal/audit"
	"bulwark/internal/authz"
	"bulwark/internal/identity"
	"bulwark/internal/org"
)

// supportAuth is the Authorizer of the ops listener's org routes: an
// operator reaches an org only under a live support grant of it, with
// the grant's role (support_read or support_write), and every access is
// recorded in the org's log. Without a grant the org does not exist for
// them (404), as for a user of another org.
type supportAuth struct{ d Deps }

func (a supportAuth) Authenticate(r *http.Request) (audit.Actor, error) { return a.d.operator(r) }

func (a supportAuth) Authorize(r *http.Request, actor audit.Actor, o org.Org, perm authz.Perm) (authz.Role, error) {
	g, ok, err := a.d.Support.Live(r.Context(), o.ID, actor.ID)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", errNoOrg
	}
	role := g.Role()
	if !authz.Allowed(role, perm) {
		return role, apperr.Errorf(apperr.Forbidden, "your support grant does not allow this")
	}
	if err := a.d.Support.Accessed(r.Context(), sourceOf(r, actor), g, r.Method, r.Pattern); err != nil {
		return "", err
	}
	return role, nil
}

type supportAsk struct {
	Org             string `json:"org"`
	Reason          string `json:"reason"`
	DurationMinutes int    `json:"duration_minutes"`
	Write           bool   `json:"write"`
}

// supportRoutes are the org's side of support access, on the public
// listener: owners and admins see the requests and decide.
func (d Deps) supportRoutes(mux *http.ServeMux) {
	sup := d.Support
	d.orgRoute(mux, "GET /v1/orgs/{org}/access-requests", authz.SupportView, func(w http.ResponseWriter, r *http.Request, a access) error {
		list, err := sup.List(r.Context(), a.Org.ID)
		if err != nil {
			return err
		}
		return encode(w, r, http.StatusOK, map[string]any{"items": list, "next_cursor": nil})
	})
	decide := func(approve bool) orgHandler {
		return func(w http.ResponseWriter, r *http.Request, a access) error {
			g, err := sup.Decide(r.Context(), a.Src, a.Org.ID, r.PathValue("id"), approve)
			if err != nil {
				return err
			}
			return encode(w, r, http.StatusOK, g)
		}
	}
	d.orgRoute(mux, "POST /v1/orgs/{org}/access-requests/{id}/approve", authz.SupportDecide, decide(true))
	d.orgRoute(mux, "POST /v1/orgs/{org}/access-requests/{id}/deny", authz.SupportDecide, decide(false))
	d.orgRoute(mux, "POST /v1/orgs/{org}/access-grants/{id}/revoke", authz.SupportDecide, func(w http.ResponseWriter, r *http.Request, a access) error {
		g, err := sup.Revoke(r.Context(), a.Src, a.Org.ID, r.PathValue("id"))
		if err != nil {
			return err
		}
		return encode(w, r, http.StatusOK, g)
	})
}

// opsSupportRoutes are the operators' side, on the ops listener: ask,
// break-glass, the second operator's approval, their own requests, and
// the org routes they may use under a live grant.
func (d Deps) opsSupportRoutes(mux *http.ServeMux) {
	sup := d.Support
	withOperator := func(fn func(w http.ResponseWriter, r *http.Request, src audit.Source) error) http.Handler {
		return handle(func(w http.ResponseWriter, r *http.Request) error {
			actor, err := d.operator(r)
			if err != nil {
				return err
			}
			return fn(w, r, sourceOf(r, actor))
		})
	}
	ask := func(breakGlass bool) http.Handler {
		return withOperator(func(w http.ResponseWriter, r *http.Request, src audit.Source) error {
			in, err := decode[supportAsk](w, r)
			if err != nil {
				return err
			}
			o, err := d.Orgs.Get(r.Context(), in.Org)
			if err != nil {
				if apperr.CodeOf(err) == apperr.NotFound || apperr.CodeOf(err) == apperr.Invalid {
					return apperr.WithFields("organization not found", apperr.FieldError{Field: "org", Code: "not_found"})
				}
				return err
			}
			var g authz.Grant
			if breakGlass {
				g, err = sup.BreakGlass(r.Context(), src, o.ID, in.Reason, in.DurationMinutes, in.Write)
			} else {
				g, err = sup.Request(r.Context(), src, o.ID, in.Reason, in.DurationMinutes, in.Write)
			}
			if err != nil {
				return err
			}
			return encode(w, r, http.StatusCreated, g)
		})
	}
	mux.Handle("POST /ops/v1/access-requests", ask(false))
	mux.Handle("POST /ops/v1/access-requests/break-glass", ask(true))
	mux.Handle("POST /ops/v1/access-requests/{id}/approve", withOperator(func(w http.ResponseWriter, r *http.Request, src audit.Source) error {
		g, err := sup.SecondApprove(r.Context(), src, r.PathValue("id"))
		if err != nil {
			return err
		}
		return encode(w, r, http.StatusOK, g)
	}))
	mux.Handle("GET /ops/v1/access-requests", withOperator(func(w http.ResponseWriter, r *http.Request, src audit.Source) error {
		list, err := sup.Mine(r.Context(), src.Actor.ID)
		if err != nil {
			return err
		}
		return encode(w, r, http.StatusOK, map[string]any{"items": list, "next_cursor": nil})
	}))
	// The org routes an operator may use under a grant.
	od := d
	od.Authorizer = supportAuth{d}
	od.orgRoute(mux, "GET /ops/v1/orgs/{org}", authz.OrgRead, func(w http.ResponseWriter, r *http.Request, a access) error {
		return encode(w, r, http.StatusOK, viewOf(a.Org, a.Role))
	})
	od.orgRoute(mux, "GET /ops/v1/orgs/{org}/members", authz.MembersRead, func(w http.ResponseWriter, r *http.Request, a access) error {
		ms, err := d.Orgs.Members(r.Context(), a.Org.ID, 100, "")
		if err != nil {
			return err
		}
		return encode(w, r, http.StatusOK, map[string]any{"items": ms, "next_cursor": nil})
	})
	if d.Records != nil {
		// Collections and records: reads under any grant (sensitive fields
		// as support_read allows), writes only under a grant with write.
		h := recordHandlers{d.Records}
		od.orgRoute(mux, "GET /ops/v1/orgs/{org}/collections", authz.CollectionsRead, h.listCollections)
		od.orgRoute(mux, "GET /ops/v1/orgs/{org}/collections/{name}", authz.CollectionsRead, h.getCollection)
		od.orgRoute(mux, "GET /ops/v1/orgs/{org}/collections/{name}/records", authz.RecordsRead, h.list)
		od.orgRoute(mux, "POST /ops/v1/orgs/{org}/collections/{name}/records", authz.RecordsWrite, h.create)
		od.orgRoute(mux, "GET /ops/v1/orgs/{org}/collections/{name}/records/{id}", authz.RecordsRead, h.get)
		od.orgRoute(mux, "PATCH /ops/v1/orgs/{org}/collections/{name}/records/{id}", authz.RecordsWrite, h.update)
		od.orgRoute(mux, "DELETE /ops/v1/orgs/{org}/collections/{name}/records/{id}", authz.RecordsWrite, h.delete)
	}
}

// BreakGlassNotifier returns what tells an org's owners, by mail, that an
// operator has emergency access to its data: why, until when, and how to
// revoke it (for authz.Support.OnBreakGlass).
func BreakGlassNotifier(orgs *org.Service, ids *identity.Service) func(ctx context.Context, g authz.Grant) {
	return func(ctx context.Context, g authz.Grant) {
		o, err := orgs.Get(ctx, g.OrgID)
		if err != nil {
			return
		}
		until := ""
		if g.ExpiresAt != nil {
			until = g.ExpiresAt.Format(time.RFC3339)
		}
		access := "read only"
		if g.Write {
			access = "read and write"
		}
		text := fmt.Sprintf("A Bulwark operator has emergency (break-glass) access to the data of %s until %s, approved by a second operator.\n\n"+
			"Reason given: %s\nAccess: %s\n\nEvery access is in your organization's audit log. An owner or admin can revoke it at once "+
			"(POST /v1/orgs/%s/access-grants/%s/revoke).\n", o.Name, until, g.Reason, access, o.Slug, g.ID)
		for after := ""; ; {
			ms, err := orgs.Members(ctx, o.ID, 100, after)
			if err != nil || len(ms) == 0 {
				return
			}
			for _, m := range ms {
				if m.Role == string(authz.Owner) {
					ids.Notify(ctx, m.UserID, "Emergency access to "+o.Name+" by Bulwark staff", text)
				}
			}
			after = ms[len(ms)-1].UserID
		}
	}
}
