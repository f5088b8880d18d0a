package kms

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestNewVault_RejectsBadOptions(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := VaultOptions{Address: "https://vault.example:8200", Token: "s.token", KeyPath: "transit/keys/bulwark"}
	tests := []struct {
		name string
		edit func(*VaultOptions)
		want string
	}{
		{"empty address", func(o *VaultOptions) { o.Address = "" }, "address is empty"},
		{"other scheme", func(o *VaultOptions) { o.Address = "ftp://vault.example" }, "must start with https://"},
		{"plain http off loopback", func(o *VaultOptions) { o.Address = "http://vault.example:8200" }, "not loopback"},
		{"user info", func(o *VaultOptions) { o.Address = "https://root:secret@vault.example" }, "user information"},
		{"path in address", func(o *VaultOptions) { o.Address = "https://vault.example/v1" }, "scheme://host[:port] only"},
		{"empty token", func(o *VaultOptions) { o.Token = "" }, "token is empty"},
		{"token with newline", func(o *VaultOptions) { o.Token = "s.token\n" }, "white space"},
		{"key path without keys", func(o *VaultOptions) { o.KeyPath = "transit/bulwark" }, "MOUNT/keys/NAME"},
		{"key path with dot-dot", func(o *VaultOptions) { o.KeyPath = "../keys/bulwark" }, "MOUNT/keys/NAME"},
		{"missing CA file", func(o *VaultOptions) { o.CACertFile = filepath.Join(dir, "none.pem") }, "CA certificate file"},
		{"CA file not PEM", func(o *VaultOptions) { o.CACertFile = notPEM }, "holds no PEM certificate"},
		{"negative timeout", func(o *VaultOptions) { o.Timeout = -time.Second }, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := good
			tt.edit(&o)
			_, err := NewVault(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewVault error = %v, want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatalf("error reveals the password in the address: %v", err)
			}
		})
	}
}

// fakeTransit answers transit encrypt and decrypt like Vault for one
// aes256-gcm96 key, binding associated_data, and can be switched to fail.
type fakeTransit struct {
	aead      cipher.AEAD
	token     string
	mode      atomic.Value // "", "503", "hang", "ignore-ad"
	requested atomic.Int64
}

func newFakeTransit(t *testing.T) (*fakeTransit, *httptest.Server) {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(block)
	f := &fakeTransit{aead: aead, token: "root-token"}
	f.mode.Store("")
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeTransit) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.requested.Add(1)
	fail := func(status int, msg string) {
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]any{"errors": []string{msg}})
	}
	switch f.mode.Load().(string) {
	case "503":
		fail(503, "Vault is sealed")
		return
	case "hang":
		// Reading the body lets the server notice the client hang up.
		io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
		return
	}
	if r.Header.Get("X-Vault-Token") != f.token {
		fail(403, "permission denied")
		return
	}
	if r.Header.Get(callHeader) != "" {
		fail(400, "internal header leaked to the server")
		return
	}
	var req map[string]string
	json.NewDecoder(r.Body).Decode(&req)
	ad, _ := base64.StdEncoding.DecodeString(req["associated_data"])
	if f.mode.Load().(string) == "ignore-ad" {
		ad = nil
	}
	reply := func(data map[string]string) { json.NewEncoder(w).Encode(map[string]any{"data": data}) }
	switch r.URL.Path {
	case "/v1/transit/encrypt/bulwark":
		pt, _ := base64.StdEncoding.DecodeString(req["plaintext"])
		nonce := make([]byte, 12)
		rand.Read(nonce)
		reply(map[string]string{"ciphertext": "vault:v1:" + base64.StdEncoding.EncodeToString(f.aead.Seal(nonce, nonce, pt, ad))})
	case "/v1/transit/decrypt/bulwark":
		raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(req["ciphertext"], "vault:v1:"))
		if err != nil || len(raw) < 12 {
			fail(400, "invalid ciphertext")
			return
		}
		pt, err := f.aead.Open(nil, raw[:12], raw[12:], ad)
		if err != nil {
			fail(400, "cipher: message authentication failed")
			return
		}
		reply(map[string]string{"plaintext": base64.StdEncoding.EncodeToString(pt)})
	default:
		fail(404, "no handler for route")
	}
}

