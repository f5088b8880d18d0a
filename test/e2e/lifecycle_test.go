package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"bulwark/internal/apperr"
	"bulwark/internal/org"
	"bulwark/internal/store"
	"bulwark/internal/storetest"

	_ "github.com/jackc/pgx/v5/stdlib"
)

// instance is one bulwark process under test.
type instance struct {
	t         *testing.T
	env       []string
	cmd       *exec.Cmd
	publicURL string
	opsURL    string
	client    *http.Client
	stderr    *lockedBuffer
	exited    chan struct{} // closed when the process has ended
	exitErr   error         // valid once exited is closed
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// envFor is the environment that points a bulwark process at opts' storage.
func envFor(opts store.Options) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"BULWARK_DATA_DIR=" + opts.DataDir,
		"BULWARK_DATABASE_DRIVER=" + string(opts.Driver),
		"BULWARK_LISTEN=127.0.0.1:0",
		"BULWARK_OPS_LISTEN=127.0.0.1:0",
	}
	if opts.URL != "" {
		env = append(env, "BULWARK_DATABASE_URL="+opts.URL)
	}
	return env
}

// cli runs one bulwark command to completion and returns its stdout.
func cli(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = env
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("bulwark %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// start runs `bulwark serve` and waits until its public /readyz answers 200
// over TLS, trusting only the CA the process made under DATA/tls.
func start(t *testing.T, opts store.Options) *instance {
	t.Helper()
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir() // PostgreSQL still keeps TLS and key files on disk
	}
	in := &instance{t: t, env: envFor(opts), stderr: &lockedBuffer{}, exited: make(chan struct{})}
	in.cmd = exec.Command(binary, "serve")
	in.cmd.Env = in.env
	in.cmd.Stderr = in.stderr
	stdout, err := in.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		in.exitErr = in.cmd.Wait()
		close(in.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-in.exited:
		default:
			in.cmd.Process.Kill()
			<-in.exited
		}
	})

	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(60 * time.Second)
	for in.publicURL == "" || in.opsURL == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("bulwark serve exited before it listened; stderr:\n%s", in.stderr.String())
			}
			f := strings.Fields(l)
			if len(f) == 2 && f[0] == "public:" {
				in.publicURL = f[1]
			}
			if len(f) == 2 && f[0] == "ops:" {
				in.opsURL = f[1]
			}
		case <-deadline:
			t.Fatalf("bulwark serve did not print its addresses; stderr:\n%s", in.stderr.String())
		}
	}
	go func() {
		for range lines {
		}
	}()

	caPEM, err := os.ReadFile(filepath.Join(opts.DataDir, "tls", "ca.pem"))
	if err != nil {
		t.Fatalf("the local CA was not written: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("ca.pem holds no certificate")
	}
	in.client = &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true},
	}
	for i := 0; ; i++ {
		resp, err := in.client.Get(in.publicURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if i > 200 {
			t.Fatalf("/readyz never answered 200 (last error %v); stderr:\n%s", err, in.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return in
}

type orgOut struct {
	ID     string `json:"id"`
	Slug   string `json:"slug"`
	Status string `json:"status"`
}

func TestBinary_OrgLifecycleAndGracefulShutdown(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		in := start(t, opts)

		// Three orgs created by the command line while the server runs, each
		// with a database of its own.
		orgs := map[string]orgOut{}
		for _, slug := range []string{"alpha", "bravo", "charlie"} {
			out, err := cli(t, in.env, "org", "create", "--name", strings.ToUpper(slug)+" Inc", "--slug", slug, "--json")
			if err != nil {
				t.Fatal(err)
			}
			var o orgOut
			if err := json.Unmarshal([]byte(out), &o); err != nil {
				t.Fatalf("org create --json printed %q: %v", out, err)
			}
			if o.Slug != slug || o.Status != "active" || o.ID == "" {
				t.Fatalf("created %+v", o)
			}
			if !storetest.OrgDBExists(t, opts, o.ID) {
				t.Fatalf("org %s has no database of its own", slug)
			}
			orgs[slug] = o
		}
		if _, err := cli(t, in.env, "org", "create", "--name", "Again", "--slug", "alpha"); err == nil ||
			!strings.Contains(err.Error(), "exit status 1") || !strings.Contains(err.Error(), "alpha") {
			t.Fatalf("a duplicate slug must fail with a message naming it, got %v", err)
		}

		// Suspend bravo: listed as suspended, and its database can no longer be opened.
		if _, err := cli(t, in.env, "org", "suspend", "bravo"); err != nil {
			t.Fatal(err)
		}
		out, err := cli(t, in.env, "org", "list", "--json")
		if err != nil {
			t.Fatal(err)
		}
		var list struct{ Items []orgOut }
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatal(err)
		}
		status := map[string]string{}
		for _, o := range list.Items {
			status[o.Slug] = o.Status
		}
		if status["alpha"] != "active" || status["bravo"] != "suspended" || status["charlie"] != "active" {
			t.Fatalf("org list statuses = %v", status)
		}
		st, err := store.Open(context.Background(), opts, org.ControlSchema(), org.OrgSchema())
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		svc := org.NewService(st, nil)
		if h, err := svc.Open(context.Background(), "bravo"); apperr.CodeOf(err) != apperr.Forbidden {
			if h != nil {
				h.Release()
			}
			t.Fatalf("opening the suspended org: err = %v, want forbidden", err)
		}
		h, err := svc.Open(context.Background(), "alpha")
		if err != nil {
			t.Fatalf("opening an active org: %v", err)
		}
		h.Release()

		// Delete charlie: its database is gone and it is no longer listed.
		if _, err := cli(t, in.env, "org", "delete", "charlie"); err != nil {
			t.Fatal(err)
		}
		if storetest.OrgDBExists(t, opts, orgs["charlie"].ID) {
			t.Fatal("the deleted org's database still exists")
		}
		if _, err := svc.Open(context.Background(), "charlie"); apperr.CodeOf(err) != apperr.NotFound {
			t.Fatalf("opening the deleted org: err = %v, want not_found", err)
		}

		// SIGTERM while a slow request is in flight: it completes, then the
		// process exits 0 and its listeners are closed.
		type result struct {
			status int
			body   string
			err    error
		}
		done := make(chan result, 1)
		started := make(chan struct{})
		go func() {
			resp, err := in.client.Get(in.publicURL + "/debug/slow?ms=1500")
			if err != nil {
				done <- result{err: err}
				return
			}
			defer resp.Body.Close()
			close(started) // headers are flushed as soon as the handler starts
			b, err := io.ReadAll(resp.Body)
			done <- result{status: resp.StatusCode, body: string(b), err: err}
		}()
		select {
		case <-started:
		case r := <-done:
			t.Fatalf("slow request ended early: %+v", r)
		case <-time.After(20 * time.Second):
			t.Fatal("slow request never started")
		}
		if err := in.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		r := <-done
		if r.err != nil || r.status != http.StatusOK || !strings.Contains(r.body, "done") {
			t.Fatalf("the in-flight request did not complete: %+v; stderr:\n%s", r, in.stderr.String())
		}
		select {
		case <-in.exited:
			if in.exitErr != nil {
				t.Fatalf("bulwark exited with %v after SIGTERM; stderr:\n%s", in.exitErr, in.stderr.String())
			}
		case <-time.After(30 * time.Second):
			t.Fatal("bulwark did not exit after SIGTERM")
		}
		if _, err := in.client.Get(in.publicURL + "/readyz"); err == nil {
			t.Fatal("the public listener still answers after exit")
		}
	})
}
