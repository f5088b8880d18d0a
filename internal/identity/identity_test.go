package identity

import (
	"context"
	"crypto/sha512"
	"encoding/hex"
	"os"
	"os/exec"

	"encoding/base32"
	"io"
	"mime/quotedprintable"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"bulwark/internal/apperr"
	"bulwark/internal/audit"
	"bulwark/internal/identity/password"
	"bulwark/internal/identity/token"
	"bulwark/internal/identity/totp"
	"bulwark/internal/keys"
	mailer "bulwark/internal/mail"
	"bulwark/internal/mail/mailtest"
	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

type clock = storetest.Clock

func newClock() *clock { return storetest.NewClock(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)) }

// testParams keep argon2id cheap in tests; the cost is not what they test.
var testParams = password.Params{MemoryKiB: 64, Time: 1, Threads: 1}

type env struct {
	svc    *Service
	audit  *audit.Service
	tokens *token.Issuer
	smtp   *mailtest.Server
	clk    *clock
	st     *store.Store
	seen   int // messages read so far
}

func newEnv(t *testing.T, opts store.Options) *env {
	t.Helper()
	ctx := context.Background()
	clk := newClock()
	opts.Now = clk.Now
	st, err := store.Open(ctx, opts, keys.ControlSchema(), audit.ControlSchema(), audit.OrgSchema(), ControlSchema())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kek, err := keys.OpenLocalKEK(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ring, err := keys.NewRing(ctx, st, kek, keys.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := ring.EnsurePlatformKeys(ctx); err != nil {
		t.Fatal(err)
	}
	aud, err := audit.New(st, ring, audit.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	pool, err := password.NewPoolWithParams(2, 16, testParams)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	tokens, err := token.NewIssuer(ring, token.Options{Issuer: "https://bulwark.test", Audience: "bulwark", Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	srv := mailtest.New(t, mailtest.Options{Username: "relay", Password: "relay-secret", RequireAuth: true})
	sender, err := mailer.NewSMTP(mailer.SMTPOptions{Host: srv.Host(), Port: srv.Port(), Username: "relay", Password: "relay-secret",
		From: "Bulwark <no-reply@bulwark.test>", RootCAs: srv.CertPool()})
	if err != nil {
		t.Fatal(err)
	}
	svc := New(st, ring, aud, Options{Passwords: pool, Params: testParams, Tokens: tokens, Mail: sender,
		BaseURL: "https://app.bulwark.test", Now: clk.Now})
	return &env{svc: svc, audit: aud, tokens: tokens, smtp: srv, clk: clk, st: st}
}

var alice = audit.Source{Actor: audit.Actor{Type: audit.ActorSystem, ID: "test"}, IP: "203.0.113.9", UserAgent: "test"}

const goodPassword = "correct horse battery staple 42"

// mail waits for the next message to `to` and returns its subject and
// decoded text.
func (e *env) mail(t *testing.T, to string) (subject, body string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msgs, err := e.smtp.WaitFor(ctx, e.seen+1)
	if err != nil {
		t.Fatalf("no mail to %s: %v", to, err)
	}
	m := msgs[e.seen]
	e.seen++
	if len(m.To) != 1 || m.To[0] != to {
		t.Fatalf("mail went to %v, want %s", m.To, to)
	}
	b := m.Body
	if strings.EqualFold(m.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		b, _ = io.ReadAll(quotedprintable.NewReader(strings.NewReader(string(b))))
	}
	return m.Header.Get("Subject"), string(b)
}

var tokenRe = regexp.MustCompile(`token=([A-Za-z0-9_%\-]+)`)

func linkToken(t *testing.T, body string) string {
	t.Helper()
	m := tokenRe.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no token link in %q", body)
	}
	tok, err := url.QueryUnescape(m[1])
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (e *env) signup(t *testing.T, email string) User {
	t.Helper()
	u, err := e.svc.Signup(context.Background(), alice, email, goodPassword, "Alice Example")
	if err != nil {
		t.Fatal(err)
	}
	_, body := e.mail(t, email)
	if err := e.svc.VerifyEmail(context.Background(), alice, linkToken(t, body)); err != nil {
		t.Fatal(err)
	}
	return u
}

func (e *env) login(t *testing.T, email, pw string) LoginResult {
	t.Helper()
	r, err := e.svc.Login(context.Background(), alice, email, pw)
	if err != nil {
		t.Fatalf("login %s: %v", email, err)
	}
	return r
}

func TestSignupVerifyLoginRefreshLogout(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newEnv(t, opts)
		u, err := e.svc.Signup(ctx, alice, "  Alice@Example.COM ", goodPassword, "Alice Example")
		if err != nil {
			t.Fatal(err)
		}
		if u.Email != "alice@example.com" || u.EmailVerified {
			t.Fatalf("signed up %+v", u)
		}
		subject, body := e.mail(t, "alice@example.com")
		if !strings.Contains(subject, "Confirm") {
			t.Fatalf("first mail: %q", subject)
		}
		tok := linkToken(t, body)
		if err := e.svc.VerifyEmail(ctx, alice, tok); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.VerifyEmail(ctx, alice, tok); apperr.CodeOf(err) != apperr.Invalid {
			t.Fatalf("second use of the verification link: %v, want invalid", err)
		}

		r := e.login(t, "ALICE@example.com", goodPassword)
		if r.Tokens == nil || r.MFARequired {
			t.Fatalf("login: %+v", r)
		}
		c, err := e.tokens.Verify(ctx, r.Tokens.AccessToken)
		if err != nil || c.Subject != u.ID || c.Session != r.SessionID {
			t.Fatalf("access token: %+v, %v", c, err)
		}
		if ok, _ := e.svc.SessionActive(ctx, r.SessionID); !ok {
			t.Fatal("new session not active")
		}

		// Refresh rotates; presenting the spent token again revokes the
		// whole session, and the event is audited.
		next, err := e.svc.Refresh(ctx, alice, r.Tokens.RefreshToken)
		if err != nil || next.RefreshToken == r.Tokens.RefreshToken {
			t.Fatalf("refresh: %+v, %v", next, err)
		}
		if _, err := e.svc.Refresh(ctx, alice, r.Tokens.RefreshToken); apperr.CodeOf(err) != apperr.Unauthorized {
			t.Fatalf("replayed refresh token: %v, want unauthorized", err)
		}
		if ok, _ := e.svc.SessionActive(ctx, r.SessionID); ok {
			t.Fatal("session still active after a refresh token replay")
		}
		if _, err := e.svc.Refresh(ctx, alice, next.RefreshToken); apperr.CodeOf(err) != apperr.Unauthorized {
			t.Fatalf("refresh of a revoked session: %v, want unauthorized", err)
		}
		page, err := e.audit.Query(ctx, audit.ControlLog, audit.Filter{Action: "auth.refresh.reused"}, 0, "")
		if err != nil || len(page.Items) != 1 || page.Items[0].Resource.ID != u.ID {
			t.Fatalf("reuse event: %+v, %v", page.Items, err)
		}

		// Logout.
		r2 := e.login(t, "alice@example.com", goodPassword)
		if err := e.svc.RevokeSession(ctx, alice, u.ID, r2.SessionID, "logout"); err != nil {
			t.Fatal(err)
		}
		if ok, _ := e.svc.SessionActive(ctx, r2.SessionID); ok {
			t.Fatal("logged-out session still active")
		}
		// Idle expiry.
		r3 := e.login(t, "alice@example.com", goodPassword)
		e.clk.Add(DefaultSessions.Idle + time.Second)
		if _, err := e.svc.Refresh(ctx, alice, r3.Tokens.RefreshToken); apperr.CodeOf(err) != apperr.Unauthorized {
			t.Fatalf("refresh after the idle limit: %v, want unauthorized", err)
		}
		// Nothing personal is stored in clear.
		var n int
		if err := e.st.Control().SQL().QueryRow("SELECT COUNT(*) FROM users WHERE CAST(email_sealed AS TEXT) LIKE '%alice%' OR CAST(name_sealed AS TEXT) LIKE '%Alice%'").Scan(&n); err == nil && n != 0 {
			t.Fatal("e-mail or name stored in clear")
		}
	})
}

func TestSignup_PolicyAndNoEnumeration(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newEnv(t, opts)
		_, err := e.svc.Signup(ctx, alice, "bob@example.com", "bob", "")
		codes := map[string]bool{}
		for _, f := range apperr.FieldsOf(err) {
			codes[f.Field+":"+f.Code] = true
		}
		if apperr.CodeOf(err) != apperr.Invalid || !codes["password:too_short"] || !codes["name:invalid"] {
			t.Fatalf("weak signup: %v %v, want every broken rule", err, apperr.FieldsOf(err))
		}
		if _, err := e.svc.Signup(ctx, alice, "bob@example.com", "bob@example.com-2026!", "Bob"); !hasField(err, "password", password.CodeContainsEmail) {
			t.Fatalf("password with the e-mail: %v", apperr.FieldsOf(err))
		}
		e.signup(t, "carol@example.com")
		// The same address again: the same answer, and a mail to its owner.
		u, err := e.svc.Signup(ctx, alice, "carol@example.com", goodPassword+"x", "Mallory")
		if err != nil || u.Email != "carol@example.com" || u.ID == "" {
			t.Fatalf("signup of a taken address: %+v, %v; want an answer like a new account", u, err)
		}
		if subject, _ := e.mail(t, "carol@example.com"); !strings.Contains(subject, "tried to sign up") {
			t.Fatalf("owner's mail: %q", subject)
		}
		// Login: an unknown address and a wrong password are answered alike.
		_, errUnknown := e.svc.Login(ctx, alice, "nobody@example.com", goodPassword)
		_, errWrong := e.svc.Login(ctx, alice, "carol@example.com", "wrong password 12345")
		if apperr.CodeOf(errUnknown) != apperr.Unauthorized || errUnknown.Error() != errWrong.Error() {
			t.Fatalf("unknown %v vs wrong %v: want the same answer", errUnknown, errWrong)
		}
	})
}

func hasField(err error, field, code string) bool {
	for _, f := range apperr.FieldsOf(err) {
		if f.Field == field && f.Code == code {
			return true
		}
	}
	return false
}

func TestLogin_DelaysThenLocksAndMailsTheOwner(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newEnv(t, opts)
		e.signup(t, "dan@example.com")
		for i := 1; i <= DefaultLockout.Lock; i++ {
			_, err := e.svc.Login(ctx, alice, "dan@example.com", "not the password 1")
			if apperr.CodeOf(err) != apperr.Unauthorized {
				t.Fatalf("failure %d: %v, want unauthorized", i, err)
			}
			// The next attempt must wait 2^(i-1) s.
			_, err = e.svc.Login(ctx, alice, "dan@example.com", goodPassword)
			if apperr.CodeOf(err) != apperr.RateLimited || apperr.RetryAfterOf(err) <= 0 {
				t.Fatalf("right after failure %d: %v, want rate_limited with a wait", i, err)
			}
			e.clk.Add(time.Duration(1<<(i-1))*time.Second + time.Millisecond)
		}
		// Locked now, even with the right password, and the owner is told.
		_, err := e.svc.Login(ctx, alice, "dan@example.com", goodPassword)
		if apperr.CodeOf(err) != apperr.RateLimited {
			t.Fatalf("locked account: %v, want rate_limited", err)
		}
		if subject, _ := e.mail(t, "dan@example.com"); !strings.Contains(subject, "locked") {
			t.Fatalf("lock mail: %q", subject)
		}
		// An operator unlocks it.
		if err := e.svc.Unlock(ctx, alice, "dan@example.com"); err != nil {
			t.Fatal(err)
		}
		e.login(t, "dan@example.com", goodPassword)
		// An unknown address is delayed alike: no difference to probe.
		_, _ = e.svc.Login(ctx, alice, "ghost@example.com", goodPassword)
		if _, err := e.svc.Login(ctx, alice, "ghost@example.com", goodPassword); apperr.CodeOf(err) != apperr.RateLimited {
			t.Fatalf("unknown address right after a failure: %v, want rate_limited like a real one", err)
		}
	})
}

