package observe

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"unicode"
)

var testKey = bytes.Repeat([]byte{7}, 32)

// secrets are values that must never appear in a log line, whatever way they
// are handed to the logger.
var secrets = []string{
	"alice@example.com",
	"Alice.Smith+tag@mail.example.org",
	"eyJhbGciOiJIUzUxMiIsImtpZCI6IjEifQ.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJlLXZhbHVl",
	"bwk_9fK2mQ7xLp3ZrT8vN1wYbC4dE6",
	"dGhpcyBpcyBhIHZlcnkgc2VjcmV0IHJlZnJlc2ggdG9rZW4K",
	"0123456789abcdef0123456789abcdef0123456789abcdef",
	"JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
	"203.0.113.77",
	"2001:db8:85a3::8a2e:370:7334",
}

func TestRedactingHandler_SecretsInTextAreMaskedEverywhere(t *testing.T) {
	for _, secret := range secrets {
		cases := []struct {
			name string
			log  func(l *slog.Logger)
		}{
			{"message", func(l *slog.Logger) { l.Info("login by " + secret + " failed") }},
			{"plain attr", func(l *slog.Logger) { l.Info("x", "detail", "saw "+secret) }},
			{"error value", func(l *slog.Logger) { l.Error("x", "err", fmt.Errorf("lookup %s: %w", secret, errors.New("boom"))) }},
			{"nested group", func(l *slog.Logger) {
				l.Info("x", slog.Group("outer", slog.Group("inner", slog.String("note", secret))))
			}},
			{"WithAttrs", func(l *slog.Logger) { l.With("note", secret).Info("x") }},
			{"WithGroup", func(l *slog.Logger) { l.WithGroup("g").WithGroup("h").Info("x", "note", secret) }},
			{"map value", func(l *slog.Logger) { l.Info("x", "details", map[string]any{"list": []any{secret}}) }},
			{"struct value", func(l *slog.Logger) {
				l.Info("x", "details", struct{ Note string }{Note: "for " + secret})
			}},
			{"stringer", func(l *slog.Logger) { l.Info("x", "details", stringer("is "+secret)) }},
			{"bytes", func(l *slog.Logger) { l.Info("x", "details", []byte(secret)) }},
		}
		for _, c := range cases {
			t.Run(c.name+"/"+secret[:6], func(t *testing.T) {
				var buf bytes.Buffer
				c.log(NewLogger(&buf, slog.LevelDebug, testKey))
				assertNoSecret(t, buf.String(), secret)
			})
		}
	}
}

type stringer string

func (s stringer) String() string { return string(s) }

func TestRedactingHandler_SecretKeysAreRedactedAtAnyDepth(t *testing.T) {
	const v = "hunter2-Correct-Horse"
	keys := []string{"password", "Password", "passwd", "secret", "client_secret", "token", "access_token",
		"refresh_token", "authorization", "Authorization", "cookie", "set-cookie", "Set-Cookie", "api_key",
		"key", "email", "name", "first_name", "last_name", "phone", "address", "body", "content", "record",
		"data", "value", "new_password", "signing_key", "X-Api-Key"}
	for _, k := range keys {
		t.Run(k, func(t *testing.T) {
			var buf bytes.Buffer
			l := NewLogger(&buf, slog.LevelDebug, testKey)
			l.Info("x", k, v)
			l.Info("x", slog.Group("a", slog.Group("b", slog.String(k, v))))
			l.With(k, v).Info("x")
			l.WithGroup("req").With(slog.Group("h", k, v)).Info("x")
			l.Info("x", "details", map[string]any{"nested": map[string]any{k: v}})
			l.Info("x", k, map[string]string{"inner": v})
			l.WithGroup(k).Info("x", "plain", v)
			assertNoSecret(t, buf.String(), v)
			if got := strings.Count(buf.String(), redacted); got < 7 {
				t.Fatalf("want every value replaced by %q, got %d in\n%s", redacted, got, buf.String())
			}
		})
	}
}

