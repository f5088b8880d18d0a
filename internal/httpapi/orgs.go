package httpapi

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"bulwark/internal/apperr"
	"bulwark/internal/authz"
	"bulwark/internal/edge"
	"bulwark/internal/org"
)

// orgView is an org as the API shows it; Role is the caller's.
type orgView struct {
	ID        string    `json:"id"`
	Slug      string    `json:"slug"`
	Name      string    `json:"name"`
	Status    string    `json:"status"`
	Role      string    `json:"role,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func viewOf(o org.Org, role authz.Role) orgView {
	return orgView{ID: o.ID, Slug: o.Slug, Name: o.Name, Status: string(o.Status), Role: string(role), CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt}
}

// policyView is the policy with its deviations from ASVS.
type policyView struct {
	org.Policy
	Deviations []string `json:"deviations"`
}

// pageLimit reads ?limit= (1 to 100, default 20).
func pageLimit(r *http.Request) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return 20, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 100 {
		return 0, apperr.WithFields("limit must be 1 to 100", apperr.FieldError{Field: "limit", Code: "out_of_range"})
	}
	return n, nil
}

// orgRoutes are the org, member, invitation and policy routes.
func (d Deps) orgRoutes(mux *http.ServeMux) {
	orgs, ids := d.Orgs, d.Identity
	mux.Handle("POST /v1/orgs", d.withUser(func(w http.ResponseWriter, r *http.Request, c caller) error {
		in, err := decode[struct {
			Name string `json:"name"`
			Slug string `json:"slug"`
		}](w, r)
		if err != nil {
			return err
		}
		o, err := orgs.CreateOwned(r.Context(), sourceOf(r, c.actor), in.Name, in.Slug, c.actor.ID)
		if err != nil {
			return err
		}
		return encode(w, r, http.StatusCreated, viewOf(o, authz.Owner))
	}))
	mux.Handle("GET /v1/orgs", d.withUser(func(w http.ResponseWriter, r *http.Request, c caller) error {
		mine, err := orgs.OrgsOf(r.Context(), c.actor.ID)
		if err != nil {
			return err
		}
		items := make([]orgView, 0, len(mine))
		for _, m := range mine {
			items = append(items, viewOf(m.Org, authz.Role(m.Role)))
		}
		return encode(w, r, http.StatusOK, map[string]any{"items": items, "next_cursor": nil})
	}))
	mux.Handle("POST /v1/invites/accept", d.withUser(func(w http.ResponseWriter, r *http.Request, c caller) error {
		in, err := decode[tokenBody](w, r)
		if err != nil {
			return err
		}
		idx, err := ids.UserEmailIndex(r.Context(), c.actor.ID)
		if err != nil {
			return err
		}
		o, m, err := orgs.AcceptInvite(r.Context(), sourceOf(r, c.actor), in.Token, c.actor.ID, idx)
		if err != nil {
			return err
		}
		return encode(w, r, http.StatusOK, map[string]any{"org": viewOf(o, authz.Role(m.Role)), "member": m})
	}))

	d.orgRoute(mux, "GET /v1/orgs/{org}", authz.OrgRead, func(w http.ResponseWriter, r *http.Request, a access) error {
		return encode(w, r, http.StatusOK, viewOf(a.Org, a.Role))
	})
	d.orgRoute(mux, "PATCH /v1/orgs/{org}", authz.OrgUpdate, func(w http.ResponseWriter, r *http.Request, a access) error {
		in, err := decode[struct {
			Name string `json:"name"`
		}](w, r)
		if err != nil {
			return err
		}
		o, err := orgs.Rename(r.Context(), a.Src, a.Org.ID, in.Name)
		if err != nil {
			return err
		}
		return encode(w, r, http.StatusOK, viewOf(o, a.Role))
	})
	d.orgRoute(mux, "DELETE /v1/orgs/{org}", authz.OrgDelete, func(w http.ResponseWriter, r *http.Request, a access) error {
		in, err := decode[struct {
			Confirm string `json:"confirm"`
		}](w, r)
		if err != nil {
			return err
		}
		if in.Confirm != a.Org.Slug {
			return apperr.WithFields("to delete the organization and destroy its data, files and keys, send confirm with its slug",
				apperr.FieldError{Field: "confirm", Code: "mismatch"})
		}
		if _, err := orgs.Delete(r.Context(), a.Org.ID); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})

	d.orgRoute(mux, "GET /v1/orgs/{org}/members", authz.MembersRead, func(w http.ResponseWriter, r *http.Request, a access) error {
		limit, after, err := textPage(r)
		if err != nil {
			return err
		}
		ms, err := orgs.Members(r.Context(), a.Org.ID, limit+1, after)
		if err != nil {
			return err
		}
		var next *string
		if len(ms) > limit {
			ms = ms[:limit]
			c := encodeTextCursor(ms[limit-1].UserID)
			next = &c
		}
		return encode(w, r, http.StatusOK, map[string]any{"items": ms, "next_cursor": next})
	})
	d.orgRoute(mux, "POST /v1/orgs/{org}/members", authz.MembersManage, func(w http.ResponseWriter, r *http.Request, a access) error {
		in, err := decode[struct {
			Email string `json:"email"`
			Role  string `json:"role"`
		}](w, r)
		if err != nil {
			return err
		}
		idx, err := ids.EmailIndex(r.Context(), in.Email)
		if err != nil {
			return err
		}
		tok, inv, err := orgs.Invite(r.Context(), a.Src, a.Org.ID, a.Role, idx, in.Role)
		if err != nil {
			return err
		}
		ids.SendInvite(r.Context(), in.Email, a.Org.Name, tok)
		return encode(w, r, http.StatusCreated, map[string]any{"invite": inv})
	})
	d.orgRoute(mux, "PATCH /v1/orgs/{org}/members/{user}", authz.MembersManage, func(w http.ResponseWriter, r *http.Request, a access) error {
		in, err := decode[struct {
			Role string `json:"role"`
		}](w, r)
		if err != nil {
			return err
		}
		m, err := orgs.SetRole(r.Context(), a.Src, a.Org.ID, a.Role, r.PathValue("user"), in.Role)
		if err != nil {
			return err
		}
		return encode(w, r, http.StatusOK, m)
	})
	d.orgRoute(mux, "DELETE /v1/orgs/{org}/members/{user}", authz.MembersManage, func(w http.ResponseWriter, r *http.Request, a access) error {
		if err := orgs.RemoveMember(r.Context(), a.Src, a.Org.ID, a.Role, a.Src.Actor.ID, r.PathValue("user")); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	// Any member may leave (the last owner excepted); an API key is no
	// member.
	d.orgRoute(mux, "POST /v1/orgs/{org}/leave", authz.OrgRead, func(w http.ResponseWriter, r *http.Request, a access) error {
		if a.Src.Actor.Type != "user" {
			return apperr.Errorf(apperr.Invalid, "only a member can leave; revoke an API key instead")
		}
		if err := orgs.RemoveMember(r.Context(), a.Src, a.Org.ID, a.Role, a.Src.Actor.ID, a.Src.Actor.ID); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	d.orgRoute(mux, "GET /v1/orgs/{org}/invites", authz.MembersRead, func(w http.ResponseWriter, r *http.Request, a access) error {
		list, err := orgs.Invites(r.Context(), a.Org.ID, time.Now())
		if err != nil {
			return err
		}
		return encode(w, r, http.StatusOK, map[string]any{"items": list, "next_cursor": nil})
	})
	d.orgRoute(mux, "DELETE /v1/orgs/{org}/invites/{id}", authz.MembersManage, func(w http.ResponseWriter, r *http.Request, a access) error {
		if err := orgs.RevokeInvite(r.Context(), a.Src, a.Org.ID, r.PathValue("id")); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})

	d.orgRoute(mux, "GET /v1/orgs/{org}/policy", authz.PolicyRead, func(w http.ResponseWriter, r *http.Request, a access) error {
		p, err := orgs.Policy(r.Context(), a.Org.ID)
		if err != nil {
			return err
		}
		return encode(w, r, http.StatusOK, policyView{p, p.Deviations()})
	})
	d.orgRoute(mux, "PUT /v1/orgs/{org}/policy", authz.PolicySet, func(w http.ResponseWriter, r *http.Request, a access) error {
		// Omitted settings take their defaults: PUT replaces the policy.
		// The deviations of a GET may come back; they are recomputed.
		in := policyView{Policy: orgs.DefaultPolicy()}
		if err := decodeInto(w, r, &in); err != nil {
			return err
		}
		// An allowlist that leaves out the caller's own network would lock
		// them out with it.
		if len(in.IPAllowlist) > 0 {
			check := in.Policy
			if err := check.Validate(); err == nil {
				if addr, ok := edge.ClientAddr(r); !ok || !check.Allows(addr) {
					return apperr.WithFields("the allowlist does not include your own address: saving it would lock you out",
						apperr.FieldError{Field: "ip_allowlist", Code: "excludes_caller"})
				}
			}
		}
		p, err := orgs.SetPolicy(r.Context(), a.Src, a.Org.ID, in.Policy)
		if err != nil {
			return err
		}
		return encode(w, r, http.StatusOK, policyView{p, p.Deviations()})
	})
}

// textPage reads ?limit= and the ?cursor= of a page ordered by a text
// key: the page size and the key to start after ("" for the first page).
func textPage(r *http.Request) (limit int, after string, err error) {
	if limit, err = pageLimit(r); err != nil {
		return 0, "", err
	}
	if c := r.URL.Query().Get("cursor"); c != "" {
		if after, err = decodeTextCursor(c); err != nil {
			return 0, "", err
		}
	}
	return limit, after, nil
}

// encodeTextCursor and decodeTextCursor make the opaque cursor of a page
// ordered by a text key: the last key of the page.
func encodeTextCursor(key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte("k" + key))
}

func decodeTextCursor(c string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) < 2 || b[0] != 'k' || len(b) > 256 || !utf8.Valid(b) {
		return "", apperr.WithFields("invalid cursor", apperr.FieldError{Field: "cursor", Code: "invalid"})
	}
	return string(b[1:]), nil
}
