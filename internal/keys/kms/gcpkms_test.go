package kms

import (
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"hash/crc32"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"github.com/google/uuid"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"bulwark/internal/keys"
	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

// The fake service's keys: the one it has, one the caller may not use, and
// the URIs that name them.
const (
	fakeGCPKey       = "projects/bulwark-test/locations/europe-west1/keyRings/bulwark/cryptoKeys/kek"
	fakeGCPForbidden = "projects/bulwark-test/locations/europe-west1/keyRings/bulwark/cryptoKeys/forbidden"
	fakeGCPKeyURI    = gcpURIPrefix + fakeGCPKey
)

// fakeCloudKMS is an in-process Cloud KMS for the symmetric Encrypt and
// Decrypt calls of one key (Google publishes no emulator): AES-256-GCM with
// the additional authenticated data bound, the CRC32C fields checked and
// filled as the service documents them, and the service's status codes.
// A mode switches it to misbehave.
type fakeCloudKMS struct {
	kmspb.UnimplementedKeyManagementServiceServer
	aead cipher.AEAD
	// mode is one of "", "hang", "bad-ciphertext-crc", "unverified-plaintext",
	// "unverified-aad", "other-key", "bad-plaintext-crc", "damaged-request".
	mode          atomic.Value
	authorization atomic.Value // the last request's authorization header
}

func newFakeCloudKMS(t *testing.T) *fakeCloudKMS {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(block)
	f := &fakeCloudKMS{aead: aead}
	f.mode.Store("")
	f.authorization.Store("")
	return f
}

// serve starts f on a free loopback port, with TLS when creds is not nil,
// and returns the server and its address; the server is stopped when the
// test ends.
func (f *fakeCloudKMS) serve(t *testing.T, creds credentials.TransportCredentials) (*grpc.Server, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var opts []grpc.ServerOption
	if creds != nil {
		opts = append(opts, grpc.Creds(creds))
	}
	srv := grpc.NewServer(opts...)
	kmspb.RegisterKeyManagementServiceServer(srv, f)
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
	return srv, l.Addr().String()
}

func fakeCRC(b []byte) int64 { return int64(crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))) }

// use answers as the service does before it looks at the data: it waits
// forever in mode "hang", refuses the forbidden key and knows no other.
func (f *fakeCloudKMS) use(ctx context.Context, name string) error {
	if md, ok := metadata.FromIncomingContext(ctx); ok && len(md.Get("authorization")) > 0 {
		f.authorization.Store(md.Get("authorization")[0])
	}
	if f.mode.Load() == "hang" {
		<-ctx.Done()
		return status.FromContextError(ctx.Err()).Err()
	}
	switch name {
	case fakeGCPKey:
		return nil
	case fakeGCPForbidden:
		return status.Errorf(codes.PermissionDenied, "Permission 'cloudkms.cryptoKeyVersions.useToEncrypt' denied on resource '%s' (or it may not exist).", name)
	default:
		return status.Errorf(codes.NotFound, "CryptoKey %s not found.", name)
	}
}

func badChecksum(field, data string) error {
	return status.Errorf(codes.InvalidArgument, "The checksum in field %s did not match the data in field %s.", field, data)
}

