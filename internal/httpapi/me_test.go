package httpapi

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"bulwark/internal/audit"
	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

// A user's export holds what is kept about them (profile, memberships,
// sessions, their events) and no secret; erasure needs the password, is
// refused while they are an org's last owner, and then leaves no account,
// session, membership or address behind (the address can sign up anew).
func TestMe_ExportAndErasure(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newAuthEnv(t, opts)
		amy, _ := e.user(t, "amy@example.com")
		bob, _ := e.user(t, "bob@example.com")
		if st, body := e.do(t, "POST", "/v1/orgs", amy, map[string]string{"name": "Acme", "slug": "acme"}); st != 201 {
			t.Fatalf("create: %d %v", st, body)
		}
		st, ex := e.do(t, "GET", "/v1/me/export", amy, nil)
		if st != 200 {
			t.Fatalf("export: %d %v", st, ex)
		}
		raw, _ := json.Marshal(ex)
		u := ex["user"].(map[string]any)
		if u["profile"].(map[string]any)["email"] != "amy@example.com" || len(ex["memberships"].([]any)) != 1 ||
			len(u["sessions"].([]any)) != 1 || !strings.Contains(string(raw), "auth.login.succeeded") {
			t.Fatalf("export: %s", raw)
		}
		if strings.Contains(string(raw), "$argon2id") || strings.Contains(string(raw), "password_hash") {
			t.Fatalf("the export holds a password hash: %s", raw)
		}
		if st, _ := e.do(t, "DELETE", "/v1/me", amy, map[string]string{"password": "wrong password here"}); st != 422 {
			t.Fatalf("erasure with a wrong password: %d, want 422", st)
		}
		if st, body := e.do(t, "DELETE", "/v1/me", amy, map[string]string{"password": pw}); st != 409 || !strings.Contains(body["detail"].(string), "acme") {
			t.Fatalf("erasure of a last owner: %d %v", st, body)
		}
		if st, _ := e.do(t, "GET", "/v1/me", amy, nil); st != 200 {
			t.Fatalf("a refused erasure changed the account: %d", st)
		}
		// Bob becomes owner too; then Amy can go.
		if st, _ := e.do(t, "POST", "/v1/orgs/acme/members", amy, map[string]string{"email": "bob@example.com", "role": "owner"}); st != 201 {
			t.Fatal(st)
		}
		if st, _ := e.do(t, "POST", "/v1/invites/accept", bob, map[string]string{"token": e.mailToken(t)}); st != 200 {
			t.Fatal(st)
		}
		amyID := u["profile"].(map[string]any)["id"].(string)
		if st, _ := e.do(t, "DELETE", "/v1/me", amy, map[string]string{"password": pw}); st != 202 {
			t.Fatalf("erasure: %d", st)
		}
		if st, _ := e.do(t, "GET", "/v1/me", amy, nil); st != 401 {
			t.Fatalf("the erased account's token: %d, want 401", st)
		}
		if st, _ := e.do(t, "POST", "/v1/auth/login", "", map[string]string{"email": "amy@example.com", "password": pw}); st != 401 {
			t.Fatalf("login of an erased account: %d, want 401", st)
		}
		for _, q := range []string{"SELECT COUNT(*) FROM users WHERE id = $1", "SELECT COUNT(*) FROM sessions WHERE user_id = $1",
			"SELECT COUNT(*) FROM org_members WHERE user_id = $1", "SELECT COUNT(*) FROM password_history WHERE user_id = $1"} {
			var n int
			if err := e.st.Control().SQL().QueryRowContext(ctx, q, amyID).Scan(&n); err != nil || n != 0 {
				t.Fatalf("%s: %d left (%v)", q, n, err)
			}
		}
		page, err := e.audit.Query(ctx, audit.ControlLog, audit.Filter{Action: "user.erased"}, 10, "")
		if err != nil || len(page.Items) != 1 || page.Items[0].Resource.ID != amyID {
			t.Fatalf("erasure event: %+v %v", page.Items, err)
		}
		// The address is free again: a new signup gets a confirmation, not
		// the notice that the address has an account.
		if st, _ := e.do(t, "POST", "/v1/auth/signup", "", map[string]string{"email": "amy@example.com", "password": pw, "name": "Amy Again"}); st != 201 {
			t.Fatalf("signup with the erased address: %d", st)
		}
		msgs, err := e.smtp.WaitFor(ctx, e.seen+1)
		if err != nil {
			t.Fatal(err)
		}
		if subj := msgs[e.seen].Header.Get("Subject"); subj != "Confirm your e-mail address" {
			t.Fatalf("signup after erasure got %q", subj)
		}
	})
}
