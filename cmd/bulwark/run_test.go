package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

// call runs the program in-process as `bulwark args...` with env as its
// whole environment and returns stdout, the one-line stderr that main would
// print, and the exit status main would return.
func call(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	getenv := func(k string) string { return env[k] }
	err := run(context.Background(), append([]string{"bulwark"}, args...), getenv, strings.NewReader(""), &out, &errb)
	code = exitCode(err, &errb)
	return out.String(), errb.String(), code
}

func storageEnv(t *testing.T, opts store.Options) map[string]string {
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir() // PostgreSQL still keeps TLS and key files on disk
	}
	env := map[string]string{
		"BULWARK_DATA_DIR":        opts.DataDir,
		"BULWARK_DATABASE_DRIVER": string(opts.Driver),
	}
	if opts.URL != "" {
		env["BULWARK_DATABASE_URL"] = opts.URL
	}
	return env
}

func TestRun_UsageErrorsExit2WithAHint(t *testing.T) {
	cases := [][]string{
		{},
		{"frobnicate"},
		{"org"},
		{"org", "create", "--slug", "acme"},
		{"org", "suspend"},
		{"org", "explode", "acme"},
		{"serve", "--no-such-flag"},
		{"config"},
		{"migrate", "extra"},
	}
	for _, args := range cases {
		t.Run(strings.Join(args, "_"), func(t *testing.T) {
			_, stderr, code := call(t, map[string]string{"BULWARK_DATA_DIR": t.TempDir()}, args...)
			if code != 2 {
				t.Fatalf("exit %d, want 2; stderr %q", code, stderr)
			}
			if !strings.HasPrefix(stderr, "bulwark: ") {
				t.Fatalf("stderr %q does not say what is wrong", stderr)
			}
		})
	}
}

func TestRun_HelpExits0(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"serve", "-h"}, {"org", "-h"}, {"migrate", "-h"}, {"config", "check", "-h"}} {
		stdout, stderr, code := call(t, nil, args...)
		if code != 0 || !strings.Contains(stdout, "bulwark") {
			t.Fatalf("%v: exit %d stdout %q stderr %q", args, code, stdout, stderr)
		}
	}
}

func TestConfigCheck_BadConfigsGiveOneLineNamingTheKey(t *testing.T) {
	cases := []struct {
		name, yaml string
		env        map[string]string
		key        string
	}{
		{"unknown key", "tls:\n  mdoe: local\n", nil, "mdoe"},
		{"unknown top key", "listne: 127.0.0.1:8443\n", nil, "listne"},
		{"bad tls mode", "tls:\n  mode: plain\n", nil, "tls.mode"},
		{"bad driver", "database:\n  driver: mysql\n", nil, "database.driver"},
		{"postgres without url", "database:\n  driver: postgres\n", nil, "database.url"},
		{"bad duration", "http:\n  read_timeout: soon\n", nil, "http.read_timeout"},
		{"negative duration", "http:\n  idle_timeout: -5s\n", nil, "http.idle_timeout"},
		{"bad listen", "listen: nowhere\n", nil, "listen"},
		{"bad port", "ops_listen: 127.0.0.1:99999\n", nil, "ops_listen"},
		{"bad cidr", "ops_allowlist: [10.0.0.0/33]\n", nil, "ops_allowlist"},
		{"open ops allowlist", "ops_allowlist: [0.0.0.0/0]\n", nil, "ops_allowlist"},
		{"empty ops allowlist", "ops_allowlist: []\n", nil, "ops_allowlist"},
		{"plain http in public", "listen: 0.0.0.0:8080\ntls:\n  mode: off\n", nil, "allow_insecure_http"},
		{"files without cert", "tls:\n  mode: files\n", nil, "tls.cert_file"},
		{"acme without domains", "tls:\n  mode: acme\n", nil, "tls.acme_domains"},
		{"bad log level", "log:\n  level: chatty\n", nil, "log.level"},
		{"bad env value", "", map[string]string{"BULWARK_DATABASE_MAX_OPEN_ORGS": "many"}, "BULWARK_DATABASE_MAX_OPEN_ORGS"},
		{"remote postgres without tls", "database:\n  driver: postgres\n  url: postgres://u:p@db.example.com/bulwark?sslmode=disable\n", nil, "database.url"},
		{"yaml syntax", "tls: [\n", nil, "bulwark.yaml:2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "bulwark.yaml")
			if err := os.WriteFile(path, []byte(c.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			env := map[string]string{"BULWARK_DATA_DIR": dir}
			for k, v := range c.env {
				env[k] = v
			}
			stdout, stderr, code := call(t, env, "config", "check", "--config", path)
			if code != 1 {
				t.Fatalf("exit %d, want 1; stdout %q stderr %q", code, stdout, stderr)
			}
			if strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, c.key) {
				t.Fatalf("stderr %q: want one line naming %q", stderr, c.key)
			}
		})
	}
}

func TestConfigCheck_PrintsEffectiveConfigWithSecretsMasked(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{
		"BULWARK_DATA_DIR":        dir,
		"BULWARK_DATABASE_DRIVER": "postgres",
		"BULWARK_DATABASE_URL":    "postgres://bulwark:hunter2-secret@127.0.0.1:5432/bulwark?sslmode=disable",
	}
	stdout, stderr, code := call(t, env, "config", "check", "--listen", "127.0.0.1:18443")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if strings.Contains(stdout, "hunter2-secret") {
		t.Fatalf("the password was printed:\n%s", stdout)
	}
	for _, want := range []string{"127.0.0.1:18443", "postgres", dir, "bulwark:"} {
		if !strings.Contains(stdout, want) {
			t.Fatalf("effective config lacks %q:\n%s", want, stdout)
		}
	}
}

