package httpapi

import (
	"context"
	"encoding/base32"
	"strings"
	"testing"

	"bulwark/internal/audit"
	"bulwark/internal/identity/totp"
	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

// operator creates an operator account through its setup link and signs
// it in on the ops listener (password and TOTP); it returns the access
// token.
func (e *authEnv) operator(t *testing.T, email string) string {
	t.Helper()
	ctx := context.Background()
	cli := audit.Source{Actor: audit.Actor{Type: audit.ActorOperator, ID: "cli"}}
	link, err := e.ids.CreateOperator(ctx, cli, email, "Op "+email, e.ops.URL)
	if err != nil {
		t.Fatal(err)
	}
	setup := link[strings.Index(link, "token=")+6:]
	st, en := e.do(t, "POST", "/ops/v1/setup", "", map[string]string{"token": setup, "password": pw})
	if st != 200 {
		t.Fatalf("setup: %d %v", st, en)
	}
	secret, _ := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(en["secret"].(string))
	st, rc := e.do(t, "POST", "/ops/v1/setup/confirm", "", map[string]string{"token": setup, "code": totp.Code(secret, e.clock.Now())})
	if st != 200 {
		t.Fatalf("confirm: %d %v", st, rc)
	}
	st, step := e.do(t, "POST", "/ops/v1/auth/login", "", map[string]string{"email": email, "password": pw})
	if st != 200 || step["mfa_required"] != true {
		t.Fatalf("ops login: %d %v", st, step)
	}
	st, toks := e.do(t, "POST", "/ops/v1/auth/mfa", "", map[string]string{"mfa_token": step["mfa_token"].(string),
		"code": rc["recovery_codes"].([]any)[0].(string)})
	if st != 200 {
		t.Fatalf("ops mfa: %d %v", st, toks)
	}
	return toks["access_token"].(string)
}

// Support access end to end: an operator sees nothing of an org until
// its admin approves a request; then reads what the grant allows and no
// more, each access in the org's own log (which the org reads); the org
// revokes it and the org is gone for the operator again. Break-glass
// needs a second operator, is live at once, and mails the owners.
func TestSupportAccess_RequestApproveAccessRevokeAndBreakGlass(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newAuthEnv(t, opts)
		amy, _ := e.user(t, "amy@example.com")
		if st, body := e.do(t, "POST", "/v1/orgs", amy, map[string]string{"name": "Acme", "slug": "acme"}); st != 201 {
			t.Fatalf("create: %d %v", st, body)
		}
		acme, _ := e.orgs.Get(ctx, "acme")
		olga := e.operator(t, "olga@ops.example.com")
		otto := e.operator(t, "otto@ops.example.com")
		if st, _ := e.do(t, "GET", "/ops/v1/orgs/acme", olga, nil); st != 404 {
			t.Fatalf("operator without a grant: %d, want 404", st)
		}
		// Bad requests change nothing.
		if st, body := e.do(t, "POST", "/ops/v1/access-requests", olga, map[string]any{"org": "acme", "reason": "x", "duration_minutes": 5000}); st != 422 ||
			len(body["errors"].([]any)) != 2 {
			t.Fatalf("bad request: %d %v", st, body)
		}
		if st, _ := e.do(t, "POST", "/ops/v1/access-requests", amy, map[string]any{"org": "acme", "reason": "ticket 4711: export fails", "duration_minutes": 60}); st != 401 {
			t.Fatalf("a user asking on the ops listener: %d, want 401", st)
		}
		st, req := e.do(t, "POST", "/ops/v1/access-requests", olga, map[string]any{"org": "acme", "reason": "ticket 4711: export fails", "duration_minutes": 60})
		if st != 201 || req["status"] != "pending" {
			t.Fatalf("request: %d %v", st, req)
		}
		id := req["id"].(string)
		if st, _ := e.do(t, "GET", "/ops/v1/orgs/acme", olga, nil); st != 404 {
			t.Fatalf("pending request gives access: %d", st)
		}
		st, list := e.do(t, "GET", "/v1/orgs/acme/access-requests", amy, nil)
		if st != 200 || len(list["items"].([]any)) != 1 || list["items"].([]any)[0].(map[string]any)["reason"] != "ticket 4711: export fails" {
			t.Fatalf("org's list: %d %v", st, list)
		}
		if st, ap := e.do(t, "POST", "/v1/orgs/acme/access-requests/"+id+"/approve", amy, nil); st != 200 || ap["status"] != "approved" || ap["expires_at"] == nil {
			t.Fatalf("approve: %d %v", st, ap)
		}
		if st, _ := e.do(t, "POST", "/v1/orgs/acme/access-requests/"+id+"/approve", amy, nil); st != 409 {
			t.Fatalf("approving twice: %d, want 409", st)
		}
		if st, o := e.do(t, "GET", "/ops/v1/orgs/acme", olga, nil); st != 200 || o["role"] != "support_read" {
			t.Fatalf("operator with a grant: %d %v", st, o)
		}
		if st, _ := e.do(t, "GET", "/ops/v1/orgs/acme/members", olga, nil); st != 403 {
			t.Fatalf("members under a support grant: %d, want 403", st)
		}
		if st, _ := e.do(t, "GET", "/ops/v1/orgs/acme", otto, nil); st != 404 {
			t.Fatalf("another operator rides the grant: %d, want 404", st)
		}
		// The org sees every step and access in its own log.
		st, evs := e.do(t, "GET", "/v1/orgs/acme/audit?action=support.*&limit=100", amy, nil)
		if st != 200 {
			t.Fatalf("org reads its log: %d", st)
		}
		seen := map[string]int{}
		for _, ev := range evs["items"].([]any) {
			seen[ev.(map[string]any)["action"].(string)]++
		}
		if seen["support.requested"] != 1 || seen["support.approved"] != 1 || seen["support.accessed"] != 1 {
			t.Fatalf("support events in the org's log: %v", seen)
		}
		denied, err := e.audit.Query(ctx, acme.ID, audit.Filter{Action: "access.denied", Actor: "operator:" + opsID(t, e, olga)}, 10, "")
		if err != nil || len(denied.Items) != 1 {
			t.Fatalf("the operator's denied access in the org's log: %+v, %v", denied.Items, err)
		}
		if st, rv := e.do(t, "POST", "/v1/orgs/acme/access-grants/"+id+"/revoke", amy, nil); st != 200 || rv["status"] != "revoked" {
			t.Fatalf("revoke: %d %v", st, rv)
		}
		if st, _ := e.do(t, "GET", "/ops/v1/orgs/acme", olga, nil); st != 404 {
			t.Fatalf("after revocation: %d, want 404", st)
		}
		// Break-glass: not by the same operator, at once by a second one.
		st, bg := e.do(t, "POST", "/ops/v1/access-requests/break-glass", olga, map[string]any{"org": acme.ID, "reason": "incident 12: data corruption", "duration_minutes": 30})
		if st != 201 || bg["status"] != "awaiting_second" {
			t.Fatalf("break-glass: %d %v", st, bg)
		}
		bgID := bg["id"].(string)
		if st, _ := e.do(t, "POST", "/v1/orgs/acme/access-requests/"+bgID+"/approve", amy, nil); st != 409 {
			t.Fatalf("the org approving a break-glass: %d, want 409", st)
		}
		if st, _ := e.do(t, "POST", "/ops/v1/access-requests/"+bgID+"/approve", olga, nil); st != 403 {
			t.Fatalf("self-approved break-glass: %d, want 403", st)
		}
		if st, ap := e.do(t, "POST", "/ops/v1/access-requests/"+bgID+"/approve", otto, nil); st != 200 || ap["status"] != "approved" {
			t.Fatalf("second operator: %d %v", st, ap)
		}
		if st, _ := e.do(t, "GET", "/ops/v1/orgs/acme", olga, nil); st != 200 {
			t.Fatalf("break-glass access: %d", st)
		}
		msgs, err := e.smtp.WaitFor(ctx, e.seen+1)
		if err != nil {
			t.Fatal(err)
		}
		last := msgs[len(msgs)-1]
		if !strings.Contains(string(last.Body), "incident 12") || !strings.Contains(strings.Join(last.To, ","), "amy@example.com") {
			t.Fatalf("owner's notice: to %v: %q", last.To, last.Body)
		}
	})
}

// opsID returns the user id behind an operator's token.
func opsID(t *testing.T, e *authEnv, tok string) string {
	t.Helper()
	st, me := e.do(t, "GET", "/ops/v1/me", tok, nil)
	if st != 200 {
		t.Fatalf("ops me: %d", st)
	}
	return me["id"].(string)
}
