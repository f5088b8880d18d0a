package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/quotedprintable"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

// call makes one JSON request to the public listener and returns the
// status and the body.
func (in *instance) call(t *testing.T, method, path, token string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, in.publicURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := in.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

var tokenRe = regexp.MustCompile(`token=([A-Za-z0-9_\-]+)`)

// mailedToken waits for a message to the outbox (DATA/mail/outbox) and
// returns the token of its link.
func mailedToken(t *testing.T, dataDir string) string {
	t.Helper()
	for range 100 {
		files, _ := filepath.Glob(filepath.Join(dataDir, "mail", "outbox", "*.eml"))
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			text, _ := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(raw)))
			if m := tokenRe.FindSubmatch(text); m != nil {
				return string(m[1])
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("no link mailed to the outbox")
	return ""
}

// The built binary as a user meets it: sign up, confirm the address from
// the mailed link, log in, make an org, a collection and a record, and
// read it back; the org's audit log then verifies from the command line.
func TestBinary_AccountOrgAndRecords(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		if opts.DataDir == "" {
			opts.DataDir = t.TempDir()
		}
		in := start(t, opts)
		const email, pw = "ann@example.com", "a long enough passphrase 2026"
		if st, b := in.call(t, "POST", "/v1/auth/signup", "", map[string]string{"email": email, "password": pw, "name": "Ann"}); st != 201 {
			t.Fatalf("signup: %d %s", st, b)
		}
		if st, b := in.call(t, "POST", "/v1/auth/verify-email", "", map[string]string{"token": mailedToken(t, opts.DataDir)}); st != 204 {
			t.Fatalf("verify: %d %s", st, b)
		}
		st, b := in.call(t, "POST", "/v1/auth/login", "", map[string]string{"email": email, "password": pw})
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		if st != 200 || json.Unmarshal(b, &tok) != nil || tok.AccessToken == "" {
			t.Fatalf("login: %d %s", st, b)
		}
		if st, b := in.call(t, "POST", "/v1/orgs", tok.AccessToken, map[string]string{"name": "Acme", "slug": "acme"}); st != 201 {
			t.Fatalf("org: %d %s", st, b)
		}
		coll := map[string]any{"name": "patients", "fields": []map[string]any{
			{"name": "name", "type": "text", "required": true, "indexed": true},
			{"name": "diagnosis", "type": "text", "sensitive": true}}}
		if st, b := in.call(t, "POST", "/v1/orgs/acme/collections", tok.AccessToken, coll); st != 201 {
			t.Fatalf("collection: %d %s", st, b)
		}
		st, b = in.call(t, "POST", "/v1/orgs/acme/collections/patients/records", tok.AccessToken, map[string]string{"name": "Bo", "diagnosis": "E2EMARKER"})
		var rec struct{ ID string }
		if st != 201 || json.Unmarshal(b, &rec) != nil {
			t.Fatalf("record: %d %s", st, b)
		}
		st, b = in.call(t, "GET", "/v1/orgs/acme/collections/patients/records/"+rec.ID, tok.AccessToken, nil)
		if st != 200 || !strings.Contains(string(b), `"diagnosis":"E2EMARKER"`) {
			t.Fatalf("read: %d %s", st, b)
		}
		if out, err := cli(t, in.env, "audit", "verify", "--org", "acme"); err != nil {
			t.Fatalf("audit verify: %v\n%s", err, out)
		}
		if strings.Contains(in.stderr.String(), "E2EMARKER") || strings.Contains(in.stderr.String(), email) {
			t.Fatal("the server's log holds a record's content or an e-mail address")
		}
	})
}