// A full pool answers every login with a fast unavailable, whether the
// address exists or not, and counts no failure against anyone.
func TestLogin_FullPoolRefusesEveryAddressAlike(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newEnv(t, opts)
		e.signup(t, "fay@example.com")
		full, err := password.NewPoolWithParams(1, 0, testParams)
		if err != nil {
			t.Fatal(err)
		}
		defer full.Close()
		full.SetRefusalPause(0) // the pause itself is the pool's test
		e.svc.opts.Passwords = full
		// A stored hash names its own cost: this one keeps the only worker
		// busy for a while.
		slow, err := password.Hash("x", password.Params{MemoryKiB: 32 << 10, Time: 2, Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		busy := make(chan struct{})
		go func() {
			defer close(busy)
			full.Verify(ctx, slow, "x")
		}()
		for full.Running() == 0 {
			time.Sleep(time.Millisecond)
		}
		for _, email := range []string{"fay@example.com", "nobody@example.com"} {
			for range ipFreeFailures + 1 {
				if _, err := e.svc.Login(ctx, alice, email, goodPassword); apperr.CodeOf(err) != apperr.Unavailable {
					t.Fatalf("login of %s with the pool full: %v, want unavailable", email, err)
				}
			}
		}
		if full.Running() == 0 {
			t.Fatal("the slow hash ended before the logins: the test proves nothing")
		}
		<-busy
		page, err := e.audit.Query(ctx, audit.ControlLog, audit.Filter{Action: "auth.login.failed"}, 0, "")
		if err != nil || len(page.Items) != 0 {
			t.Fatalf("failures recorded for refused logins: %+v, %v", page.Items, err)
		}
		e.login(t, "fay@example.com", goodPassword) // neither the address nor the account is delayed
	})
}

