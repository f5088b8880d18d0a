package httpapi

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"hash"
	"io"
	"mime/quotedprintable"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"bulwark/internal/audit"
	"bulwark/internal/authz"
	"bulwark/internal/identity"
	"bulwark/internal/identity/password"
	"bulwark/internal/identity/token"
	"bulwark/internal/identity/totp"
	"bulwark/internal/keys"
	"bulwark/internal/mail/mailtest"
	"bulwark/internal/org"
	"bulwark/internal/records"
	"bulwark/internal/store"
	"bulwark/internal/storetest"

	mailer "bulwark/internal/mail"
)

type authEnv struct {
	st      *store.Store
	srv     *httptest.Server
	ops     *httptest.Server
	ids     *identity.Service
	ring    *keys.Ring
	audit   *audit.Service
	smtp    *mailtest.Server
	orgs    *org.Service
	support *authz.Support
	clock   *storetest.Clock // identity's
	seen    int
}

func newAuthEnv(t *testing.T, opts store.Options) *authEnv {
	t.Helper()
	ctx := context.Background()
	clock := storetest.NewClock(time.Now())
	opts.Now = clock.Now
	st, err := store.Open(ctx, opts, org.ControlSchema(), org.OrgSchema(), keys.ControlSchema(), audit.ControlSchema(),
		audit.OrgSchema(), identity.ControlSchema(), authz.ControlSchema(), records.OrgSchema())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kek, err := keys.OpenLocalKEK(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ring, err := keys.NewRing(ctx, st, kek, keys.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ring.EnsurePlatformKeys(ctx); err != nil {
		t.Fatal(err)
	}
	aud, err := audit.New(st, ring, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pool, err := password.NewPoolWithParams(2, 8, password.Params{MemoryKiB: 64, Time: 1, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	tokens, err := token.NewIssuer(ring, token.Options{Issuer: "https://bulwark.test", Audience: "bulwark"})
	if err != nil {
		t.Fatal(err)
	}
	opsTokens, err := token.NewIssuer(ring, token.Options{Issuer: "https://bulwark.test", Audience: "bulwark-ops"})
	if err != nil {
		t.Fatal(err)
	}
	smtp := mailtest.New(t, mailtest.Options{})
	sender, err := mailer.NewSMTP(mailer.SMTPOptions{Host: smtp.Host(), Port: smtp.Port(), From: "no-reply@bulwark.test", RootCAs: smtp.CertPool()})
	if err != nil {
		t.Fatal(err)
	}
	orgs := org.NewService(st, nil)
	orgs.UseAudit(aud)
	orgs.OnCreate(func(ctx context.Context, tx *store.Tx, o org.Org) error { return ring.CreateOrgKeys(ctx, tx, o.ID) })
	ids := identity.New(st, ring, aud, identity.Options{Passwords: pool, Params: pool.Params(), Tokens: tokens, OpsTokens: opsTokens,
		Mail: sender, BaseURL: "https://bulwark.test", OrgRules: orgs.PasswordRules, Now: clock.Now})
	d := testDeps(io.Discard)
	d.Orgs, d.Audit, d.Identity, d.Tokens, d.OpsTokens = orgs, aud, ids, tokens, opsTokens
	d.Support = authz.NewSupport(st, aud, nil)
	d.Records = records.New(st, ring, aud)
	d.Support.OnBreakGlass(BreakGlassNotifier(orgs, ids))
	e := &authEnv{st: st, ring: ring, audit: aud, smtp: smtp, ids: ids, orgs: orgs, support: d.Support, clock: clock}
	e.srv = httptest.NewServer(NewServer(d))
	t.Cleanup(e.srv.Close)
	e.ops = httptest.NewServer(NewOpsServer(d))
	t.Cleanup(e.ops.Close)
	return e
}

func (e *authEnv) do(t *testing.T, method, path, auth string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	base := e.srv.URL
	if strings.HasPrefix(path, "/ops/") {
		base = e.ops.URL
	}
	req, _ := http.NewRequest(method, base+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

var linkRe = regexp.MustCompile(`token=([A-Za-z0-9_\-]+)`)

func (e *authEnv) mailToken(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msgs, err := e.smtp.WaitFor(ctx, e.seen+1)
	if err != nil {
		t.Fatal(err)
	}
	m := msgs[e.seen]
	e.seen++
	b, _ := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(m.Body)))
	if !bytes.Contains(b, []byte("token=")) {
		b = m.Body
	}
	match := linkRe.FindSubmatch(b)
	if match == nil {
		t.Fatalf("no link in %q", b)
	}
	return string(match[1])
}

const pw = "a long enough passphrase 2026"

func (e *authEnv) user(t *testing.T, email string) (access, refresh string) {
	t.Helper()
	if st, body := e.do(t, "POST", "/v1/auth/signup", "", map[string]string{"email": email, "password": pw, "name": "Test User"}); st != 201 {
		t.Fatalf("signup: %d %v", st, body)
	}
	if st, body := e.do(t, "POST", "/v1/auth/verify-email", "", map[string]string{"token": e.mailToken(t)}); st != 204 {
		t.Fatalf("verify: %d %v", st, body)
	}
	st, body := e.do(t, "POST", "/v1/auth/login", "", map[string]string{"email": email, "password": pw})
	if st != 200 || body["token_type"] != "Bearer" {
		t.Fatalf("login: %d %v", st, body)
	}
	return body["access_token"].(string), body["refresh_token"].(string)
}

func TestAuthRoutes_SignupLoginMeRefreshLogout(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		e := newAuthEnv(t, opts)
		access, refresh := e.user(t, "amy@example.com")
		st, me := e.do(t, "GET", "/v1/me", access, nil)
		if st != 200 || me["email"] != "amy@example.com" || me["email_verified"] != true {
			t.Fatalf("me: %d %v", st, me)
		}
		if st, body := e.do(t, "POST", "/v1/auth/signup", "", map[string]string{"email": "x@example.com", "password": "short", "name": "X"}); st != 422 || len(body["errors"].([]any)) == 0 {
			t.Fatalf("weak signup: %d %v", st, body)
		}
		st, pair := e.do(t, "POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": refresh})
		if st != 200 || pair["refresh_token"] == refresh {
			t.Fatalf("refresh: %d %v", st, pair)
		}
		if st, _ := e.do(t, "GET", "/v1/me/sessions", pair["access_token"].(string), nil); st != 200 {
			t.Fatalf("sessions: %d", st)
		}
		if st, _ := e.do(t, "POST", "/v1/auth/logout", pair["access_token"].(string), nil); st != 204 {
			t.Fatalf("logout: %d", st)
		}
		if st, _ := e.do(t, "GET", "/v1/me", pair["access_token"].(string), nil); st != 401 {
			t.Fatalf("me after logout: %d, want 401", st)
		}
		// Enumeration: the same answer for an unknown address and a wrong password.
		st1, b1 := e.do(t, "POST", "/v1/auth/login", "", map[string]string{"email": "nobody@example.com", "password": pw})
		st2, b2 := e.do(t, "POST", "/v1/auth/login", "", map[string]string{"email": "amy@example.com", "password": pw + "x"})
		if st1 != 401 || st2 != 401 || b1["detail"] != b2["detail"] {
			t.Fatalf("unknown %d %v vs wrong %d %v", st1, b1, st2, b2)
		}
		if st, _ := e.do(t, "POST", "/v1/auth/password/forgot", "", map[string]string{"email": "nobody@example.com"}); st != 202 {
			t.Fatalf("forgot: %d", st)
		}
	})
}

// forge builds a JWT from raw header and claims, signed with h over key
// (no signature when h is nil).
func forge(header, claims map[string]any, h func() hash.Hash, key []byte) string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	in := enc(header) + "." + enc(claims)
	if h == nil {
		return in + "."
	}
	m := hmac.New(h, key)
	m.Write([]byte(in))
	return in + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func TestAuthRoutes_ForgedAndStaleTokensAre401AndAudited(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newAuthEnv(t, opts)
		access, refresh := e.user(t, "bob@example.com")
		kid, key, err := e.ring.SigningKey(ctx, keys.SignAccessToken)
		if err != nil {
			t.Fatal(err)
		}
		parts := strings.Split(access, ".")
		var claims map[string]any
		b, _ := base64.RawURLEncoding.DecodeString(parts[1])
		_ = json.Unmarshal(b, &claims)
		with := func(k string, v any) map[string]any {
			c := map[string]any{}
			for kk, vv := range claims {
				c[kk] = vv
			}
			c[k] = v
			return c
		}
		now := time.Now().Unix()
		hs512 := map[string]any{"alg": "HS512", "typ": "JWT", "kid": kid}
		other := bytes.Repeat([]byte{7}, 64)
		cases := map[string]string{
			"alg none":          forge(map[string]any{"alg": "none", "typ": "JWT", "kid": kid}, claims, nil, nil),
			"HS256":             forge(map[string]any{"alg": "HS256", "typ": "JWT", "kid": kid}, claims, sha256.New, key),
			"RS256":             forge(map[string]any{"alg": "RS256", "typ": "JWT", "kid": kid}, claims, sha512.New, key),
			"unknown kid":       forge(map[string]any{"alg": "HS512", "typ": "JWT", "kid": "not-a-kid"}, claims, sha512.New, key),
			"other key":         forge(hs512, claims, sha512.New, other),
			"expired":           forge(hs512, with("exp", now-3600), sha512.New, key),
			"not yet valid":     forge(hs512, with("nbf", now+3600), sha512.New, key),
			"tampered subject":  parts[0] + "." + forge(hs512, with("sub", "someone-else"), sha512.New, other)[len(parts[0])+1:],
			"no token at all !": "garbage",
		}
		for name, tok := range cases {
			if st, body := e.do(t, "GET", "/v1/me", tok, nil); st != 401 || body["type"] != "https://bulwark.dev/problems/unauthorized" {
				t.Errorf("%s: %d %v, want 401", name, st, body)
			}
		}
		// A revoked session's token; a replayed refresh token.
		if st, _ := e.do(t, "POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": refresh}); st != 200 {
			t.Fatalf("refresh: %d", st)
		}
		if st, _ := e.do(t, "POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": refresh}); st != 401 {
			t.Fatalf("replayed refresh: %d, want 401", st)
		}
		if st, _ := e.do(t, "GET", "/v1/me", access, nil); st != 401 {
			t.Fatalf("token of the session revoked by the replay: %d, want 401", st)
		}
		page, err := e.audit.Query(ctx, audit.ControlLog, audit.Filter{Action: "auth.token.refused"}, 100, "")
		if err != nil {
			t.Fatal(err)
		}
		reasons := map[string]bool{}
		for _, ev := range page.Items {
			reasons[ev.Details["reason"]] = true
		}
		for _, want := range []string{"alg", "kid", "signature", "expired", "not_yet_valid", "malformed", "session_revoked"} {
			if !reasons[want] {
				t.Errorf("no refused-token event with reason %s (have %v)", want, reasons)
			}
		}
		if page, _ := e.audit.Query(ctx, audit.ControlLog, audit.Filter{Action: "auth.refresh.reused"}, 0, ""); len(page.Items) != 1 {
			t.Errorf("refresh reuse events: %d, want 1", len(page.Items))
		}
	})
}

