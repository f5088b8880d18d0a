package kms

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/tink-crypto/tink-go-hcvault/v2/integration/hcvault"
)

// DefaultTimeout bounds one call to a key service when the options leave
// Timeout zero.
const DefaultTimeout = 10 * time.Second

// VaultOptions configures NewVault. Only these fields are used: the
// VAULT_* environment variables that Vault's own client reads (VAULT_TOKEN,
// VAULT_NAMESPACE, VAULT_HEADERS, ...) are overridden, so the configuration
// file is the whole truth.
type VaultOptions struct {
	// Address is the server's base URL, e.g. "https://vault.internal:8200".
	// Plain http is accepted only for a loopback address.
	Address string
	// Token authenticates every request. It needs update on
	// TRANSIT/encrypt/NAME and TRANSIT/decrypt/NAME, nothing else.
	Token string
	// KeyPath names the transit key as "MOUNT/keys/NAME", e.g.
	// "transit/keys/bulwark". The key must not be derived (derived=false)
	// and of an AEAD type (aes256-gcm96, the default, or chacha20-poly1305),
	// so that Vault binds the associated data.
	KeyPath string
	// CACertFile is a PEM file of the certificates that may sign the
	// server's; empty means the system's roots.
	CACertFile string
	// Timeout bounds each call (the caller's context may end it sooner);
	// zero means DefaultTimeout.
	Timeout time.Duration
}

// Vault is a key-encryption key held in the transit secrets engine of
// HashiCorp Vault or OpenBao: the key never leaves the server, which
// encrypts and decrypts for us. It is safe for concurrent use.
type Vault struct {
	id      string
	keyPath string // "/MOUNT/keys/NAME", the form Tink's hcvault expects
	timeout time.Duration
	client  *api.Client
	calls   *callContexts
}

// keyPathPattern accepts "MOUNT/keys/NAME" where MOUNT may have several
// segments; segments are Vault's path characters, never "." or "..".
var keyPathPattern = regexp.MustCompile(`^([A-Za-z0-9_-][A-Za-z0-9._-]*/)+keys/[A-Za-z0-9_-][A-Za-z0-9._-]*$`)

// NewVault checks opts, then makes one round trip to the server to prove
// that the token may use the key and that the server binds associated data
// (a server that silently ignored it, as old versions do, would make every
// wrapped key movable between orgs). Returns an error wrapping
// ErrUnavailable if the server cannot be reached, ErrPermission if it
// refuses the token, and a plain error for anything wrong in opts.
func NewVault(ctx context.Context, opts VaultOptions) (*Vault, error) {
	addr, err := vaultAddress(opts.Address)
	if err != nil {
		return nil, err
	}
	if opts.Token == "" {
		return nil, errors.New("vault: token is empty")
	}
	if strings.ContainsAny(opts.Token, " \t\r\n") {
		return nil, errors.New("vault: token contains white space (a trailing newline from the file it came from?)")
	}
	keyPath := strings.Trim(opts.KeyPath, "/")
	if !keyPathPattern.MatchString(keyPath) {
		return nil, fmt.Errorf("vault: key path %q is not of the form MOUNT/keys/NAME, e.g. transit/keys/bulwark", opts.KeyPath)
	}
	if opts.Timeout < 0 {
		return nil, fmt.Errorf("vault: timeout %v is negative", opts.Timeout)
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if opts.CACertFile != "" {
		pool, err := certPool(opts.CACertFile)
		if err != nil {
			return nil, fmt.Errorf("vault: %w", err)
		}
		tlsConfig.RootCAs = pool
	}

	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = tlsConfig
	calls := &callContexts{base: transport}
	client, err := api.NewClient(&api.Config{
		Address: addr.String(),
		HttpClient: &http.Client{
			Transport: calls,
			// Vault's client follows one redirect itself, refusing a
			// downgrade to http; net/http must not follow others.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		// One attempt per call: the caller decides whether and when to
		// retry, within its own deadline.
		MaxRetries: 0,
	})
	if err != nil {
		return nil, fmt.Errorf("vault: client: %w", err)
	}
	client.SetToken(opts.Token)
	headers := http.Header{}
	headers.Set(api.RequestHeaderName, "true")
	client.SetHeaders(headers) // drops VAULT_NAMESPACE and VAULT_HEADERS

	v := &Vault{
		id:      "hcvault://" + addr.Host + "/" + keyPath,
		keyPath: "/" + keyPath,
		timeout: timeout,
		client:  client,
		calls:   calls,
	}
	if err := v.probe(ctx); err != nil {
		return nil, err
	}
	return v, nil
}

// vaultAddress parses and checks the server address.
func vaultAddress(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("vault: address is empty")
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("vault: address: %w", err)
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, fmt.Errorf("vault: address %q must start with https:// (or http:// on loopback)", s)
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("vault: address %q has no host", s)
	case u.User != nil:
		return nil, errors.New("vault: address must not contain user information; put the token in the token setting")
	case u.RawQuery != "" || u.Fragment != "" || strings.Trim(u.Path, "/") != "":
		return nil, fmt.Errorf("vault: address %q must be scheme://host[:port] only", s)
	case u.Scheme == "http" && !isLoopback(u.Hostname()):
		return nil, fmt.Errorf("vault: address %q is plain http to a host that is not loopback: the token would cross the network in clear; use https", s)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("vault: address %q has a bad port", s)
		}
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func certPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("CA certificate file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA certificate file %s holds no PEM certificate", file)
	}
	return pool, nil
}

