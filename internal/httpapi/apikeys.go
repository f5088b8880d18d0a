package httpapi

import (
	"net/http"
	"time"

	"bulwark/internal/apperr"
	"bulwark/internal/authz"
)

type apiKeyBody struct {
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	ExpiresAt *time.Time `json:"expires_at"`
}

func (d Deps) apiKeyRoutes(mux *http.ServeMux) {
	ids := d.Identity
	d.orgRoute(mux, "GET /v1/orgs/{org}/api-keys", authz.APIKeysManage, func(w http.ResponseWriter, r *http.Request, a access) error {
		list, err := ids.APIKeys(r.Context(), a.Org.ID)
		if err != nil {
			return err
		}
		return encode(w, r, http.StatusOK, map[string]any{"items": list, "next_cursor": nil})
	})
	d.orgRoute(mux, "POST /v1/orgs/{org}/api-keys", authz.APIKeysManage, func(w http.ResponseWriter, r *http.Request, a access) error {
		in, err := decode[apiKeyBody](w, r)
		if err != nil {
			return err
		}
		// A caller cannot make a key stronger than itself.
		if authz.ValidMemberRole(in.Role) && authz.Rank(authz.Role(in.Role)) > authz.Rank(a.Role) {
			return apperr.Errorf(apperr.Forbidden, "you cannot make a key with a stronger role than your own")
		}
		text, k, err := ids.CreateAPIKey(r.Context(), a.Src, a.Org.ID, in.Name, in.Role, in.ExpiresAt)
		if err != nil {
			return err
		}
		return encode(w, r, http.StatusCreated, map[string]any{"api_key": k, "secret": text})
	})
	d.orgRoute(mux, "DELETE /v1/orgs/{org}/api-keys/{id}", authz.APIKeysManage, func(w http.ResponseWriter, r *http.Request, a access) error {
		if err := ids.RevokeAPIKey(r.Context(), a.Src, a.Org.ID, r.PathValue("id")); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}