func TestRedactingHandler_IPKeysAreHashed(t *testing.T) {
	cases := []struct{ key, value, ip string }{
		{"ip", "198.51.100.7", "198.51.100.7"},
		{"remote_addr", "198.51.100.7:51234", "198.51.100.7"},
		{"client_ip", "::ffff:198.51.100.7", "198.51.100.7"},
		{"x_forwarded_for", "198.51.100.7, 192.0.2.1", "198.51.100.7"},
		{"X-Forwarded-For", "[2001:db8::9]:443", "2001:db8::9"},
	}
	for _, c := range cases {
		t.Run(c.key, func(t *testing.T) {
			var buf bytes.Buffer
			NewLogger(&buf, slog.LevelInfo, testKey).Info("x", c.key, c.value)
			assertNoSecret(t, buf.String(), c.ip)
			var line map[string]any
			if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
				t.Fatal(err)
			}
			want := HashIP(testKey, c.ip)
			if got, _ := line[c.key].(string); !strings.Contains(got, want) {
				t.Fatalf("%s = %q, want it to hold %q", c.key, got, want)
			}
		})
	}
}

func TestRedactingHandler_KeepsWhatOperatorsNeed(t *testing.T) {
	var buf bytes.Buffer
	l := NewLogger(&buf, slog.LevelInfo, testKey)
	hashed := HashIP(testKey, "192.0.2.1")
	l.Info("request served", "method", "GET", "route", "GET /v1/orgs/{org}/collections/{name}/records/{id}",
		"status", 200, "request_id", "0192f3a4-7b1c-4def-8abc-0123456789ab", "ip", hashed,
		"org_id", "0192f3a4-7b1c-7def-8abc-0123456789ab", "at", "2026-01-02T10:20:30Z",
		"file", "/var/lib/bulwark/data/orgs/0192f3a4-7b1c-7def-8abc-0123456789ab.db")
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"msg": "request served", "method": "GET", "route": "GET /v1/orgs/{org}/collections/{name}/records/{id}",
		"status": float64(200), "request_id": "0192f3a4-7b1c-4def-8abc-0123456789ab", "ip": hashed,
		"org_id": "0192f3a4-7b1c-7def-8abc-0123456789ab", "at": "2026-01-02T10:20:30Z",
		"file": "/var/lib/bulwark/data/orgs/0192f3a4-7b1c-7def-8abc-0123456789ab.db",
	}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("%s = %v, want %v", k, line[k], v)
		}
	}
}

func TestRedactingHandler_RespectsLevel(t *testing.T) {
	var buf bytes.Buffer
	l := NewLogger(&buf, slog.LevelWarn, testKey)
	l.Info("quiet")
	l.Warn("loud")
	if strings.Contains(buf.String(), "quiet") || !strings.Contains(buf.String(), "loud") {
		t.Fatalf("output = %s", buf.String())
	}
}

func TestHashIP_OneClientOnePseudonym(t *testing.T) {
	base := HashIP(testKey, "192.0.2.1")
	if len(base) != 19 || !strings.HasPrefix(base, "ip_") {
		t.Fatalf("HashIP = %q, want ip_ and 16 hex digits", base)
	}
	for _, same := range []string{"192.0.2.1:443", "::ffff:192.0.2.1", "[::ffff:192.0.2.1]:80", " 192.0.2.1 "} {
		if got := HashIP(testKey, same); got != base {
			t.Errorf("HashIP(%q) = %q, want %q", same, got, base)
		}
	}
	if HashIP(testKey, "2001:DB8::1") != HashIP(testKey, "2001:db8:0::1") {
		t.Error("IPv6 spellings of one address hash differently")
	}
	if HashIP(testKey, "192.0.2.2") == base {
		t.Error("two addresses share a pseudonym")
	}
	if HashIP(bytes.Repeat([]byte{8}, 32), "192.0.2.1") == base {
		t.Error("the pseudonym does not depend on the key")
	}
	if _, err := netip.ParseAddr(strings.TrimPrefix(base, "ip_")); err == nil {
		t.Error("pseudonym parses as an address")
	}
}