func TestOpsAuth_OperatorSetupLoginWithTOTPOnTheOpsListenerOnly(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newAuthEnv(t, opts)
		cli := audit.Source{Actor: audit.Actor{Type: audit.ActorOperator, ID: "cli"}}
		link, err := e.ids.CreateOperator(ctx, cli, "ops@example.com", "Olga Ops", e.ops.URL)
		if err != nil || !strings.HasPrefix(link, e.ops.URL+"/ops/v1/setup?token=") {
			t.Fatalf("operator create: %q, %v", link, err)
		}
		setup := link[strings.Index(link, "token=")+6:]
		st, en := e.do(t, "POST", "/ops/v1/setup", "", map[string]string{"token": setup, "password": pw})
		if st != 200 || en["secret"] == nil {
			t.Fatalf("setup: %d %v", st, en)
		}
		secret, _ := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(en["secret"].(string))
		st, rc := e.do(t, "POST", "/ops/v1/setup/confirm", "", map[string]string{"token": setup, "code": totp.Code(secret, e.clock.Now())})
		if st != 200 || len(rc["recovery_codes"].([]any)) != 10 {
			t.Fatalf("confirm: %d %v", st, rc)
		}
		if st, _ := e.do(t, "POST", "/ops/v1/setup", "", map[string]string{"token": setup, "password": pw + "2"}); st != 422 {
			t.Fatalf("second use of the setup link: %d, want 422", st)
		}
		st, step := e.do(t, "POST", "/ops/v1/auth/login", "", map[string]string{"email": "ops@example.com", "password": pw})
		if st != 200 || step["mfa_required"] != true {
			t.Fatalf("ops login: %d %v, want a second factor", st, step)
		}
		// The code of the confirmation was spent; a recovery code works.
		st, toks := e.do(t, "POST", "/ops/v1/auth/mfa", "", map[string]string{"mfa_token": step["mfa_token"].(string), "code": rc["recovery_codes"].([]any)[0].(string)})
		if st != 200 || toks["access_token"] == nil {
			t.Fatalf("ops mfa with a recovery code: %d %v", st, toks)
		}
		opsToken := toks["access_token"].(string)
		if st, me := e.do(t, "GET", "/ops/v1/me", opsToken, nil); st != 200 || me["kind"] != "operator" {
			t.Fatalf("ops me: %d %v", st, me)
		}
		if st, _ := e.do(t, "GET", "/v1/me", opsToken, nil); st != 401 {
			t.Fatalf("operator token on the public listener: %d, want 401", st)
		}
		// The public listener does not log operators in.
		if st, _ := e.do(t, "POST", "/v1/auth/login", "", map[string]string{"email": "ops@example.com", "password": pw}); st != 401 {
			t.Fatalf("operator on the public login: %d, want 401", st)
		}
		// A user's token is refused on the ops listener, and a user cannot log in there.
		access, _ := e.user(t, "user@example.com")
		if st, _ := e.do(t, "GET", "/ops/v1/me", access, nil); st != 401 {
			t.Fatalf("user token on ops: %d, want 401", st)
		}
		if st, _ := e.do(t, "POST", "/ops/v1/auth/login", "", map[string]string{"email": "user@example.com", "password": pw}); st != 401 {
			t.Fatalf("user on the ops login: %d, want 401", st)
		}
	})
}

