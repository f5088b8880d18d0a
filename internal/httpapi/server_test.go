package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"bulwark/internal/apperr"
	"bulwark/internal/observe"
)

var testIPKey = bytes.Repeat([]byte{3}, 32)

// logBuffer collects log output from concurrent requests.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns every log line, failing the test on one that is not JSON.
func (b *logBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b.buf.Bytes()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %s", sc.Text())
		}
		out = append(out, m)
	}
	return out
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func testDeps(logs io.Writer) Deps {
	h := observe.NewHealth()
	h.SetReady(true)
	return Deps{
		Logger:       observe.NewLogger(logs, slog.LevelDebug, testIPKey),
		Metrics:      observe.NewMetrics(func() int { return 7 }),
		Health:       h,
		HSTSMaxAge:   2 * 365 * 24 * time.Hour,
		OpsAllowlist: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		IPKey:        testIPKey,
	}
}

// testPublic is NewServer plus routes that only tests have: one that panics,
// one that fails with an internal error naming personal data, and one that
// decodes a body.
func testPublic(d Deps) http.Handler {
	d = d.withDefaults()
	mux := publicRoutes(d)
	mux.Handle("GET /test/panic", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		panic("boom while handling alice@example.com")
	}))
	mux.Handle("GET /test/fail/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, fmt.Errorf("seal record for alice@example.com from 127.0.0.1: %w", errors.New("disk full")))
	}))
	mux.Handle("POST /test/signup", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in, err := decode[signupRequest](w, r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		encode(w, r, http.StatusCreated, map[string]string{"status": "created", "slug": in.Slug})
	}))
	return d.stack(listenerPublic, mux)
}

type signupRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Name     string `json:"name"`
	Slug     string `json:"slug"`
}

func (s signupRequest) Valid(ctx context.Context) map[string]string {
	problems := map[string]string{}
	if s.Slug == "" {
		problems["slug"] = "required"
	}
	if len(s.Password) < 12 {
		problems["password"] = "too_short"
	}
	return problems
}

type problemBody struct {
	Type      string              `json:"type"`
	Title     string              `json:"title"`
	Status    int                 `json:"status"`
	Detail    string              `json:"detail"`
	RequestID string              `json:"request_id"`
	Errors    []apperr.FieldError `json:"errors"`
}

// readProblem checks that resp is a problem+json document for status and
// returns it.
func readProblem(t *testing.T, resp *http.Response, status int) problemBody {
	t.Helper()
	defer resp.Body.Close()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d", resp.StatusCode, status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json", ct)
	}
	var p problemBody
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		t.Fatalf("problem body: %v", err)
	}
	if p.Status != status || p.Title == "" || !strings.HasPrefix(p.Type, "https://bulwark.dev/problems/") {
		t.Fatalf("problem %+v", p)
	}
	if id := resp.Header.Get("X-Request-Id"); id == "" || p.RequestID != id {
		t.Fatalf("problem request_id %q, header X-Request-Id %q", p.RequestID, id)
	}
	return p
}

