package httpapi

import (
	"net/http"

	"bulwark/internal/apperr"
	"bulwark/internal/audit"
)

// opsAuthRoutes are the operators' own: setup from the one-time link,
// login (always with a second factor), refresh and who-am-I. They are on
// the ops listener only, behind its IP allowlist.
func (d Deps) opsAuthRoutes(mux *http.ServeMux) {
	ids := d.Identity
	mux.Handle("POST /ops/v1/setup", handle(func(w http.ResponseWriter, r *http.Request) error {
		in, err := decode[resetBody](w, r)
		if err != nil {
			return err
		}
		en, err := ids.SetupOperator(r.Context(), anonymousOperator(r), in.Token, in.Password)
		if err != nil {
			return err
		}
		return encode(w, r, http.StatusOK, en)
	}))
	mux.Handle("POST /ops/v1/setup/confirm", handle(func(w http.ResponseWriter, r *http.Request) error {
		in, err := decode[struct {
			Token string `json:"token"`
			Code  string `json:"code"`
		}](w, r)
		if err != nil {
			return err
		}
		codes, err := ids.ConfirmOperator(r.Context(), anonymousOperator(r), in.Token, in.Code)
		if err != nil {
			return err
		}
		return encode(w, r, http.StatusOK, map[string]any{"recovery_codes": codes})
	}))
	mux.Handle("POST /ops/v1/auth/login", handle(func(w http.ResponseWriter, r *http.Request) error {
		in, err := decode[loginBody](w, r)
		if err != nil {
			return err
		}
		res, err := ids.LoginOperator(r.Context(), anonymousOperator(r), in.Email, in.Password)
		if err != nil {
			return err
		}
		return writeLogin(w, r, res)
	}))
	mux.Handle("POST /ops/v1/auth/mfa", handle(func(w http.ResponseWriter, r *http.Request) error {
		in, err := decode[mfaBody](w, r)
		if err != nil {
			return err
		}
		res, err := ids.CompleteMFA(r.Context(), anonymousOperator(r), in.MFAToken, in.Code)
		if err != nil {
			return err
		}
		return writeLogin(w, r, res)
	}))
	mux.Handle("POST /ops/v1/auth/refresh", handle(func(w http.ResponseWriter, r *http.Request) error {
		in, err := decode[refreshBody](w, r)
		if err != nil {
			return err
		}
		t, err := ids.Refresh(r.Context(), anonymousOperator(r), in.RefreshToken)
		if err != nil {
			return err
		}
		return encode(w, r, http.StatusOK, t)
	}))
	mux.Handle("GET /ops/v1/me", handle(func(w http.ResponseWriter, r *http.Request) error {
		actor, err := d.operator(r)
		if err != nil {
			return err
		}
		u, err := ids.User(r.Context(), actor.ID)
		if err != nil {
			return err
		}
		return encode(w, r, http.StatusOK, u)
	}))
}

func anonymousOperator(r *http.Request) audit.Source {
	return sourceOf(r, audit.Actor{Type: audit.ActorOperator})
}

// operator authenticates an operator's access token (ops audience, an
// active session, an operator account).
func (d Deps) operator(r *http.Request) (audit.Actor, error) {
	cred, ok := bearer(r)
	if !ok {
		return audit.Actor{}, errAuthRequired
	}
	c, err := d.OpsTokens.Verify(r.Context(), cred)
	if err != nil {
		return audit.Actor{}, err
	}
	active, err := d.Identity.SessionActive(r.Context(), c.Session)
	if err != nil {
		return audit.Actor{}, err
	}
	isOp, err := d.Identity.IsOperator(r.Context(), c.Subject)
	if err != nil {
		return audit.Actor{}, err
	}
	if !active || !isOp {
		return audit.Actor{}, apperr.Errorf(apperr.Unauthorized, "authentication required")
	}
	return audit.Actor{Type: audit.ActorOperator, ID: c.Subject}, nil
}