func (f *fakeCloudKMS) Encrypt(ctx context.Context, req *kmspb.EncryptRequest) (*kmspb.EncryptResponse, error) {
	if err := f.use(ctx, req.GetName()); err != nil {
		return nil, err
	}
	if c := req.GetPlaintextCrc32C(); c != nil && c.GetValue() != fakeCRC(req.GetPlaintext()) {
		return nil, badChecksum("plaintext_crc32c", "plaintext")
	}
	if c := req.GetAdditionalAuthenticatedDataCrc32C(); c != nil && c.GetValue() != fakeCRC(req.GetAdditionalAuthenticatedData()) {
		return nil, badChecksum("additional_authenticated_data_crc32c", "additional_authenticated_data")
	}
	if len(req.GetPlaintext()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "Plaintext is required.")
	}
	nonce := make([]byte, 12)
	rand.Read(nonce)
	ct := f.aead.Seal(nonce, nonce, req.GetPlaintext(), req.GetAdditionalAuthenticatedData())
	resp := &kmspb.EncryptResponse{
		Name:                    req.GetName() + "/cryptoKeyVersions/1",
		Ciphertext:              ct,
		CiphertextCrc32C:        wrapperspb.Int64(fakeCRC(ct)),
		VerifiedPlaintextCrc32C: req.GetPlaintextCrc32C() != nil,
		VerifiedAdditionalAuthenticatedDataCrc32C: req.GetAdditionalAuthenticatedDataCrc32C() != nil,
		ProtectionLevel: kmspb.ProtectionLevel_SOFTWARE,
	}
	switch f.mode.Load() {
	case "bad-ciphertext-crc":
		resp.CiphertextCrc32C.Value ^= 1
	case "unverified-plaintext":
		resp.VerifiedPlaintextCrc32C = false
	case "unverified-aad":
		resp.VerifiedAdditionalAuthenticatedDataCrc32C = false
	case "other-key":
		resp.Name = strings.Replace(resp.Name, "/cryptoKeys/kek/", "/cryptoKeys/kek-other/", 1)
	}
	return resp, nil
}

func (f *fakeCloudKMS) Decrypt(ctx context.Context, req *kmspb.DecryptRequest) (*kmspb.DecryptResponse, error) {
	if err := f.use(ctx, req.GetName()); err != nil {
		return nil, err
	}
	if c := req.GetCiphertextCrc32C(); f.mode.Load() == "damaged-request" || c != nil && c.GetValue() != fakeCRC(req.GetCiphertext()) {
		return nil, badChecksum("ciphertext_crc32c", "ciphertext")
	}
	if c := req.GetAdditionalAuthenticatedDataCrc32C(); c != nil && c.GetValue() != fakeCRC(req.GetAdditionalAuthenticatedData()) {
		return nil, badChecksum("additional_authenticated_data_crc32c", "additional_authenticated_data")
	}
	ct := req.GetCiphertext()
	if len(ct) < 12+16 {
		return nil, status.Error(codes.InvalidArgument, "Decryption failed: the ciphertext is invalid.")
	}
	pt, err := f.aead.Open(nil, ct[:12], ct[12:], req.GetAdditionalAuthenticatedData())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, "Decryption failed: verify that 'name' refers to the correct CryptoKey.")
	}
	resp := &kmspb.DecryptResponse{
		Plaintext:       pt,
		PlaintextCrc32C: wrapperspb.Int64(fakeCRC(pt)),
		UsedPrimary:     true,
		ProtectionLevel: kmspb.ProtectionLevel_SOFTWARE,
	}
	if f.mode.Load() == "bad-plaintext-crc" {
		resp.PlaintextCrc32C.Value ^= 1
	}
	return resp, nil
}

// fakeGCPOptions reaches a fake service at addr over plain gRPC without
// credentials, as the client library's own tests do.
func fakeGCPOptions(addr, keyURI string) GCPOptions {
	return GCPOptions{
		KeyURI:  keyURI,
		Timeout: 2 * time.Second,
		ClientOptions: []option.ClientOption{
			option.WithEndpoint(addr),
			option.WithoutAuthentication(),
			option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
		},
	}
}

func newFakeGCP(t *testing.T) (f *fakeCloudKMS, srv *grpc.Server, addr string, g *GCP) {
	t.Helper()
	f = newFakeCloudKMS(t)
	srv, addr = f.serve(t, nil)
	g, err := NewGCP(context.Background(), fakeGCPOptions(addr, fakeGCPKeyURI))
	if err != nil {
		t.Fatalf("NewGCP: %v", err)
	}
	t.Cleanup(func() { g.Close() })
	return f, srv, addr, g
}