func TestMFA_TOTPOnceRecoveryCodesOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newEnv(t, opts)
		u := e.signup(t, "erin@example.com")
		en, err := e.svc.StartTOTP(ctx, alice, u.ID)
		if err != nil || !strings.HasPrefix(en.OTPAuthURI, "otpauth://totp/") {
			t.Fatalf("enrol: %+v, %v", en, err)
		}
		secret, err := decodeBase32(en.Secret)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.ConfirmTOTP(ctx, alice, u.ID, "000000"); apperr.CodeOf(err) != apperr.Invalid {
			t.Fatalf("confirm with a wrong code: %v", err)
		}
		codes, err := e.svc.ConfirmTOTP(ctx, alice, u.ID, totp.Code(secret, e.clk.Now()))
		if err != nil || len(codes) != 10 {
			t.Fatalf("confirm: %d codes, %v", len(codes), err)
		}
		e.clk.Add(totp.Period)

		r := e.login(t, "erin@example.com", goodPassword)
		if !r.MFARequired || r.Tokens != nil {
			t.Fatalf("login with 2FA on: %+v", r)
		}
		code := totp.Code(secret, e.clk.Now())
		done, err := e.svc.CompleteMFA(ctx, alice, r.MFAToken, code)
		if err != nil || done.Tokens == nil {
			t.Fatalf("second factor: %+v, %v", done, err)
		}
		if c, _ := e.tokens.Verify(ctx, done.Tokens.AccessToken); strings.Join(c.AMR, " ") != "pwd otp" {
			t.Fatalf("amr %v", c.AMR)
		}
		// The same code again (a replay) is refused and audited.
		r = e.login(t, "erin@example.com", goodPassword)
		if _, err := e.svc.CompleteMFA(ctx, alice, r.MFAToken, code); apperr.CodeOf(err) != apperr.Invalid {
			t.Fatalf("replayed code: %v, want refused", err)
		}
		page, _ := e.audit.Query(ctx, audit.ControlLog, audit.Filter{Action: "auth.mfa.replayed"}, 0, "")
		if len(page.Items) != 1 {
			t.Fatalf("replay events: %d, want 1", len(page.Items))
		}
		// A recovery code works once.
		e.clk.Add(2 * time.Second)
		r = e.login(t, "erin@example.com", goodPassword)
		if done, err := e.svc.CompleteMFA(ctx, alice, r.MFAToken, strings.ToUpper(codes[0])); err != nil || done.Tokens == nil {
			t.Fatalf("recovery code: %v", err)
		}
		e.clk.Add(4 * time.Second)
		r = e.login(t, "erin@example.com", goodPassword)
		if _, err := e.svc.CompleteMFA(ctx, alice, r.MFAToken, codes[0]); apperr.CodeOf(err) != apperr.Invalid {
			t.Fatalf("spent recovery code: %v, want refused", err)
		}
		// The challenge token is single use and expires.
		e.clk.Add(10 * time.Second)
		r = e.login(t, "erin@example.com", goodPassword)
		e.clk.Add(mfaTTL + time.Second)
		if _, err := e.svc.CompleteMFA(ctx, alice, r.MFAToken, totp.Code(secret, e.clk.Now())); apperr.CodeOf(err) != apperr.Unauthorized {
			t.Fatalf("expired challenge: %v, want unauthorized", err)
		}
	})
}