func TestLogs_HoldNoPersonalDataSecretsOrClientIP(t *testing.T) {
	var logs logBuffer
	d := testDeps(&logs)
	pub := httptest.NewTLSServer(testPublic(d))
	defer pub.Close()
	ops := httptest.NewTLSServer(NewOpsServer(d))
	defer ops.Close()

	const (
		email    = "alice.liddell@example.com"
		name     = "Zebulon Quixley"
		password = "Tr0ub4dor&3-horse"
		apiKey   = "bwk_live_7fQ2mXk9LpZr3T8vN1wYbC4d"
		jwt      = "eyJhbGciOiJIUzUxMiIsImtpZCI6ImsxIn0.eyJzdWIiOiIwMTkyIn0.QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo"
		refresh  = "rt_Q2hhbmdlTWVQbGVhc2VJdElzQVNlY3JldA"
		record   = "diagnosis-hypertension-stage-two"
		phone    = "+1-555-0199-4242"
	)
	secrets := []string{email, name, "Zebulon", "Quixley", password, apiKey, jwt, refresh, record, phone,
		"127.0.0.1", "Tr0ub4dor"}

	body := fmt.Sprintf(`{"email":%q,"password":%q,"name":%q,"slug":"acme","phone":%q,"record":%q}`,
		email, password, name, phone, record)
	validBody := fmt.Sprintf(`{"email":%q,"password":%q,"name":%q,"slug":"acme"}`, email, password, name)
	type req struct {
		srv    *httptest.Server
		method string
		path   string
		body   string
	}
	reqs := []req{
		{pub, "GET", "/healthz?email=" + email + "&password=" + url.QueryEscape(password), ""},
		{pub, "GET", "/v1/users/" + email + "/records/" + record + "?token=" + jwt, ""},
		{pub, "POST", "/healthz?api_key=" + apiKey, body},
		{pub, "POST", "/test/signup?name=" + url.QueryEscape(name), body}, // unknown fields: 400
		{pub, "POST", "/test/signup", validBody},
		{pub, "POST", "/test/signup", `{"email": "` + email + `", "password": ` + password + `}`}, // not JSON
		{pub, "GET", "/test/fail/" + record, ""},
		{pub, "GET", "/test/panic?secret=" + url.QueryEscape(password), ""},
		{pub, "DELETE", "/readyz/" + email, ""},
		{ops, "GET", "/metrics?refresh_token=" + refresh, ""},
		{ops, "GET", "/v1/orgs/" + url.PathEscape(name), ""},
		{ops, "PUT", "/healthz", body},
	}
	for _, r := range reqs {
		var rb io.Reader
		if r.body != "" {
			rb = strings.NewReader(r.body)
		}
		hr, err := http.NewRequest(r.method, r.srv.URL+r.path, rb)
		if err != nil {
			t.Fatal(err)
		}
		hr.Header.Set("Content-Type", "application/json")
		hr.Header.Set("Authorization", "Bearer "+jwt)
		hr.Header.Set("Cookie", "__Host-session="+refresh)
		hr.Header.Set("X-Api-Key", apiKey)
		hr.Header.Set("X-Forwarded-For", "127.0.0.1")
		hr.Header.Set("User-Agent", "test "+email)
		hr.Header.Set("X-Request-Id", "client-chosen-"+email)
		resp, err := r.srv.Client().Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.Header.Get("X-Request-Id") == "" || strings.Contains(resp.Header.Get("X-Request-Id"), "client") {
			t.Errorf("%s %s: X-Request-Id %q is not server-generated", r.method, r.path, resp.Header.Get("X-Request-Id"))
		}
	}

	out := logs.String()
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("logs hold %q", s)
		}
	}
	lines := logs.lines(t)
	accessLines, sawPanic, sawFailure := 0, false, false
	wantIP := observe.HashIP(testIPKey, "127.0.0.1")
	for _, l := range lines {
		switch l["msg"] {
		case "request":
			accessLines++
			if l["ip"] != wantIP {
				t.Errorf("access log ip = %v, want %s", l["ip"], wantIP)
			}
			for _, k := range []string{"method", "route", "status", "duration_ms", "bytes", "request_id"} {
				if _, ok := l[k]; !ok {
					t.Errorf("access log lacks %s: %v", k, l)
				}
			}
		case "panic serving request":
			sawPanic = l["stack"] != nil && l["panic"] != nil
		case "request failed":
			sawFailure = strings.Contains(fmt.Sprint(l["err"]), "disk full")
		}
	}
	if accessLines != len(reqs) {
		t.Errorf("%d access log lines for %d requests", accessLines, len(reqs))
	}
	if !sawPanic || !sawFailure {
		t.Errorf("panic logged with stack: %v; internal error logged with cause: %v", sawPanic, sawFailure)
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("logs:\n%s", out)
	}
}