func TestNewGCP_RejectsBadOptions(t *testing.T) {
	dir := t.TempDir()
	userCreds := filepath.Join(dir, "user.json")
	os.WriteFile(userCreds, []byte(`{"type":"authorized_user","client_id":"id","client_secret":"s3cr3t-value","refresh_token":"r3fr3sh-value"}`), 0o600)
	notJSON := filepath.Join(dir, "key.pem")
	os.WriteFile(notJSON, []byte("-----BEGIN PRIVATE KEY-----\nM1IIs3cr3t-value\n-----END PRIVATE KEY-----\n"), 0o600)
	good := GCPOptions{KeyURI: fakeGCPKeyURI}
	tests := []struct {
		name string
		edit func(*GCPOptions)
		want string
	}{
		{"empty key URI", func(o *GCPOptions) { o.KeyURI = "" }, "key URI is empty"},
		{"resource name without scheme", func(o *GCPOptions) { o.KeyURI = fakeGCPKey }, "must start with gcp-kms://"},
		{"other scheme", func(o *GCPOptions) { o.KeyURI = "aws-kms://arn:aws:kms:eu-west-1:111122223333:key/k" }, "not of the form gcp-kms://projects/PROJECT/locations/LOCATION/keyRings/RING/cryptoKeys/KEY"},
		{"key version", func(o *GCPOptions) { o.KeyURI = fakeGCPKeyURI + "/cryptoKeyVersions/1" }, "names a key version"},
		{"no key ring", func(o *GCPOptions) { o.KeyURI = "gcp-kms://projects/p/locations/global/cryptoKeys/k" }, "not of the form"},
		{"trailing slash", func(o *GCPOptions) { o.KeyURI = fakeGCPKeyURI + "/" }, "not of the form"},
		{"dot-dot segment", func(o *GCPOptions) { o.KeyURI = "gcp-kms://projects/p/locations/global/keyRings/../cryptoKeys/k" }, "not of the form"},
		{"key ID too long", func(o *GCPOptions) { o.KeyURI = fakeGCPKeyURI + strings.Repeat("k", 64) }, "not of the form"},
		{"negative timeout", func(o *GCPOptions) { o.Timeout = -time.Second }, "negative"},
		{"endpoint with path", func(o *GCPOptions) { o.Endpoint = "https://cloudkms.googleapis.com/v1" }, "must be HOST[:PORT] or https://HOST[:PORT]"},
		{"plain http endpoint", func(o *GCPOptions) { o.Endpoint = "http://cloudkms.googleapis.com" }, "must be HOST[:PORT]"},
		{"endpoint with a bad port", func(o *GCPOptions) { o.Endpoint = "cloudkms.googleapis.com:99999" }, "must be HOST[:PORT]"},
		{"missing credentials file", func(o *GCPOptions) { o.CredentialsFile = filepath.Join(dir, "none.json") }, "credentials file"},
		{"credentials file not JSON", func(o *GCPOptions) { o.CredentialsFile = notJSON }, "is not JSON"},
		{"user credentials, not a service account", func(o *GCPOptions) { o.CredentialsFile = userCreds }, `is not a service-account key (its type is "authorized_user"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := good
			tt.edit(&o)
			g, err := NewGCP(context.Background(), o)
			if err == nil || g != nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewGCP error = %v, want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "r3fr3sh") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error reveals the credentials file or spans lines: %v", err)
			}
		})
	}
}

func TestGCPEndpoint_Forms(t *testing.T) {
	for in, want := range map[string]string{
		"cloudkms.europe-west1.rep.googleapis.com": "cloudkms.europe-west1.rep.googleapis.com:443",
		"https://cloudkms.googleapis.com":          "cloudkms.googleapis.com:443",
		"https://cloudkms.googleapis.com/":         "cloudkms.googleapis.com:443",
		"kms.psc.internal:8443":                    "kms.psc.internal:8443",
		"[::1]:9000":                               "[::1]:9000",
		"::1":                                      "[::1]:443",
	} {
		if got, err := gcpEndpoint(in); got != want || err != nil {
			t.Errorf("gcpEndpoint(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestGCP_FakeKMS_RoundTripAndBinding(t *testing.T) {
	_, _, _, g := newFakeGCP(t)
	if g.ID() != fakeGCPKeyURI {
		t.Fatalf("ID() = %q, want %q", g.ID(), fakeGCPKeyURI)
	}
	ctx := context.Background()
	dek := []byte("0123456789abcdef0123456789abcdef")
	ad := []byte("org:acme dek:v1")
	ct, err := g.Encrypt(ctx, dek, ad)
	if err != nil {
		t.Fatalf("Encrypt: %v", err)
	}
	if bytes.Contains(ct, dek) {
		t.Fatal("the ciphertext contains the plaintext")
	}
	pt, err := g.Decrypt(ctx, ct, ad)
	if err != nil || !bytes.Equal(pt, dek) {
		t.Fatalf("Decrypt = %q, %v; want the plaintext back", pt, err)
	}
	if _, err := g.Encrypt(ctx, dek, nil); err != nil {
		t.Fatalf("Encrypt without associated data: %v", err)
	}
	tampered := bytes.Clone(ct)
	tampered[len(tampered)-3] ^= 1
	for name, c := range map[string]struct{ ct, ad []byte }{
		"other org's associated data": {ct, []byte("org:other dek:v1")},
		"no associated data":          {ct, nil},
		"tampered ciphertext":         {tampered, ad},
		"truncated ciphertext":        {ct[:20], ad},
		"empty ciphertext":            {nil, ad},
	} {
		_, err := g.Decrypt(ctx, c.ct, c.ad)
		if !errors.Is(err, ErrDecrypt) || !errors.Is(err, keys.ErrAuthentication) || errors.Is(err, ErrUnavailable) {
			t.Errorf("%s: Decrypt error = %v, want ErrDecrypt wrapping keys.ErrAuthentication", name, err)
		}
	}
}

func TestGCP_FakeKMS_IntegrityChecks(t *testing.T) {
	f, _, addr, g := newFakeGCP(t)
	ctx := context.Background()
	ad := []byte("org:acme dek:v1")
	ct, err := g.Encrypt(ctx, []byte("key"), ad)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		mode string
		call func() ([]byte, error)
	}{
		{"bad-ciphertext-crc", func() ([]byte, error) { return g.Encrypt(ctx, []byte("key"), ad) }},
		{"unverified-plaintext", func() ([]byte, error) { return g.Encrypt(ctx, []byte("key"), ad) }},
		{"unverified-aad", func() ([]byte, error) { return g.Encrypt(ctx, []byte("key"), ad) }},
		{"bad-plaintext-crc", func() ([]byte, error) { return g.Decrypt(ctx, ct, ad) }},
		{"damaged-request", func() ([]byte, error) { return g.Decrypt(ctx, ct, ad) }},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			f.mode.Store(tt.mode)
			defer f.mode.Store("")
			out, err := tt.call()
			// A failed check is transient (Google asks for a retry) and
			// never blamed on the data.
			if out != nil || !errors.Is(err, ErrIntegrity) || !errors.Is(err, ErrUnavailable) || errors.Is(err, keys.ErrAuthentication) {
				t.Fatalf("got %q, %v; want ErrIntegrity and ErrUnavailable, not ErrAuthentication", out, err)
			}
		})
	}

	f.mode.Store("other-key")
	out, err := g.Encrypt(ctx, []byte("key"), ad)
	if out != nil || err == nil || !strings.Contains(err.Error(), "not a version of key "+fakeGCPKey) {
		t.Fatalf("response naming another key: got %q, %v; want a refusal", out, err)
	}

	f.mode.Store("bad-plaintext-crc")
	_, err = NewGCP(ctx, fakeGCPOptions(addr, fakeGCPKeyURI))
	if !errors.Is(err, ErrIntegrity) || !strings.Contains(err.Error(), fakeGCPKeyURI) {
		t.Fatalf("NewGCP against a service whose answers fail their checksum: %v, want ErrIntegrity naming the key", err)
	}
}

func TestGCP_FakeKMS_Failures(t *testing.T) {
	f, srv, addr, g := newFakeGCP(t)
	ctx := context.Background()
	ct, err := g.Encrypt(ctx, []byte("key"), nil)
	if err != nil {
		t.Fatal(err)
	}

	f.mode.Store("hang")
	start := time.Now()
	tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err = g.Decrypt(tctx, ct, nil)
	cancel()
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Errorf("hanging service, 200 ms deadline: error = %v after %v, want ErrUnavailable within 1 s", err, time.Since(start))
	}
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err = g.Encrypt(cctx, []byte("key"), nil)
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) {
		t.Errorf("cancelled call: error = %v, want context.Canceled and not ErrUnavailable", err)
	}
	opts := fakeGCPOptions(addr, fakeGCPKeyURI)
	opts.Timeout = 300 * time.Millisecond
	start = time.Now()
	short, err := NewGCP(ctx, opts)
	if !errors.Is(err, ErrUnavailable) || short != nil || time.Since(start) > 2*time.Second {
		t.Errorf("NewGCP against a hanging service with Timeout 300 ms: %v after %v, want ErrUnavailable", err, time.Since(start))
	}

	f.mode.Store("")
	srv.Stop()
	start = time.Now()
	_, err = g.Decrypt(ctx, ct, nil)
	// Well within the 2 s timeout: a refused connection is not retried.
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrDecrypt) || time.Since(start) > time.Second {
		t.Errorf("stopped service: error = %v after %v, want ErrUnavailable within 1 s", err, time.Since(start))
	}
	start = time.Now()
	_, err = NewGCP(ctx, fakeGCPOptions(addr, fakeGCPKeyURI))
	if !errors.Is(err, ErrUnavailable) || time.Since(start) > time.Second {
		t.Errorf("NewGCP against a stopped service: %v after %v, want ErrUnavailable within 1 s", err, time.Since(start))
	}
}

func TestNewGCP_UnknownKeyIsAClearError(t *testing.T) {
	f := newFakeCloudKMS(t)
	_, addr := f.serve(t, nil)
	uri := "gcp-kms://projects/bulwark-test/locations/europe-west1/keyRings/bulwark/cryptoKeys/typo"
	g, err := NewGCP(context.Background(), fakeGCPOptions(addr, uri))
	if g != nil || err == nil || !strings.Contains(err.Error(), "no such key") || !strings.Contains(err.Error(), uri) ||
		errors.Is(err, ErrUnavailable) || errors.Is(err, ErrPermission) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("NewGCP with an unknown key: %v; want one line saying there is no such key, naming it", err)
	}
}

func TestNewGCP_ForbiddenKeyIsPermissionError(t *testing.T) {
	f := newFakeCloudKMS(t)
	_, addr := f.serve(t, nil)
	_, err := NewGCP(context.Background(), fakeGCPOptions(addr, gcpURIPrefix+fakeGCPForbidden))
	if !errors.Is(err, ErrPermission) || errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "PermissionDenied") {
		t.Fatalf("error = %v, want ErrPermission", err)
	}
}

// TestNewGCP_CredentialsFileSignsRequests gives NewGCP a service-account
// key file and checks, on a fake service behind TLS, that every request
// carries a token signed with that key: a self-signed JWT, which the
// client makes without asking Google for a token.
func TestNewGCP_CredentialsFileSignsRequests(t *testing.T) {
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(saKey)
	saJSON, _ := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     "bulwark-test",
		"private_key_id": "0123456789abcdef",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   "bulwark@bulwark-test.iam.gserviceaccount.com",
		"client_id":      "1234567890",
		"token_uri":      "https://127.0.0.1:1/token", // never used: the JWT is self-signed
	})
	credsFile := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(credsFile, saJSON, 0o600); err != nil {
		t.Fatal(err)
	}
	serverTLS, roots := selfSignedTLS(t)
	f := newFakeCloudKMS(t)
	_, addr := f.serve(t, credentials.NewTLS(serverTLS))

	g, err := NewGCP(context.Background(), GCPOptions{
		KeyURI:          fakeGCPKeyURI,
		CredentialsFile: credsFile,
		Endpoint:        addr,
		Timeout:         5 * time.Second,
		ClientOptions: []option.ClientOption{option.WithGRPCDialOption(grpc.WithTransportCredentials(
			credentials.NewTLS(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})))},
	})
	if err != nil {
		t.Fatalf("NewGCP with a service-account file: %v", err)
	}
	defer g.Close()
	auth, _ := f.authorization.Load().(string)
	jwt, ok := strings.CutPrefix(auth, "Bearer ")
	parts := strings.Split(jwt, ".")
	if !ok || len(parts) != 3 {
		t.Fatalf("authorization header %q is not a bearer JWT", auth)
	}
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&saKey.PublicKey, crypto.SHA256, digest[:], sig); err != nil {
		t.Fatalf("the request's JWT is not signed by the service account's key: %v", err)
	}
	claims, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if !strings.Contains(string(claims), "bulwark@bulwark-test.iam.gserviceaccount.com") {
		t.Fatalf("JWT claims %s do not name the service account", claims)
	}
}

// selfSignedTLS returns a server configuration with a certificate for
// 127.0.0.1 and the pool that trusts it.
func selfSignedTLS(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "fake cloud kms"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}, pool
}

// TestGCP_KeyringOverFakeKMS runs the keyring on the GCP KEK, on both
// stores: org keys are wrapped by the service, values seal and open, and a
// second keyring (a restart, nothing cached) unwraps the org keys again.
func TestGCP_KeyringOverFakeKMS(t *testing.T) {
	_, _, _, g := newFakeGCP(t)
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st, err := store.Open(ctx, opts, keys.ControlSchema())
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		ring, err := keys.NewRing(ctx, st, g, keys.Options{})
		if err != nil {
			t.Fatalf("NewRing: %v", err)
		}
		org := uuid.NewString()
		if err := st.Control().InTx(ctx, func(tx *store.Tx) error { return ring.CreateOrgKeys(ctx, tx, org) }); err != nil {
			t.Fatalf("CreateOrgKeys: %v", err)
		}
		var kekID string
		if err := st.Control().SQL().QueryRowContext(ctx, "SELECT kek_id FROM org_keys WHERE org_id = $1 AND purpose = 'data'", org).Scan(&kekID); err != nil || kekID != fakeGCPKeyURI {
			t.Fatalf("stored KEK id %q, %v; want %q", kekID, err, fakeGCPKeyURI)
		}
		ad := keys.AD{Table: "records", RowID: "r1", Field: "note"}
		sealed, err := ring.Seal(ctx, org, ad, []byte("the note"))
		if err != nil {
			t.Fatalf("Seal: %v", err)
		}
		restarted, err := keys.NewRing(ctx, st, g, keys.Options{})
		if err != nil {
			t.Fatalf("NewRing again: %v", err)
		}
		pt, err := restarted.Open(ctx, org, ad, sealed)
		if err != nil || string(pt) != "the note" {
			t.Fatalf("Open after a restart = %q, %v; want the note", pt, err)
		}
		if _, err := restarted.Open(ctx, org, keys.AD{Table: "records", RowID: "r2", Field: "note"}, sealed); err == nil {
			t.Fatal("a value opened under another row's associated data")
		}
	})
}