func assertNoSecret(t *testing.T, out, secret string) {
	t.Helper()
	if out == "" {
		t.Fatal("nothing was logged")
	}
	if strings.Contains(out, secret) {
		t.Fatalf("log output holds %q:\n%s", secret, out)
	}
	// A JSON encoder may escape characters ('+' stays, '<' does not matter
	// here); check the escaped form too.
	esc, _ := json.Marshal(secret)
	if strings.Contains(out, strings.Trim(string(esc), `"`)) {
		t.Fatalf("log output holds escaped %q:\n%s", secret, out)
	}
}

func TestRedactingHandler_MasksCredentialsInsideText(t *testing.T) {
	cases := []struct{ text, secret string }{
		{"Authorization: Bearer s3cr3t-opaque.value", "s3cr3t-opaque.value"},
		{"header authorization=bearer abc", "abc"},
		{"Authorization: Bearer\rcarriage-return-token", "carriage-return-token"},
		{"Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA"},
		{"listening on [::1]:9443", "::1"},
		{"dial 10.1.2.3:5432: refused", "10.1.2.3"},
		{"peer fe80::1%eth0 gone", "fe80::1"},
		{"key=bwk_live_abc", "bwk_live_abc"},
		{"mail bob@localhost", "bob@localhost"},
	}
	for _, c := range cases {
		t.Run(c.text, func(t *testing.T) {
			var buf bytes.Buffer
			l := NewLogger(&buf, slog.LevelInfo, testKey)
			l.Info(c.text)
			l.Info("x", "note", c.text)
			assertNoSecret(t, buf.String(), c.secret)
		})
	}
}

// scrubEveryPattern is scrub without its first pass: every pattern runs on
// every text, in scrub's order.
func scrubEveryPattern(h *redactingHandler, s string) string {
	s = bearerRe.ReplaceAllStringFunc(s, func(m string) string {
		return m[:strings.IndexFunc(m, unicode.IsSpace)] + " " + redacted
	})
	s = jwtRe.ReplaceAllLiteralString(s, redacted)
	s = apiKeyRe.ReplaceAllLiteralString(s, redacted)
	s = emailRe.ReplaceAllLiteralString(s, redacted)
	s = hexRe.ReplaceAllLiteralString(s, redacted)
	s = b64Re.ReplaceAllStringFunc(s, func(m string) string {
		if looksRandom(m) {
			return redacted
		}
		return m
	})
	s = ipv4Re.ReplaceAllStringFunc(s, h.hashIfAddr)
	return ipv6Re.ReplaceAllStringFunc(s, h.hashIfAddr)
}

// FuzzScrub_SkipsOnlyPatternsThatFindNothing: the first pass of scrub only
// ever skips a pattern that would have masked nothing.
func FuzzScrub_SkipsOnlyPatternsThatFindNothing(f *testing.F) {
	for _, s := range append(secrets,
		"GET /v1/orgs/{org}/collections/{collection}/records/{id}",
		"0193a1b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b",
		"0193A1B2-7C3D-7E4F-8A9B-0C1D2E3F4A5B",
		"/srv/bulwark/data/orgs/0193a1b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b/records.db",
		"token bwk_x and mail a@b.c and eyJx.y.z then dGhpcyBpcyBhIHZlcnkgc2VjcmV0IHJlZnJlc2g=",
		"Bearer abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789",
		"x0123456789abcdef0123456789abcdefZZ0123456789abcdef0123456789abcdef",
		"abcdefghijklmnopqrstuvwxyzabcdefgh-ABCDEFGH",
		"AAAAAAAAbbbbbbbbAAAAAAAAbbbbbbbbAAAAAAAA",
		"lowercase-words-joined-by-dashes-that-run-long-enough",
		"dial tcp [2001:db8::1]:5432 and 192.0.2.1:80",
	) {
		f.Add(s)
	}
	h := &redactingHandler{key: testKey}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := h.scrub(s), scrubEveryPattern(h, s); got != want {
			t.Fatalf("scrub(%q) = %q, every pattern gives %q", s, got, want)
		}
	})
}

func BenchmarkScrub(b *testing.B) {
	h := &redactingHandler{key: testKey}
	for _, s := range []string{"GET /v1/orgs/{org}/collections/{collection}/records/{id}", "0193a1b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b"} {
		b.Run(s[:8], func(b *testing.B) {
			for b.Loop() {
				h.scrub(s)
			}
		})
	}
}