func TestOps_AllowlistRefusesOtherAddresses(t *testing.T) {
	cases := []struct {
		remote string
		want   int
	}{
		{"127.0.0.1:40000", http.StatusOK},
		{"[::1]:40000", http.StatusOK},
		{"203.0.113.5:40000", http.StatusForbidden},
		{"[2001:db8::5]:40000", http.StatusForbidden},
		{"10.0.0.8:40000", http.StatusForbidden},
	}
	for _, c := range cases {
		t.Run(c.remote, func(t *testing.T) {
			var logs logBuffer
			h := NewOpsServer(testDeps(&logs))
			r := httptest.NewRequest("GET", "/metrics", nil)
			r.RemoteAddr = c.remote
			r.Header.Set("X-Forwarded-For", "127.0.0.1") // must not help
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			resp := rec.Result()
			if c.want == http.StatusOK {
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d, want 200", resp.StatusCode)
				}
				return
			}
			p := readProblem(t, resp, http.StatusForbidden)
			if p.Type != "https://bulwark.dev/problems/forbidden" {
				t.Errorf("type %q", p.Type)
			}
			ip, _ := netip.ParseAddrPort(c.remote)
			wantHash := observe.HashIP(testIPKey, ip.Addr().String())
			denied := false
			for _, l := range logs.lines(t) {
				if strings.Contains(fmt.Sprint(l["msg"]), "ops_allowlist") && l["ip"] == wantHash && l["request_id"] == p.RequestID {
					denied = true
				}
			}
			if !denied {
				t.Errorf("no denial log line with the hashed address:\n%s", logs.String())
			}
			if strings.Contains(logs.String(), ip.Addr().String()) {
				t.Errorf("logs hold the raw address")
			}
		})
	}
}

func TestRecover_PanicIs500ProblemAndServerLivesOn(t *testing.T) {
	var logs logBuffer
	srv := httptest.NewTLSServer(testPublic(testDeps(&logs)))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/test/panic")
	if err != nil {
		t.Fatal(err)
	}
	p := readProblem(t, resp, http.StatusInternalServerError)
	if p.Detail != "internal error" || strings.Contains(p.Detail, "boom") {
		t.Errorf("detail %q", p.Detail)
	}
	logged := false
	for _, l := range logs.lines(t) {
		if l["msg"] == "panic serving request" && l["request_id"] == p.RequestID {
			logged = strings.Contains(fmt.Sprint(l["stack"]), "goroutine") && strings.Contains(fmt.Sprint(l["panic"]), "boom")
		}
	}
	if !logged {
		t.Errorf("panic not logged with its request_id, cause and stack:\n%s", logs.String())
	}
	resp, err = srv.Client().Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after a panic /healthz answers %d", resp.StatusCode)
	}
}

func TestRouting_UnknownPathAndWrongMethodAreProblems(t *testing.T) {
	cases := []struct {
		handler   func(Deps) http.Handler
		method    string
		path      string
		status    int
		wantType  string
		wantAllow string
	}{
		{NewServer, "GET", "/nope", 404, "not_found", ""},
		{NewServer, "GET", "/metrics", 404, "not_found", ""}, // metrics live on ops only
		{NewServer, "POST", "/healthz", 405, "method_not_allowed", "GET, HEAD"},
		{NewServer, "DELETE", "/readyz", 405, "method_not_allowed", "GET, HEAD"},
		{NewOpsServer, "GET", "/v1/anything", 404, "not_found", ""},
		{NewOpsServer, "POST", "/metrics", 405, "method_not_allowed", "GET, HEAD"},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			h := c.handler(testDeps(io.Discard))
			r := httptest.NewRequest(c.method, c.path, nil)
			r.RemoteAddr = "127.0.0.1:1234"
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			resp := rec.Result()
			p := readProblem(t, resp, c.status)
			if p.Type != "https://bulwark.dev/problems/"+c.wantType {
				t.Errorf("type %q", p.Type)
			}
			if got := resp.Header.Get("Allow"); got != c.wantAllow {
				t.Errorf("Allow %q, want %q", got, c.wantAllow)
			}
			if resp.Header.Get("Strict-Transport-Security") == "" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("error response lacks security headers: %v", resp.Header)
			}
		})
	}
}