func TestPasswordChangeAndResetRevokeSessions(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newEnv(t, opts)
		u := e.signup(t, "finn@example.com")
		a := e.login(t, "finn@example.com", goodPassword)
		b := e.login(t, "finn@example.com", goodPassword)
		const second = "a second long passphrase 77"
		if err := e.svc.ChangePassword(ctx, alice, u.ID, a.SessionID, "wrong", second); !hasField(err, "current_password", "wrong") {
			t.Fatalf("change with a wrong current password: %v", err)
		}
		if err := e.svc.ChangePassword(ctx, alice, u.ID, a.SessionID, goodPassword, goodPassword); !hasField(err, "password", password.CodeReused) {
			t.Fatalf("reuse: %v", apperr.FieldsOf(err))
		}
		if err := e.svc.ChangePassword(ctx, alice, u.ID, a.SessionID, goodPassword, second); err != nil {
			t.Fatal(err)
		}
		if ok, _ := e.svc.SessionActive(ctx, a.SessionID); !ok {
			t.Fatal("the session that changed the password was revoked")
		}
		if ok, _ := e.svc.SessionActive(ctx, b.SessionID); ok {
			t.Fatal("another session survived the password change")
		}
		// Reset by e-mail: single use, 30 minutes, revokes every session.
		e.svc.ForgotPassword(ctx, alice, "finn@example.com")
		e.svc.ForgotPassword(ctx, alice, "nobody@example.com") // no mail, no error
		_, body := e.mail(t, "finn@example.com")
		tok := linkToken(t, body)
		if err := e.svc.ResetPassword(ctx, alice, tok, "short"); apperr.CodeOf(err) != apperr.Invalid {
			t.Fatalf("reset to a weak password: %v", err)
		}
		const third = "third passphrase for the account 99"
		if err := e.svc.ResetPassword(ctx, alice, tok, third); err != nil {
			t.Fatalf("reset (the weak try must not have spent the token): %v", err)
		}
		if err := e.svc.ResetPassword(ctx, alice, tok, third+"!"); apperr.CodeOf(err) != apperr.Invalid {
			t.Fatalf("second use of a reset token: %v", err)
		}
		if ok, _ := e.svc.SessionActive(ctx, a.SessionID); ok {
			t.Fatal("a session survived the reset")
		}
		e.login(t, "finn@example.com", third)
		e.svc.ForgotPassword(ctx, alice, "finn@example.com")
		_, body = e.mail(t, "finn@example.com")
		e.clk.Add(resetTTL + time.Second)
		if err := e.svc.ResetPassword(ctx, alice, linkToken(t, body), "fourth passphrase for the account 1"); apperr.CodeOf(err) != apperr.Invalid {
			t.Fatalf("expired reset token: %v", err)
		}
	})
}

