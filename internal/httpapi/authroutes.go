package httpapi

import (
	"context"
	"net/http"

	"bulwark/internal/audit"
	"bulwark/internal/authz"
	"bulwark/internal/identity"
	"bulwark/internal/store"
)

type signupBody struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Name     string `json:"name"`
}

type loginBody struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

type mfaBody struct {
	MFAToken string `json:"mfa_token"`
	Code     string `json:"code"`
}

type refreshBody struct {
	RefreshToken string `json:"refresh_token"`
}

type emailBody struct {
	Email string `json:"email"`
}

type tokenBody struct {
	Token string `json:"token"`
}

type resetBody struct {
	Token    string `json:"token"`
	Password string `json:"password"`
}

type passwordBody struct {
	CurrentPassword string `json:"current_password"`
	Password        string `json:"password"`
}

type codeBody struct {
	Code string `json:"code"`
}

// handle adapts a handler that returns an error: a non-nil error is
// answered as a problem.
func handle(fn func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			writeError(w, r, err)
		}
	})
}

func (d Deps) authRoutes(mux *http.ServeMux) {
	ids := d.Identity
	mux.Handle("POST /v1/auth/signup", handle(func(w http.ResponseWriter, r *http.Request) error {
		in, err := decode[signupBody](w, r)
		if err != nil {
			return err
		}
		u, err := ids.Signup(r.Context(), anonymous(r), in.Email, in.Password, in.Name)
		if err != nil {
			return err
		}
		return encode(w, r, http.StatusCreated, map[string]any{"user": u})
	}))
	mux.Handle("POST /v1/auth/verify-email", handle(func(w http.ResponseWriter, r *http.Request) error {
		in, err := decode[tokenBody](w, r)
		if err != nil {
			return err
		}
		if err := ids.VerifyEmail(r.Context(), anonymous(r), in.Token); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}))
	mux.Handle("POST /v1/auth/login", handle(func(w http.ResponseWriter, r *http.Request) error {
		in, err := decode[loginBody](w, r)
		if err != nil {
			return err
		}
		res, err := ids.Login(r.Context(), anonymous(r), in.Email, in.Password)
		if err != nil {
			return err
		}
		return writeLogin(w, r, res)
	}))
	mux.Handle("POST /v1/auth/mfa", handle(func(w http.ResponseWriter, r *http.Request) error {
		in, err := decode[mfaBody](w, r)
		if err != nil {
			return err
		}
		res, err := ids.CompleteMFA(r.Context(), anonymous(r), in.MFAToken, in.Code)
		if err != nil {
			return err
		}
		return writeLogin(w, r, res)
	}))
	mux.Handle("POST /v1/auth/refresh", handle(func(w http.ResponseWriter, r *http.Request) error {
		in, err := decode[refreshBody](w, r)
		if err != nil {
			return err
		}
		t, err := ids.Refresh(r.Context(), anonymous(r), in.RefreshToken)
		if err != nil {
			return err
		}
		return encode(w, r, http.StatusOK, t)
	}))
	mux.Handle("POST /v1/auth/logout", d.withUser(func(w http.ResponseWriter, r *http.Request, c caller) error {
		if err := ids.RevokeSession(r.Context(), sourceOf(r, c.actor), c.actor.ID, c.sid, "logout"); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}))
	mux.Handle("POST /v1/auth/password/forgot", handle(func(w http.ResponseWriter, r *http.Request) error {
		in, err := decode[emailBody](w, r)
		if err != nil {
			return err
		}
		// The mail goes out in the background so that the answer takes the
		// same time whether or not the address has an account.
		src := anonymous(r)
		go ids.ForgotPassword(context.WithoutCancel(r.Context()), src, in.Email)
		w.WriteHeader(http.StatusAccepted)
		return nil
	}))
	mux.Handle("POST /v1/auth/password/reset", handle(func(w http.ResponseWriter, r *http.Request) error {
		in, err := decode[resetBody](w, r)
		if err != nil {
			return err
		}
		if err := ids.ResetPassword(r.Context(), anonymous(r), in.Token, in.Password); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}))
	mux.Handle("POST /v1/auth/password/expired", handle(func(w http.ResponseWriter, r *http.Request) error {
		in, err := decode[resetBody](w, r)
		if err != nil {
			return err
		}
		if err := ids.ChangeExpiredPassword(r.Context(), anonymous(r), in.Token, in.Password); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}))
	mux.Handle("GET /v1/me/export", d.withUser(func(w http.ResponseWriter, r *http.Request, c caller) error {
		ex, err := ids.ExportUser(r.Context(), c.actor.ID)
		if err != nil {
			return err
		}
		out := map[string]any{"user": ex, "memberships": []any{}}
		if d.Orgs != nil {
			mine, err := d.Orgs.OrgsOf(r.Context(), c.actor.ID)
			if err != nil {
				return err
			}
			ms := make([]orgView, 0, len(mine))
			for _, m := range mine {
				ms = append(ms, viewOf(m.Org, authz.Role(m.Role)))
			}
			out["memberships"] = ms
		}
		if err := d.Audit.Record(r.Context(), audit.ControlLog, sourceOf(r, c.actor).Event("user.exported",
			audit.Resource{Type: "user", ID: c.actor.ID}, audit.Success, nil)); err != nil {
			return err
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Disposition", `attachment; filename="bulwark-account.json"`)
		return encode(w, r, http.StatusOK, out)
	}))
	mux.Handle("DELETE /v1/me", d.withUser(func(w http.ResponseWriter, r *http.Request, c caller) error {
		in, err := decode[struct {
			Password string `json:"password"`
		}](w, r)
		if err != nil {
			return err
		}
		var also func(ctx context.Context, tx *store.Tx) error
		if d.Orgs != nil {
			also = func(ctx context.Context, tx *store.Tx) error { return d.Orgs.RemoveUser(ctx, tx, c.actor.ID) }
		}
		if err := ids.EraseUser(r.Context(), sourceOf(r, c.actor), c.actor.ID, in.Password, also); err != nil {
			return err
		}
		w.WriteHeader(http.StatusAccepted)
		return nil
	}))
	mux.Handle("GET /v1/me", d.withUser(func(w http.ResponseWriter, r *http.Request, c caller) error {
		u, err := ids.User(r.Context(), c.actor.ID)
		if err != nil {
			return err
		}
		return encode(w, r, http.StatusOK, u)
	}))
	mux.Handle("PATCH /v1/me", d.withUser(func(w http.ResponseWriter, r *http.Request, c caller) error {
		in, err := decode[struct {
			Name string `json:"name"`
		}](w, r)
		if err != nil {
			return err
		}
		u, err := ids.UpdateName(r.Context(), sourceOf(r, c.actor), c.actor.ID, in.Name)
		if err != nil {
			return err
		}
		return encode(w, r, http.StatusOK, u)
	}))
	mux.Handle("POST /v1/me/password", d.withUser(func(w http.ResponseWriter, r *http.Request, c caller) error {
		in, err := decode[passwordBody](w, r)
		if err != nil {
			return err
		}
		if err := ids.ChangePassword(r.Context(), sourceOf(r, c.actor), c.actor.ID, c.sid, in.CurrentPassword, in.Password); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}))
	mux.Handle("POST /v1/me/mfa/totp", d.withUser(func(w http.ResponseWriter, r *http.Request, c caller) error {
		en, err := ids.StartTOTP(r.Context(), sourceOf(r, c.actor), c.actor.ID)
		if err != nil {
			return err
		}
		return encode(w, r, http.StatusOK, en)
	}))
	mux.Handle("POST /v1/me/mfa/totp/confirm", d.withUser(func(w http.ResponseWriter, r *http.Request, c caller) error {
		in, err := decode[codeBody](w, r)
		if err != nil {
			return err
		}
		codes, err := ids.ConfirmTOTP(r.Context(), sourceOf(r, c.actor), c.actor.ID, in.Code)
		if err != nil {
			return err
		}
		return encode(w, r, http.StatusOK, map[string]any{"recovery_codes": codes})
	}))
	mux.Handle("DELETE /v1/me/mfa/totp", d.withUser(func(w http.ResponseWriter, r *http.Request, c caller) error {
		in, err := decode[codeBody](w, r)
		if err != nil {
			return err
		}
		if err := ids.DisableTOTP(r.Context(), sourceOf(r, c.actor), c.actor.ID, in.Code); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}))
	mux.Handle("GET /v1/me/sessions", d.withUser(func(w http.ResponseWriter, r *http.Request, c caller) error {
		list, err := ids.Sessions(r.Context(), c.actor.ID, c.sid)
		if err != nil {
			return err
		}
		return encode(w, r, http.StatusOK, map[string]any{"items": list, "next_cursor": nil})
	}))
	mux.Handle("DELETE /v1/me/sessions/{id}", d.withUser(func(w http.ResponseWriter, r *http.Request, c caller) error {
		if err := ids.RevokeSession(r.Context(), sourceOf(r, c.actor), c.actor.ID, r.PathValue("id"), "revoked_by_user"); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}))
}

// writeLogin answers a login step: tokens, or the second factor to give.
func writeLogin(w http.ResponseWriter, r *http.Request, res identity.LoginResult) error {
	if res.PasswordExpired {
		return encode(w, r, http.StatusOK, map[string]any{"password_expired": true, "password_token": res.PasswordToken})
	}
	if res.MFARequired {
		return encode(w, r, http.StatusOK, map[string]any{"mfa_required": true, "mfa_token": res.MFAToken})
	}
	return encode(w, r, http.StatusOK, res.Tokens)
}

// withUser authenticates a user with an access token (not an API key).
func (d Deps) withUser(fn func(w http.ResponseWriter, r *http.Request, c caller) error) http.Handler {
	return handle(func(w http.ResponseWriter, r *http.Request) error {
		a, ok := d.Authorizer.(identityAuth)
		if !ok {
			return errAuthRequired
		}
		c, err := a.caller(r)
		if err != nil {
			return err
		}
		if c.sid == "" {
			return errAuthRequired // API keys have no account
		}
		return fn(w, r, c)
	})
}
