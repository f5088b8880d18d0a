package edge

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestSecurityHeaders_EveryResponseCarriesThem(t *testing.T) {
	cases := []struct {
		name     string
		maxAge   time.Duration
		wantHSTS string
	}{
		{"two years", 2 * 365 * 24 * time.Hour, "max-age=63072000; includeSubDomains"},
		{"off", 0, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := SecurityHeaders(c.maxAge)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "nope", http.StatusTeapot)
			}))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
			want := map[string]string{
				"Strict-Transport-Security": c.wantHSTS,
				"X-Content-Type-Options":    "nosniff",
				"X-Frame-Options":           "DENY",
				"Referrer-Policy":           "no-referrer",
				"Content-Security-Policy":   "default-src 'none'; frame-ancestors 'none'",
				"Cache-Control":             "no-store",
			}
			for k, v := range want {
				if got := rec.Header().Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestAllowlist_OnlyListedClientsPass(t *testing.T) {
	allowed := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("10.20.0.0/16")}
	mw := Allowlist(allowed, nil)
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	cases := []struct {
		remote string
		want   int
	}{
		{"127.0.0.1:5000", 200},
		{"[::1]:5000", 200},
		{"[::ffff:127.0.0.1]:5000", 200},
		{"10.20.3.4:1", 200},
		{"10.21.3.4:1", 403},
		{"192.0.2.1:443", 403},
		{"[2001:db8::1]:443", 403},
		{"garbage", 403},
		{"", 403},
	}
	for _, c := range cases {
		t.Run(c.remote, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/metrics", nil)
			r.RemoteAddr = c.remote
			r.Header.Set("X-Forwarded-For", "127.0.0.1")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != c.want {
				t.Fatalf("status %d, want %d", rec.Code, c.want)
			}
		})
	}
}

func TestAllowlist_EmptyListAllowsNothing(t *testing.T) {
	h := Allowlist(nil, nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "127.0.0.1:1"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if rec.Code != http.StatusForbidden {
		t.Fatalf("status %d, want 403", rec.Code)
	}
}