func TestAPIKeys_CreateAuthenticateRevokeExpire(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newEnv(t, opts)
		org := "0190f5a0-0000-7000-8000-0000000000aa"
		exp := e.clk.Now().Add(time.Hour)
		text, k, err := e.svc.CreateAPIKey(ctx, alice, org, "ci", "member", &exp)
		if err != nil || !strings.HasPrefix(text, APIKeyPrefix) || len(text) < 60 {
			t.Fatalf("create: %q %+v %v", text, k, err)
		}
		got, err := e.svc.AuthenticateAPIKey(ctx, text)
		if err != nil || got.OrgID != org || got.Role != "member" {
			t.Fatalf("authenticate: %+v, %v", got, err)
		}
		last := "A"
		if strings.HasSuffix(text, "A") {
			last = "B"
		}
		for _, bad := range []string{text + "x", text[:len(text)-1] + last, "bwk_0000000000000000_" + text[21:], "bearer", ""} {
			if _, err := e.svc.AuthenticateAPIKey(ctx, bad); apperr.CodeOf(err) != apperr.Unauthorized {
				t.Errorf("%q: %v, want unauthorized", bad, err)
			}
		}
		var stored int
		if err := e.st.Control().SQL().QueryRow("SELECT COUNT(*) FROM api_keys WHERE CAST(hash AS TEXT) LIKE $1", "%"+text[21:30]+"%").Scan(&stored); err == nil && stored != 0 {
			t.Fatal("the secret is stored in clear")
		}
		list, _ := e.svc.APIKeys(ctx, org)
		if len(list) != 1 || list[0].LastUsedAt == nil {
			t.Fatalf("list: %+v", list)
		}
		if err := e.svc.RevokeAPIKey(ctx, alice, "0190f5a0-0000-7000-8000-0000000000bb", k.ID); apperr.CodeOf(err) != apperr.NotFound {
			t.Fatalf("revoke from another org: %v, want not_found", err)
		}
		if err := e.svc.RevokeAPIKey(ctx, alice, org, k.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.AuthenticateAPIKey(ctx, text); apperr.CodeOf(err) != apperr.Unauthorized {
			t.Fatalf("revoked key: %v", err)
		}
		text2, _, _ := e.svc.CreateAPIKey(ctx, alice, org, "short-lived", "viewer", &exp)
		e.clk.Add(2 * time.Hour)
		if _, err := e.svc.AuthenticateAPIKey(ctx, text2); apperr.CodeOf(err) != apperr.Unauthorized {
			t.Fatalf("expired key: %v", err)
		}
		if _, _, err := e.svc.CreateAPIKey(ctx, alice, org, "", "root", nil); !hasField(err, "role", "invalid") || !hasField(err, "name", "invalid") {
			t.Fatalf("bad key: %v", apperr.FieldsOf(err))
		}
	})
}

