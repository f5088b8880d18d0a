package httpapi

import (
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"bulwark/internal/audit"
	"bulwark/internal/authz"
	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

// orgRouteDecl is an org route as registered in the sources.
type orgRouteDecl struct {
	method, path string
	perm         authz.Perm
}

// permByName maps the authz constant names to their permissions.
var permByName = map[string]authz.Perm{
	"OrgRead": authz.OrgRead, "OrgUpdate": authz.OrgUpdate, "OrgDelete": authz.OrgDelete, "OrgExport": authz.OrgExport,
	"PolicyRead": authz.PolicyRead, "PolicySet": authz.PolicySet, "MembersRead": authz.MembersRead, "MembersManage": authz.MembersManage,
	"APIKeysManage": authz.APIKeysManage, "CollectionsRead": authz.CollectionsRead, "CollectionsManage": authz.CollectionsManage,
	"RecordsRead": authz.RecordsRead, "RecordsSensitive": authz.RecordsSensitive, "RecordsWrite": authz.RecordsWrite,
	"AuditRead": authz.AuditRead, "SupportView": authz.SupportView, "SupportDecide": authz.SupportDecide,
}

// orgRouteDecls walks the package's sources: every route whose path has
// an {org} must be registered with orgRoute and a permission of the
// table; a mux.Handle of such a path is a route without a decision.
func orgRouteDecls(t *testing.T) []orgRouteDecl {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var out []orgRouteDecl
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		file, err := parser.ParseFile(fset, f, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || (sel.Sel.Name != "Handle" && sel.Sel.Name != "HandleFunc" && sel.Sel.Name != "orgRoute") {
				return true
			}
			argIdx := 0
			if sel.Sel.Name == "orgRoute" {
				argIdx = 1
			}
			if len(call.Args) <= argIdx {
				return true
			}
			lit, ok := call.Args[argIdx].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				if sel.Sel.Name == "orgRoute" {
					t.Errorf("%s: orgRoute with a pattern that is not a literal", fset.Position(call.Pos()))
				}
				return true
			}
			pattern, _ := strconv.Unquote(lit.Value)
			if !strings.Contains(pattern, "{org}") {
				return true
			}
			if sel.Sel.Name != "orgRoute" {
				t.Errorf("%s: %s is registered without a decision (use orgRoute)", fset.Position(call.Pos()), pattern)
				return true
			}
			ps, ok := call.Args[2].(*ast.SelectorExpr)
			if !ok || ps.X.(*ast.Ident).Name != "authz" {
				t.Errorf("%s: %s: the permission must be an authz constant", fset.Position(call.Pos()), pattern)
				return true
			}
			perm, ok := permByName[ps.Sel.Name]
			if !ok || !authz.Known(perm) {
				t.Errorf("%s: %s asks for authz.%s, which is not in the table", fset.Position(call.Pos()), pattern, ps.Sel.Name)
				return true
			}
			method, path, _ := strings.Cut(pattern, " ")
			out = append(out, orgRouteDecl{method, path, perm})
			return true
		})
	}
	if len(out) < 15 {
		t.Fatalf("found only %d org routes in the sources", len(out))
	}
	return out
}

// fill puts org and a made-up id for every other {param} into path.
func fill(path, org string) string {
	path = strings.ReplaceAll(path, "{org}", org)
	for strings.Contains(path, "{") {
		i, j := strings.Index(path, "{"), strings.Index(path, "}")
		path = path[:i] + "0190f5a0-0000-7000-8000-0000000000aa" + path[j+1:]
	}
	return path
}