func TestReadyz_503UntilReady(t *testing.T) {
	for _, mk := range []func(Deps) http.Handler{NewServer, NewOpsServer} {
		d := testDeps(io.Discard)
		d.Health = observe.NewHealth()
		h := mk(d)
		get := func() *http.Response {
			r := httptest.NewRequest("GET", "/readyz", nil)
			r.RemoteAddr = "127.0.0.1:1"
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			return rec.Result()
		}
		p := readProblem(t, get(), http.StatusServiceUnavailable)
		if p.Type != "https://bulwark.dev/problems/unavailable" {
			t.Errorf("type %q", p.Type)
		}
		d.Health.SetReady(true)
		if resp := get(); resp.StatusCode != http.StatusOK {
			t.Fatalf("ready: status %d", resp.StatusCode)
		}
		d.Health.SetReady(false) // draining
		readProblem(t, get(), http.StatusServiceUnavailable)
	}
}

func TestMetrics_CountRequestsByRoutePatternOnOpsOnly(t *testing.T) {
	d := testDeps(io.Discard)
	pub, ops := testPublic(d), NewOpsServer(d)
	do := func(h http.Handler, method, path string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, nil)
		r.RemoteAddr = "127.0.0.1:1"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}
	do(pub, "GET", "/healthz")
	do(pub, "GET", "/healthz")
	do(pub, "GET", "/v1/orgs/acme/secret-path")
	do(pub, "GET", "/test/fail/abc")
	do(pub, "GET", "/test/panic")
	do(pub, "BREW", "/healthz")
	rec := do(ops, "GET", "/metrics")
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics status %d", rec.Code)
	}
	text := rec.Body.String()
	for _, want := range []string{
		`bulwark_http_requests_total{listener="public",method="GET",route="GET /healthz",status="200"} 2`,
		`bulwark_http_requests_total{listener="public",method="GET",route="unmatched",status="404"} 1`,
		`bulwark_http_requests_total{listener="public",method="GET",route="GET /test/fail/{id}",status="500"} 1`,
		`bulwark_http_requests_total{listener="public",method="GET",route="GET /test/panic",status="500"} 1`,
		`bulwark_http_requests_total{listener="public",method="OTHER",route="unmatched",status="405"} 1`,
		`bulwark_org_db_open_handles 7`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(text, "secret-path") || strings.Contains(text, "/test/fail/abc") {
		t.Error("a raw path became a label")
	}
	if rec := do(NewServer(d), "GET", "/metrics"); rec.Code != http.StatusNotFound {
		t.Errorf("public /metrics status %d, want 404", rec.Code)
	}
}

func TestRequestID_UniqueServerGeneratedOnEveryResponse(t *testing.T) {
	h := NewServer(testDeps(io.Discard))
	seen := map[string]bool{}
	for i := 0; i < 50; i++ {
		r := httptest.NewRequest("GET", []string{"/healthz", "/nope"}[i%2], nil)
		r.Header.Set("X-Request-Id", "client-chosen")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		id := rec.Header().Get("X-Request-Id")
		if len(id) != 36 || strings.Count(id, "-") != 4 || seen[id] {
			t.Fatalf("request id %q (seen before: %v)", id, seen[id])
		}
		seen[id] = true
	}
}

func TestHealthz_OKWithSecurityHeaders(t *testing.T) {
	h := NewServer(testDeps(io.Discard))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" || !strings.Contains(rec.Body.String(), `"ok"`) {
		t.Fatalf("healthz: %d %q %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	for _, k := range []string{"Strict-Transport-Security", "Content-Security-Policy", "X-Frame-Options", "Referrer-Policy", "Cache-Control"} {
		if rec.Header().Get(k) == "" {
			t.Errorf("missing %s", k)
		}
	}
}