func decodeBase32(s string) ([]byte, error) {
	return base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(s)
}

func TestImport_LegacyHashesLogInAndAreUpgraded(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newEnv(t, opts)
		bc, err := bcrypt.GenerateFromPassword([]byte("bcrypt user password 1"), 4)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha512.Sum512([]byte("NaCl" + "sha512 user password 2"))
		lines := `{"email":"Bee@example.com","name":"Bee","password_hash":"` + string(bc) + `","email_verified":true}

{"email":"sha@example.com","name":"Sha","password_hash":"sha512$NaCl$` + hex.EncodeToString(sum[:]) + `"}
`
		users, err := ReadImport(strings.NewReader(lines))
		if err != nil || len(users) != 2 {
			t.Fatalf("ReadImport: %v, %v", users, err)
		}
		if n, skipped, err := e.svc.Import(ctx, alice, users); err != nil || n != 2 || skipped != 0 {
			t.Fatalf("Import = %d, %d, %v", n, skipped, err)
		}
		if n, skipped, err := e.svc.Import(ctx, alice, users); err != nil || n != 0 || skipped != 2 {
			t.Fatalf("second Import = %d, %d, %v; want both skipped", n, skipped, err)
		}
		for email, pw := range map[string]string{"bee@example.com": "bcrypt user password 1", "sha@example.com": "sha512 user password 2"} {
			if _, err := e.svc.Login(ctx, alice, email, pw+"x"); apperr.CodeOf(err) != apperr.Unauthorized {
				t.Fatalf("%s with a wrong password: %v", email, err)
			}
			e.clk.Add(2 * time.Second)
			e.login(t, email, pw)
			var hash string
			idx, _ := e.svc.emailIndex(ctx, email)
			if err := e.st.Control().SQL().QueryRow("SELECT password_hash FROM users WHERE email_index = $1", idx).Scan(&hash); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(hash, "$argon2id$") {
				t.Fatalf("%s: hash after login %.10s..., want argon2id", email, hash)
			}
			e.login(t, email, pw) // and the new hash works
		}
		// A bad file is refused whole, naming the lines.
		bad := `{"email":"ok@example.com","name":"Ok","password_hash":"` + string(bc) + `"}
{"email":"not-an-address","name":"X","password_hash":"` + string(bc) + `"}
{"email":"ok@example.com","name":"Again","password_hash":"` + string(bc) + `"}
{"email":"p@example.com","name":"P","password_hash":"md5$abc"}
{"email":"q@example.com","name":"Q","password_hash":"` + string(bc) + `","admin":true}
not json`
		_, err = ReadImport(strings.NewReader(bad))
		for _, want := range []string{"line 2", "line 3", "line 4", "line 5", "line 6", "nothing imported"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("bad import: %v; want it to name %s", err, want)
			}
		}
		if strings.Contains(err.Error(), string(bc)) {
			t.Fatal("the error shows a password hash")
		}
	})
}

