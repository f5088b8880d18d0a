package httpapi

import (
	"net/http"
	"time"

	"bulwark/internal/apperr"
)

// PermAPIKeys is listing, creating and revoking an org's API keys.
const PermAPIKeys = "api_keys.manage"

// roleRank orders roles: a caller may not make a key stronger than itself.
var roleRank = map[string]int{"viewer": 1, "member": 2, "admin": 3, "owner": 4}

type apiKeyBody struct {
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	ExpiresAt *time.Time `json:"expires_at"`
}

func (d Deps) apiKeyRoutes(mux *http.ServeMux) {
	ids := d.Identity
	mux.Handle("GET /v1/orgs/{org}/api-keys", handle(func(w http.ResponseWriter, r *http.Request) error {
		o, _, err := d.orgFor(r, PermAPIKeys)
		if err != nil {
			return err
		}
		list, err := ids.APIKeys(r.Context(), o.ID)
		if err != nil {
			return err
		}
		return encode(w, r, http.StatusOK, map[string]any{"items": list, "next_cursor": nil})
	}))
	mux.Handle("POST /v1/orgs/{org}/api-keys", handle(func(w http.ResponseWriter, r *http.Request) error {
		o, src, err := d.orgFor(r, PermAPIKeys)
		if err != nil {
			return err
		}
		in, err := decode[apiKeyBody](w, r)
		if err != nil {
			return err
		}
		if ia, ok := d.Authorizer.(identityAuth); ok {
			if c, err := ia.caller(r); err == nil && c.apiKey.ID != "" && roleRank[in.Role] > roleRank[c.apiKey.Role] {
				return apperr.Errorf(apperr.Forbidden, "a key cannot make a key with a stronger role than its own")
			}
		}
		text, k, err := ids.CreateAPIKey(r.Context(), src, o.ID, in.Name, in.Role, in.ExpiresAt)
		if err != nil {
			return err
		}
		return encode(w, r, http.StatusCreated, map[string]any{"api_key": k, "secret": text})
	}))
	mux.Handle("DELETE /v1/orgs/{org}/api-keys/{id}", handle(func(w http.ResponseWriter, r *http.Request) error {
		o, src, err := d.orgFor(r, PermAPIKeys)
		if err != nil {
			return err
		}
		if err := ids.RevokeAPIKey(r.Context(), src, o.ID, r.PathValue("id")); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}))
}