// Every org route asks the decision; walked from the sources and tried
// over HTTP: without credentials 401; with a user and an API key of org
// A, org B by slug, by id and a made-up org all answer 404 with one
// body; and for API keys of each role in A, a route answers 403 exactly
// when the permission table refuses the role its permission.
func TestOrgRoutes_EveryRouteAsksTheDecision(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newAuthEnv(t, opts)
		amy, _ := e.user(t, "amy@example.com")
		if st, body := e.do(t, "POST", "/v1/orgs", amy, map[string]string{"name": "Acme", "slug": "acme"}); st != 201 {
			t.Fatalf("create acme: %d %v", st, body)
		}
		bea, _ := e.user(t, "bea@example.com")
		st, beta := e.do(t, "POST", "/v1/orgs", bea, map[string]string{"name": "Beta", "slug": "beta"})
		if st != 201 {
			t.Fatalf("create beta: %d %v", st, beta)
		}
		acme, err := e.orgs.Get(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		op := audit.Source{Actor: audit.Actor{Type: audit.ActorOperator, ID: "cli"}}
		keys := map[authz.Role]string{}
		for _, r := range authz.MemberRoles {
			k, _, err := e.ids.CreateAPIKey(ctx, op, acme.ID, "k-"+string(r), string(r), nil)
			if err != nil {
				t.Fatal(err)
			}
			keys[r] = k
		}
		routes := orgRouteDecls(t)
		olga := e.operator(t, "olga@ops.example.com")
		var notFound string
		for _, rt := range routes {
			callers := []string{amy, keys[authz.Owner]}
			if strings.HasPrefix(rt.path, "/ops/") {
				callers = []string{olga} // an operator, with no grant of beta
			}
			for _, who := range callers {
				for _, target := range []string{"beta", beta["id"].(string), "0190f5a0-0000-7000-8000-00000000beef", "nosuch"} {
					st, body := e.do(t, rt.method, fill(rt.path, target), who, map[string]any{})
					got := fmt.Sprintf("%d %v %v", st, body["title"], body["detail"])
					if st != 404 {
						t.Fatalf("%s %s on %s: %s, want 404", rt.method, rt.path, target, got)
					}
					if notFound == "" {
						notFound = got
					}
					if got != notFound {
						t.Fatalf("%s %s on %s: %q, unlike %q", rt.method, rt.path, target, got, notFound)
					}
				}
			}
			if st, _ := e.do(t, rt.method, fill(rt.path, "acme"), "", map[string]any{}); st != 401 {
				t.Fatalf("%s %s without credentials: %d, want 401", rt.method, rt.path, st)
			}
		}
		// Role by role, in the caller's own org. Routes that would delete
		// the org or leave it are tried with bodies that change nothing.
		// An operator's grant of acme, read-only: the ops routes answer
		// 403 exactly where the table refuses support_read.
		opSrc := audit.Source{Actor: audit.Actor{Type: audit.ActorOperator, ID: opsID(t, e, olga)}}
		g, err := e.support.Request(ctx, opSrc, acme.ID, "walking every route of the API", 30, false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.support.Decide(ctx, audit.Source{Actor: audit.Actor{Type: audit.ActorUser, ID: "u-amy"}}, acme.ID, g.ID, true); err != nil {
			t.Fatal(err)
		}
		cells := 0
		for _, rt := range routes {
			if strings.HasPrefix(rt.path, "/ops/") {
				st, body := e.do(t, rt.method, fill(rt.path, "acme"), olga, map[string]any{})
				if want := !authz.Allowed(authz.SupportRead, rt.perm); (st == 403) != want || st >= 500 {
					t.Fatalf("%s %s as support_read: %d %v; the table says allowed=%v", rt.method, rt.path, st, body, !want)
				}
				cells++
				continue
			}
			for _, r := range authz.MemberRoles {
				st, body := e.do(t, rt.method, fill(rt.path, "acme"), keys[r], map[string]any{})
				if want := !authz.Allowed(r, rt.perm); (st == 403) != want {
					t.Fatalf("%s %s as %s: %d %v; the table says allowed=%v", rt.method, rt.path, r, st, body, !want)
				}
				if st >= 500 {
					t.Fatalf("%s %s as %s: %d %v", rt.method, rt.path, r, st, body)
				}
				cells++
			}
		}
		t.Logf("%d org routes, %d role cells checked over HTTP", len(routes), cells)
		// Denials are in the org's own log.
		page, err := e.audit.Query(ctx, acme.ID, audit.Filter{Action: "access.denied"}, 100, "")
		if err != nil || len(page.Items) == 0 {
			t.Fatalf("no denial recorded in acme's log: %v", err)
		}
	})
}