func TestAPIKeyRoutes_RolesOrgsAndRevocation(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newAuthEnv(t, opts)
		orgs := org.NewService(e.st, nil)
		a, err := orgs.Create(ctx, "Acme", "acme")
		if err != nil {
			t.Fatal(err)
		}
		b, err := orgs.Create(ctx, "Beta", "beta")
		if err != nil {
			t.Fatal(err)
		}
		src := audit.Source{Actor: audit.Actor{Type: audit.ActorOperator, ID: "cli"}}
		owner, _, err := e.ids.CreateAPIKey(ctx, src, a.ID, "bootstrap", "owner", nil)
		if err != nil {
			t.Fatal(err)
		}
		st, created := e.do(t, "POST", "/v1/orgs/acme/api-keys", owner, map[string]any{"name": "ci", "role": "admin"})
		if st != 201 || created["secret"] == nil {
			t.Fatalf("create: %d %v", st, created)
		}
		admin := created["secret"].(string)
		if st, _ := e.do(t, "POST", "/v1/orgs/acme/api-keys", admin, map[string]any{"name": "up", "role": "owner"}); st != 403 {
			t.Fatalf("admin key making an owner key: %d, want 403", st)
		}
		st, mem := e.do(t, "POST", "/v1/orgs/acme/api-keys", admin, map[string]any{"name": "app", "role": "member"})
		if st != 201 {
			t.Fatalf("admin key making a member key: %d", st)
		}
		member := mem["secret"].(string)
		if st, _ := e.do(t, "GET", "/v1/orgs/acme/api-keys", member, nil); st != 403 {
			t.Fatalf("member key listing keys: %d, want 403", st)
		}
		if st, list := e.do(t, "GET", "/v1/orgs/acme/api-keys", admin, nil); st != 200 || len(list["items"].([]any)) != 3 {
			t.Fatalf("list: %d %v", st, list)
		}
		if st, _ := e.do(t, "GET", "/v1/orgs/beta/api-keys", owner, nil); st != 404 {
			t.Fatalf("another org's keys: %d, want 404", st)
		}
		if st, _ := e.do(t, "GET", "/v1/orgs/"+b.ID+"/audit", owner, nil); st != 404 {
			t.Fatalf("another org's audit: %d, want 404", st)
		}
		if st, _ := e.do(t, "GET", "/v1/orgs/acme/audit", admin, nil); st != 200 {
			t.Fatalf("admin key reading the audit log: %d", st)
		}
		memberID := mem["api_key"].(map[string]any)["id"].(string)
		if st, _ := e.do(t, "DELETE", "/v1/orgs/acme/api-keys/"+memberID, admin, nil); st != 204 {
			t.Fatalf("revoke: %d", st)
		}
		if st, _ := e.do(t, "GET", "/v1/orgs/acme/audit", member, nil); st != 401 {
			t.Fatalf("revoked key: %d, want 401", st)
		}
		// A user's token: no memberships yet, so no org.
		access, _ := e.user(t, "kim@example.com")
		if st, _ := e.do(t, "GET", "/v1/orgs/acme/api-keys", access, nil); st != 404 {
			t.Fatalf("user without membership: %d, want 404", st)
		}
		if st, me := e.do(t, "PATCH", "/v1/me", access, map[string]string{"name": "Kim K"}); st != 200 || me["name"] != "Kim K" {
			t.Fatalf("patch me: %d %v", st, me)
		}
	})
}