func fakeVault(t *testing.T, f *fakeTransit, srv *httptest.Server) *Vault {
	t.Helper()
	v, err := NewVault(context.Background(), VaultOptions{Address: srv.URL, Token: f.token, KeyPath: "transit/keys/bulwark", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("NewVault: %v", err)
	}
	return v
}

func TestVault_FakeTransit_RoundTripAndBinding(t *testing.T) {
	f, srv := newFakeTransit(t)
	v := fakeVault(t, f, srv)
	testVaultRoundTripAndBinding(t, v)
	if strings.Contains(v.ID(), f.token) || !strings.HasPrefix(v.ID(), "hcvault://127.0.0.1:") {
		t.Fatalf("ID() = %q", v.ID())
	}
}

// testVaultRoundTripAndBinding is run against the fake and a real server.
func testVaultRoundTripAndBinding(t *testing.T, v *Vault) {
	t.Helper()
	ctx := context.Background()
	dek := []byte("0123456789abcdef0123456789abcdef")
	ad := []byte("org:acme dek:v1")
	ct, err := v.Encrypt(ctx, dek, ad)
	if err != nil {
		t.Fatalf("Encrypt: %v", err)
	}
	pt, err := v.Decrypt(ctx, ct, ad)
	if err != nil || string(pt) != string(dek) {
		t.Fatalf("Decrypt = %q, %v; want the plaintext back", pt, err)
	}
	tampered := []byte(string(ct))
	tampered[len(tampered)-3] ^= 'A' ^ 'B'
	for name, c := range map[string]struct{ ct, ad []byte }{
		"other org's associated data": {ct, []byte("org:other dek:v1")},
		"no associated data":          {ct, nil},
		"tampered ciphertext":         {tampered, ad},
		"not a transit ciphertext":    {[]byte("garbage"), ad},
	} {
		_, err := v.Decrypt(ctx, c.ct, c.ad)
		if !errors.Is(err, ErrDecrypt) || errors.Is(err, ErrUnavailable) {
			t.Errorf("%s: Decrypt error = %v, want ErrDecrypt", name, err)
		}
	}
}

func TestVault_FakeTransit_Failures(t *testing.T) {
	f, srv := newFakeTransit(t)
	v := fakeVault(t, f, srv)
	ctx := context.Background()
	ct, err := v.Encrypt(ctx, []byte("key"), nil)
	if err != nil {
		t.Fatal(err)
	}

	f.mode.Store("503")
	if _, err := v.Decrypt(ctx, ct, nil); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrDecrypt) {
		t.Errorf("sealed server: error = %v, want ErrUnavailable", err)
	}

	f.mode.Store("hang")
	start := time.Now()
	tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err = v.Decrypt(tctx, ct, nil)
	cancel()
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Errorf("hanging server, 200 ms deadline: error = %v after %v, want ErrUnavailable within 1 s", err, time.Since(start))
	}
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err = v.Encrypt(cctx, []byte("key"), nil)
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) {
		t.Errorf("cancelled call: error = %v, want context.Canceled and not ErrUnavailable", err)
	}
	short, err := NewVault(ctx, VaultOptions{Address: srv.URL, Token: f.token, KeyPath: "transit/keys/bulwark", Timeout: 300 * time.Millisecond})
	if !errors.Is(err, ErrUnavailable) || short != nil {
		t.Errorf("NewVault against a hanging server with Timeout 300 ms: %v, want ErrUnavailable", err)
	}

	f.mode.Store("")
	srv.CloseClientConnections()
	srv.Close()
	if _, err := v.Decrypt(ctx, ct, nil); !errors.Is(err, ErrUnavailable) {
		t.Errorf("stopped server: error = %v, want ErrUnavailable", err)
	}
}

func TestNewVault_BadTokenIsPermissionError(t *testing.T) {
	f, srv := newFakeTransit(t)
	_, err := NewVault(context.Background(), VaultOptions{Address: srv.URL, Token: "wrong-token", KeyPath: "transit/keys/bulwark"})
	if !errors.Is(err, ErrPermission) || errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("error = %v, want ErrPermission saying permission denied", err)
	}
	if strings.Contains(err.Error(), "wrong-token") || strings.Contains(err.Error(), f.token) {
		t.Fatalf("error reveals a token: %v", err)
	}
}

func TestNewVault_RefusesServerThatIgnoresAssociatedData(t *testing.T) {
	f, srv := newFakeTransit(t)
	f.mode.Store("ignore-ad")
	_, err := NewVault(context.Background(), VaultOptions{Address: srv.URL, Token: f.token, KeyPath: "transit/keys/bulwark"})
	if err == nil || !strings.Contains(err.Error(), "ignores associated data") {
		t.Fatalf("error = %v, want a refusal of a server that ignores associated data", err)
	}
}