// Members, invitations and the policy over HTTP: an invitation reaches
// the invitee by mail, works for their address only and once; roles stay
// within the caller's rank; the last owner stays; the policy refuses bad
// settings naming each, is audited in the org's log, and its 2FA rule
// keeps a member without 2FA out of the org.
func TestOrgRoutes_MembersInvitesAndPolicy(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newAuthEnv(t, opts)
		amy, _ := e.user(t, "amy@example.com")
		bob, _ := e.user(t, "bob@example.com")
		eve, _ := e.user(t, "eve@example.com")
		st, created := e.do(t, "POST", "/v1/orgs", amy, map[string]string{"name": "Acme", "slug": "acme"})
		if st != 201 || created["role"] != "owner" {
			t.Fatalf("create: %d %v", st, created)
		}
		if st, _ := e.do(t, "GET", "/v1/orgs/acme", bob, nil); st != 404 {
			t.Fatalf("not yet a member: %d", st)
		}
		if st, body := e.do(t, "POST", "/v1/orgs/acme/members", amy, map[string]string{"email": "not-an-address", "role": "admin"}); st != 422 {
			t.Fatalf("bad address: %d %v", st, body)
		}
		if st, body := e.do(t, "POST", "/v1/orgs/acme/members", amy, map[string]string{"email": "Bob@Example.com", "role": "admin"}); st != 201 {
			t.Fatalf("invite: %d %v", st, body)
		}
		tok := e.mailToken(t)
		if !strings.HasPrefix(tok, "bwi_") {
			t.Fatalf("invite mail carries %q", tok)
		}
		if st, _ := e.do(t, "POST", "/v1/invites/accept", eve, map[string]string{"token": tok}); st != 404 {
			t.Fatalf("another address accepting: %d, want 404", st)
		}
		if st, body := e.do(t, "POST", "/v1/invites/accept", bob, map[string]string{"token": tok}); st != 200 {
			t.Fatalf("accept: %d %v", st, body)
		}
		if st, _ := e.do(t, "POST", "/v1/invites/accept", bob, map[string]string{"token": tok}); st != 404 {
			t.Fatalf("spent invite: %d, want 404", st)
		}
		if st, list := e.do(t, "GET", "/v1/orgs", bob, nil); st != 200 || len(list["items"].([]any)) != 1 {
			t.Fatalf("bob's orgs: %d %v", st, list)
		}
		amyID := created["id"].(string) // replaced below by the member list
		st, members := e.do(t, "GET", "/v1/orgs/acme/members?limit=1", bob, nil)
		if st != 200 || len(members["items"].([]any)) != 1 || members["next_cursor"] == nil {
			t.Fatalf("members page: %d %v", st, members)
		}
		st, rest := e.do(t, "GET", "/v1/orgs/acme/members?limit=1&cursor="+members["next_cursor"].(string), bob, nil)
		if st != 200 || len(rest["items"].([]any)) != 1 {
			t.Fatalf("members page 2: %d %v", st, rest)
		}
		for _, m := range append(members["items"].([]any), rest["items"].([]any)...) {
			if m.(map[string]any)["role"] == "owner" {
				amyID = m.(map[string]any)["user_id"].(string)
			}
		}
		if st, _ := e.do(t, "PATCH", "/v1/orgs/acme/members/"+amyID, bob, map[string]string{"role": "viewer"}); st != 403 {
			t.Fatalf("admin demoting the owner: %d, want 403", st)
		}
		if st, _ := e.do(t, "POST", "/v1/orgs/acme/leave", amy, nil); st != 409 {
			t.Fatalf("last owner leaving: %d, want 409", st)
		}
		if st, _ := e.do(t, "PATCH", "/v1/orgs/acme/members/"+amyID, amy, map[string]string{"role": "member"}); st != 409 {
			t.Fatalf("last owner demoting themself: %d, want 409", st)
		}
		// Policy.
		st, pol := e.do(t, "GET", "/v1/orgs/acme/policy", bob, nil)
		if st != 200 || pol["password"].(map[string]any)["min_length"] != 12.0 || len(pol["deviations"].([]any)) != 0 {
			t.Fatalf("default policy: %d %v", st, pol)
		}
		st, bad := e.do(t, "PUT", "/v1/orgs/acme/policy", bob, map[string]any{"password": map[string]any{"min_length": 6, "history": 5},
			"session": map[string]any{"idle_minutes": 30, "absolute_hours": 12}, "retention": map[string]any{"audit_days": 5}})
		if st != 422 || len(bad["errors"].([]any)) != 2 {
			t.Fatalf("bad policy: %d %v", st, bad)
		}
		if st, body := e.do(t, "PUT", "/v1/orgs/acme/policy", bob, map[string]any{"ip_allowlist": []string{"192.0.2.0/24"}}); st != 422 ||
			body["errors"].([]any)[0].(map[string]any)["code"] != "excludes_caller" {
			t.Fatalf("an allowlist locking the caller out: %d %v", st, body)
		}
		pol["mfa_required"] = true
		pol["password"].(map[string]any)["max_age_days"] = 90
		st, set := e.do(t, "PUT", "/v1/orgs/acme/policy", bob, pol)
		if st != 200 || set["mfa_required"] != true || len(set["deviations"].([]any)) != 1 {
			t.Fatalf("set policy: %d %v", st, set)
		}
		acme, _ := e.orgs.Get(ctx, "acme")
		page, err := e.audit.Query(ctx, acme.ID, audit.Filter{Action: "policy.updated"}, 10, "")
		if err != nil || len(page.Items) != 1 || page.Items[0].Details["changed"] != "password.max_age_days,mfa_required" {
			t.Fatalf("policy change in the org's log: %+v, %v", page.Items, err)
		}
		// Bob signed in with a password only: the org is closed to him.
		st, body := e.do(t, "GET", "/v1/orgs/acme", bob, nil)
		if st != 403 || body["errors"].([]any)[0].(map[string]any)["code"] != "mfa_required" {
			t.Fatalf("member without 2FA: %d %v", st, body)
		}
		if st, _ := e.do(t, "GET", "/v1/me", bob, nil); st != 200 {
			t.Fatalf("/v1/me stays open for enrolling: %d", st)
		}
	})
}