// syncBuffer is a bytes.Buffer safe to read while run writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestServe_InProcessServesTLSAndStopsCleanly(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"BULWARK_DATA_DIR": dir}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"bulwark", "serve", "--listen", "127.0.0.1:0", "--ops-listen", "127.0.0.1:0"},
			func(k string) string { return env[k] }, strings.NewReader(""), &stdout, &stderr)
	}()
	public, ops := "", ""
	for deadline := time.Now().Add(30 * time.Second); public == "" || ops == ""; {
		if time.Now().After(deadline) {
			t.Fatalf("serve printed no addresses; stdout %q stderr %q", stdout.String(), stderr.String())
		}
		select {
		case err := <-errc:
			t.Fatalf("serve returned early: %v; stderr %s", err, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		for _, l := range strings.Split(stdout.String(), "\n") {
			f := strings.Fields(l)
			if len(f) == 2 && f[0] == "public:" {
				public = f[1]
			}
			if len(f) == 2 && f[0] == "ops:" {
				ops = f[1]
			}
		}
	}
	if !strings.Contains(stdout.String(), filepath.Join(dir, "tls", "ca.pem")) {
		t.Fatalf("serve did not print the CA path:\n%s", stdout.String())
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "tls", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}

	get := func(url string) (*http.Response, string) {
		t.Helper()
		resp, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, _ := get(public + "/readyz")
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Fatalf("public /readyz: %s over %s", resp.Status, resp.Proto)
	}
	if hsts := resp.Header.Get("Strict-Transport-Security"); !strings.Contains(hsts, "max-age=") {
		t.Fatalf("no HSTS header: %q", hsts)
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Fatal("no X-Request-Id")
	}
	if resp, _ := get(public + "/metrics"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("public /metrics: %s, want 404", resp.Status)
	}
	resp, body := get(ops + "/metrics")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("ops /metrics: %s", resp.Status)
	}
	resp, body = get(public + "/no/such/path")
	if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("unknown path: %s %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	var problem map[string]any
	if err := json.Unmarshal([]byte(body), &problem); err != nil || problem["status"] != float64(404) {
		t.Fatalf("problem body %q", body)
	}

	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("serve returned %v after its context ended", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	for _, l := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if l != "" && !json.Valid([]byte(l)) {
			t.Fatalf("a log line is not JSON: %q", l)
		}
		if strings.Contains(l, "127.0.0.1") {
			t.Fatalf("a log line holds a raw IP: %q", l)
		}
	}
}

func TestOrgCommands_LifecycleOnBothDrivers(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		env := storageEnv(t, opts)
		stdout, stderr, code := call(t, env, "org", "create", "--name", "Acme Corp", "--slug", "acme", "--json")
		if code != 0 {
			t.Fatalf("create: exit %d %s", code, stderr)
		}
		var created struct{ ID, Slug, Status string }
		if err := json.Unmarshal([]byte(stdout), &created); err != nil || created.Slug != "acme" || created.Status != "active" {
			t.Fatalf("create printed %q", stdout)
		}
		if _, stderr, code = call(t, env, "org", "create", "--name", "Acme 2", "--slug", "acme"); code != 1 || !strings.Contains(stderr, "acme") {
			t.Fatalf("duplicate slug: exit %d %q", code, stderr)
		}
		if _, stderr, code = call(t, env, "org", "create", "--name", "Bad", "--slug", "Bad Slug!"); code != 1 || !strings.Contains(stderr, "slug") {
			t.Fatalf("invalid slug: exit %d %q", code, stderr)
		}
		if _, stderr, code = call(t, env, "org", "create", "--name", "Admin", "--slug", "admin"); code != 1 || !strings.Contains(stderr, "slug") {
			t.Fatalf("reserved slug: exit %d %q", code, stderr)
		}
		if stdout, _, code = call(t, env, "org", "delete", "acme", "--dry-run"); code != 0 || !strings.Contains(stdout, "would delete") {
			t.Fatalf("dry run: exit %d %q", code, stdout)
		}
		for _, step := range []struct{ sub, status string }{{"suspend", "suspended"}, {"resume", "active"}} {
			stdout, stderr, code = call(t, env, "org", step.sub, "acme", "--json")
			if code != 0 || !strings.Contains(stdout, `"status":"`+step.status+`"`) {
				t.Fatalf("%s: exit %d %q %q", step.sub, code, stdout, stderr)
			}
		}
		if stdout, _, code = call(t, env, "migrate"); code != 0 || !strings.Contains(stdout, "1 org databases") {
			t.Fatalf("migrate: exit %d %q", code, stdout)
		}
		if _, stderr, code = call(t, env, "org", "delete", "acme"); code != 0 {
			t.Fatalf("delete: exit %d %s", code, stderr)
		}
		if _, stderr, code = call(t, env, "org", "suspend", "acme"); code != 1 || !strings.Contains(stderr, "not found") {
			t.Fatalf("suspend of a deleted org: exit %d %q", code, stderr)
		}
		stdout, _, code = call(t, env, "org", "list", "--json")
		if code != 0 || strings.Contains(stdout, "acme") {
			t.Fatalf("list after delete: exit %d %q", code, stdout)
		}
	})
}