// A standard authenticator's codes log in: oathtool (the Debian package)
// computes them from the secret of the enrolment.
func TestMFA_CodesFromOathtoolLogIn(t *testing.T) {
	if os.Getenv("BULWARK_TEST_OATHTOOL") == "skip" {
		t.Skip("BULWARK_TEST_OATHTOOL=skip")
	}
	bin, err := exec.LookPath("oathtool")
	if err != nil {
		t.Fatal("oathtool is not installed (apt-get install oathtool; scripts/deps.sh does it); BULWARK_TEST_OATHTOOL=skip skips this test")
	}
	oath := func(secret string, at time.Time) string {
		out, err := exec.Command(bin, "--totp", "-b", secret, "--now", at.UTC().Format("2006-01-02 15:04:05 UTC")).Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newEnv(t, opts)
		u := e.signup(t, "gus@example.com")
		en, err := e.svc.StartTOTP(ctx, alice, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.ConfirmTOTP(ctx, alice, u.ID, oath(en.Secret, e.clk.Now())); err != nil {
			t.Fatalf("confirm with oathtool's code: %v", err)
		}
		for i := 0; i < 3; i++ {
			e.clk.Add(totp.Period)
			r := e.login(t, "gus@example.com", goodPassword)
			done, err := e.svc.CompleteMFA(ctx, alice, r.MFAToken, oath(en.Secret, e.clk.Now()))
			if err != nil || done.Tokens == nil {
				t.Fatalf("login %d with oathtool's code: %v", i, err)
			}
		}
	})
}