// ID returns the key's Tink URI, "hcvault://HOST[:PORT]/MOUNT/keys/NAME".
// It holds no secret. It changes if the server's address does.
func (v *Vault) ID() string { return v.id }

// Encrypt has the server encrypt plaintext under the transit key, bound to
// associatedData. The ciphertext is Vault's text form, "vault:vN:...",
// which names the key version. plaintext must not be empty. Returns an
// error wrapping ErrUnavailable if the server cannot be used now, or
// ErrPermission if it refuses the token.
func (v *Vault) Encrypt(ctx context.Context, plaintext, associatedData []byte) ([]byte, error) {
	if len(plaintext) == 0 {
		// An empty plaintext could not be told from the empty answer some
		// proxies give for a missing path, so it is never wrapped.
		return nil, errors.New("vault: encrypt: plaintext is empty")
	}
	ctx, cancel := context.WithTimeout(ctx, v.timeout)
	defer cancel()
	aead, done, err := v.aead(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	ct, err := aead.Encrypt(plaintext, associatedData)
	if err != nil {
		return nil, v.callError(ctx, "vault: encrypt", false, err)
	}
	return ct, nil
}

// Decrypt has the server decrypt ciphertext, which must have been made by
// Encrypt under the same key (any version the server still keeps) with the
// same associatedData. Returns an error wrapping ErrDecrypt if the server
// refuses the ciphertext or the associated data, ErrUnavailable if the
// server cannot be used now, or ErrPermission if it refuses the token.
func (v *Vault) Decrypt(ctx context.Context, ciphertext, associatedData []byte) ([]byte, error) {
	if !bytes.HasPrefix(ciphertext, []byte("vault:v")) {
		return nil, fmt.Errorf("vault: decrypt: not a Vault transit ciphertext: %w", ErrDecrypt)
	}
	ctx, cancel := context.WithTimeout(ctx, v.timeout)
	defer cancel()
	aead, done, err := v.aead(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	pt, err := aead.Decrypt(ciphertext, associatedData)
	if err != nil {
		return nil, v.callError(ctx, "vault: decrypt", true, err)
	}
	if len(pt) == 0 {
		return nil, errors.New("vault: decrypt: the server returned no plaintext")
	}
	return pt, nil
}

// aead returns Tink's transit AEAD on a client whose requests carry ctx.
// Tink's hcvault AEAD calls Vault without a context; the callContexts
// transport puts ctx back on each of its requests, so cancellation and
// deadlines reach the connection. done must be called when the call ends.
func (v *Vault) aead(ctx context.Context) (aead interface {
	Encrypt(plaintext, associatedData []byte) ([]byte, error)
	Decrypt(ciphertext, associatedData []byte) ([]byte, error)
}, done func(), err error) {
	id, done := v.calls.bind(ctx)
	client := v.client.WithRequestCallbacks(func(r *api.Request) { r.Headers.Set(callHeader, id) })
	// The default option sends associated data as transit's
	// "associated_data", which AEAD key types authenticate; the legacy
	// "context" parameter is only a key-derivation input.
	a, err := hcvault.NewAEAD(v.keyPath, client.Logical())
	if err != nil {
		done()
		return nil, nil, fmt.Errorf("vault: %w", err)
	}
	return a, done, nil
}

// callError classifies an error of one encrypt or decrypt call.
func (v *Vault) callError(ctx context.Context, op string, decrypting bool, err error) error {
	var re *api.ResponseError
	if errors.As(err, &re) {
		return statusError(op, re.StatusCode, decrypting, err)
	}
	return transportError(ctx, op, err)
}

// callHeader carries the number of the call a request belongs to from
// Vault's client to callContexts; it never leaves the process.
const callHeader = "X-Bulwark-Kms-Call"

// callContexts is an http.RoundTripper that gives each request the context
// of the call it belongs to, found by the number in its callHeader.
type callContexts struct {
	base  http.RoundTripper
	next  atomic.Uint64
	calls sync.Map // string → context.Context
}

func (c *callContexts) bind(ctx context.Context) (id string, done func()) {
	id = strconv.FormatUint(c.next.Add(1), 10)
	c.calls.Store(id, ctx)
	return id, func() { c.calls.Delete(id) }
}

func (c *callContexts) RoundTrip(req *http.Request) (*http.Response, error) {
	id := req.Header.Get(callHeader)
	if id == "" {
		return c.base.RoundTrip(req)
	}
	ctx := req.Context()
	if v, ok := c.calls.Load(id); ok {
		ctx = v.(context.Context)
	}
	req = req.Clone(ctx)
	req.Header.Del(callHeader)
	return c.base.RoundTrip(req)
}

// probe checks the key at start (see probe).
func (v *Vault) probe(ctx context.Context) error {
	return probe(ctx, v, "vault", "ignores associated data: the server is too old to know transit's associated_data, or the key is not an AEAD type")
}