// An org's password policy binds its members: a new password meets the
// strictest of the server's and every org's rules (and may not contain an
// org's name); a password older than an org's maximum age must be changed
// at the next sign-in, with a single-use token, before any session.
func TestOrgPasswordPolicy_RulesAndMaximumAge(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		e := newAuthEnv(t, opts)
		amy, _ := e.user(t, "amy@example.com")
		if st, body := e.do(t, "POST", "/v1/orgs", amy, map[string]string{"name": "Zebracorn", "slug": "zebra"}); st != 201 {
			t.Fatalf("create: %d %v", st, body)
		}
		st, pol := e.do(t, "GET", "/v1/orgs/zebra/policy", amy, nil)
		if st != 200 {
			t.Fatal(st)
		}
		pp := pol["password"].(map[string]any)
		pp["min_length"], pp["require_classes"], pp["max_age_days"] = 20, []string{"digit", "upper"}, 90
		if st, body := e.do(t, "PUT", "/v1/orgs/zebra/policy", amy, pol); st != 200 {
			t.Fatalf("set policy: %d %v", st, body)
		}
		change := func(next string) (int, map[string]any) {
			return e.do(t, "POST", "/v1/me/password", amy, map[string]string{"current_password": pw, "password": next})
		}
		st, body := change("all lower case but long enough")
		codes := map[string]bool{}
		for _, f := range body["errors"].([]any) {
			codes[f.(map[string]any)["code"].(string)] = true
		}
		if st != 422 || !codes["missing_upper"] || !codes["missing_digit"] {
			t.Fatalf("org rules not applied: %d %v", st, body)
		}
		if st, body := change("Zebracorn is 4 ever our home"); st != 422 || !strings.Contains(fmt.Sprint(body["errors"]), "contains_org_name") {
			t.Fatalf("a password with the org's name: %d %v", st, body)
		}
		if st, body := change("Short 1 Pass"); st != 422 || !strings.Contains(fmt.Sprint(body["errors"]), "too_short") {
			t.Fatalf("shorter than the org's 20: %d %v", st, body)
		}
		const next = "Quiet Harbour 2031 Lantern"
		if st, body := change(next); st != 204 {
			t.Fatalf("a password that meets every rule: %d %v", st, body)
		}
		// 91 days on, the password is past the org's 90.
		e.clock.Add(91 * 24 * time.Hour)
		st, res := e.do(t, "POST", "/v1/auth/login", "", map[string]string{"email": "amy@example.com", "password": next})
		if st != 200 || res["password_expired"] != true || res["access_token"] != nil {
			t.Fatalf("login with an expired password: %d %v", st, res)
		}
		tok := res["password_token"].(string)
		if st, _ := e.do(t, "POST", "/v1/auth/password/expired", "", map[string]string{"token": tok, "password": next}); st != 422 {
			t.Fatalf("reusing the expired password: %d, want 422", st)
		}
		const fresh = "Silver Meadow 4096 Compass"
		if st, body := e.do(t, "POST", "/v1/auth/password/expired", "", map[string]string{"token": tok, "password": fresh}); st != 204 {
			t.Fatalf("change the expired password: %d %v", st, body)
		}
		if st, _ := e.do(t, "POST", "/v1/auth/password/expired", "", map[string]string{"token": tok, "password": fresh + " again"}); st == 204 {
			t.Fatal("the token worked twice")
		}
		st, res = e.do(t, "POST", "/v1/auth/login", "", map[string]string{"email": "amy@example.com", "password": fresh})
		if st != 200 || res["access_token"] == nil {
			t.Fatalf("login with the new password: %d %v", st, res)
		}
	})
}
