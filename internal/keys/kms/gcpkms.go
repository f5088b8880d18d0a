package kms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	kms "cloud.google.com/go/kms/apiv1"
	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/api/option"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// ErrIntegrity is wrapped by the error a GCP call returns when a CRC32C
// integrity check failed: the service did not confirm that it received
// what was sent, or what came back does not match its checksum. Google
// asks for a limited number of retries, so the error also wraps
// ErrUnavailable; it never wraps ErrDecrypt, as the stored data is not at
// fault.
var ErrIntegrity = errors.New("kms: integrity check of the key service's request or response failed")

// GCPOptions configures NewGCP. The client reads nothing from the
// environment except what Application Default Credentials read when
// CredentialsFile is empty.
type GCPOptions struct {
	// KeyURI names the key as
	// "gcp-kms://projects/PROJECT/locations/LOCATION/keyRings/RING/cryptoKeys/KEY".
	// The key must be a symmetric ENCRYPT_DECRYPT key; the credentials need
	// cloudkms.cryptoKeyVersions.useToEncrypt and useToDecrypt on it
	// (roles/cloudkms.cryptoKeyEncrypterDecrypter), nothing else.
	KeyURI string
	// CredentialsFile is a service-account key file (JSON); empty means
	// Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, the
	// gcloud user, or the metadata server of a Google Cloud machine).
	CredentialsFile string
	// Endpoint overrides the API endpoint, as HOST[:PORT] or
	// https://HOST[:PORT] (port 443 when left out), e.g. a regional
	// endpoint "cloudkms.europe-west1.rep.googleapis.com" or a Private
	// Service Connect name. Empty means cloudkms.googleapis.com.
	Endpoint string
	// ClientOptions are given to the client after those made from the
	// fields above, so they take precedence; tests use them to reach an
	// in-process server without TLS or credentials.
	ClientOptions []option.ClientOption
	// Timeout bounds each call (the caller's context may end it sooner);
	// zero means DefaultTimeout.
	Timeout time.Duration
}

// GCP is a key-encryption key held in Google Cloud KMS: the key never
// leaves the service, which encrypts and decrypts for us. It is safe for
// concurrent use; Close releases its connections.
type GCP struct {
	id      string // "gcp-kms://" + keyName
	keyName string // "projects/P/locations/L/keyRings/R/cryptoKeys/K"
	timeout time.Duration
	client  *kms.KeyManagementClient
}

// gcpKeyPattern accepts a key's resource name. Project IDs are lower case
// letters, digits and hyphens (with a "domain:" prefix for old ones), or a
// project number; key ring and key IDs are Cloud KMS's [A-Za-z0-9_-]{1,63}.
var gcpKeyPattern = regexp.MustCompile(`^projects/[a-z0-9][a-z0-9.:-]{0,62}/locations/[a-z0-9][a-z0-9-]{0,62}/keyRings/[A-Za-z0-9_-]{1,63}/cryptoKeys/[A-Za-z0-9_-]{1,63}$`)

// gcpURIPrefix is the scheme of a key URI, the one Tink uses.
const gcpURIPrefix = "gcp-kms://"

// gcpMaxData is the largest plaintext, and the largest associated data,
// that Cloud KMS accepts for a software key (an HSM key takes 8 KiB for
// both together).
const gcpMaxData = 64 << 10

// NewGCP checks opts, then encrypts and decrypts one random value to prove
// that the key exists and that the credentials may use it. Returns an
// error wrapping ErrUnavailable if the service cannot be reached,
// ErrPermission if it refuses the credentials, and a plain error for a key
// that does not exist or anything wrong in opts. The caller must Close the
// GCP it gets.
func NewGCP(ctx context.Context, opts GCPOptions) (*GCP, error) {
	keyName, err := gcpKeyName(opts.KeyURI)
	if err != nil {
		return nil, err
	}
	if opts.Timeout < 0 {
		return nil, fmt.Errorf("gcpkms: timeout %v is negative", opts.Timeout)
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	var clientOpts []option.ClientOption
	if opts.CredentialsFile != "" {
		if err := checkServiceAccountFile(opts.CredentialsFile); err != nil {
			return nil, err
		}
		clientOpts = append(clientOpts, option.WithAuthCredentialsFile(option.ServiceAccount, opts.CredentialsFile))
	}
	if opts.Endpoint != "" {
		endpoint, err := gcpEndpoint(opts.Endpoint)
		if err != nil {
			return nil, err
		}
		clientOpts = append(clientOpts, option.WithEndpoint(endpoint))
	}
	clientOpts = append(clientOpts, opts.ClientOptions...)
	// Last, so nothing overrides it: the library logs whole requests,
	// plaintext included, when GOOGLE_SDK_GO_LOGGING_LEVEL=debug is set.
	clientOpts = append(clientOpts, option.WithLogger(slog.New(slog.DiscardHandler)))

	client, err := kms.NewKeyManagementClient(ctx, clientOpts...)
	if err != nil {
		return nil, fmt.Errorf("gcpkms: client: %s", gcpOneLine(err.Error()))
	}
	// One attempt per call, bounded by our timeout: the library would
	// otherwise retry Unavailable for up to 60 s, and the keyring decides
	// about retries.
	client.CallOptions.Encrypt = nil
	client.CallOptions.Decrypt = nil

	g := &GCP{id: gcpURIPrefix + keyName, keyName: keyName, timeout: timeout, client: client}
	if err := g.probe(ctx); err != nil {
		client.Close()
		return nil, err
	}
	return g, nil
}

// gcpKeyName checks a key URI and returns the key's resource name.
func gcpKeyName(uri string) (string, error) {
	name, ok := strings.CutPrefix(uri, gcpURIPrefix)
	switch {
	case uri == "":
		return "", errors.New("gcpkms: key URI is empty")
	case !ok && strings.HasPrefix(uri, "projects/"):
		return "", fmt.Errorf("gcpkms: key URI %q must start with %s", uri, gcpURIPrefix)
	case strings.Contains(name, "/cryptoKeyVersions/"):
		return "", fmt.Errorf("gcpkms: key URI %q names a key version: name the key itself, so that values wrapped by its older versions still decrypt", uri)
	case !ok || !gcpKeyPattern.MatchString(name):
		return "", fmt.Errorf("gcpkms: key URI %q is not of the form %sprojects/PROJECT/locations/LOCATION/keyRings/RING/cryptoKeys/KEY", uri, gcpURIPrefix)
	}
	return name, nil
}

// gcpEndpoint turns HOST[:PORT] or https://HOST[:PORT] into the HOST:PORT
// the gRPC client dials.
func gcpEndpoint(s string) (string, error) {
	bad := fmt.Errorf("gcpkms: endpoint %q must be HOST[:PORT] or https://HOST[:PORT]", s)
	hostPort := s
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil || u.Scheme != "https" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.Trim(u.Path, "/") != "" {
			return "", bad
		}
		hostPort = u.Host
	}
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		host, port = strings.TrimSuffix(strings.TrimPrefix(hostPort, "["), "]"), "443"
	}
	if host == "" || strings.ContainsAny(host, "/@?# \t\r\n") || (strings.Contains(host, ":") && net.ParseIP(host) == nil) {
		return "", bad
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", bad
	}
	return net.JoinHostPort(host, port), nil
}

// checkServiceAccountFile refuses a credentials file that is not a
// service-account key before the client library reads it, with a message
// that quotes nothing of the file but its type.
func checkServiceAccountFile(file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("gcpkms: credentials file: %w", err)
	}
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return fmt.Errorf("gcpkms: credentials file %s is not JSON", file)
	}
	if head.Type != "service_account" {
		return fmt.Errorf("gcpkms: credentials file %s is not a service-account key (its type is %.40q, want \"service_account\"); leave the setting empty to use Application Default Credentials", file, head.Type)
	}
	return nil
}

// ID returns the key URI, "gcp-kms://projects/.../cryptoKeys/KEY". It holds
// no secret, and does not change when the key is rotated: the service
// decrypts with whichever version encrypted.
func (g *GCP) ID() string { return g.id }

// Close releases the client's connections. Calls after Close fail.
func (g *GCP) Close() error { return g.client.Close() }

// Encrypt has the service encrypt plaintext under the key's primary
// version, bound to associatedData. plaintext must not be empty, and
// neither it nor associatedData may be larger than 64 KiB. Returns an
// error wrapping ErrUnavailable if the service cannot be used now (or an
// integrity check failed: ErrIntegrity), or ErrPermission if it refuses
// the credentials.
func (g *GCP) Encrypt(ctx context.Context, plaintext, associatedData []byte) ([]byte, error) {
	switch {
	case len(plaintext) == 0:
		return nil, errors.New("gcpkms: encrypt: plaintext is empty")
	case len(plaintext) > gcpMaxData:
		return nil, fmt.Errorf("gcpkms: encrypt: plaintext of %d bytes is larger than Cloud KMS takes (64 KiB)", len(plaintext))
	case len(associatedData) > gcpMaxData:
		return nil, fmt.Errorf("gcpkms: encrypt: associated data of %d bytes is larger than Cloud KMS takes (64 KiB)", len(associatedData))
	}
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	const op = "gcpkms: encrypt"
	resp, err := g.client.Encrypt(ctx, &kmspb.EncryptRequest{
		Name:                              g.keyName,
		Plaintext:                         plaintext,
		PlaintextCrc32C:                   crc32c(plaintext),
		AdditionalAuthenticatedData:       associatedData,
		AdditionalAuthenticatedDataCrc32C: crc32c(associatedData),
	})
	if err != nil {
		return nil, g.callError(ctx, op, false, err)
	}
	// The checks Google documents for Encrypt: the service confirms it
	// verified both request checksums, and the ciphertext matches its own.
	switch {
	case !resp.GetVerifiedPlaintextCrc32C():
		return nil, gcpIntegrityError(op, "the service did not confirm the plaintext's checksum")
	case !resp.GetVerifiedAdditionalAuthenticatedDataCrc32C():
		return nil, gcpIntegrityError(op, "the service did not confirm the associated data's checksum")
	case !crc32cMatches(resp.GetCiphertextCrc32C(), resp.GetCiphertext()):
		return nil, gcpIntegrityError(op, "the ciphertext does not match its checksum")
	}
	if !g.isKeyVersion(resp.GetName()) {
		return nil, fmt.Errorf("%s: the service encrypted with %.200q, not a version of key %s", op, resp.GetName(), g.keyName)
	}
	if len(resp.GetCiphertext()) == 0 {
		return nil, fmt.Errorf("%s: the service returned no ciphertext", op)
	}
	return resp.GetCiphertext(), nil
}

// Decrypt has the service decrypt ciphertext, which must have been made by
// Encrypt under the same key (any version the service still keeps enabled)
// with the same associatedData. Returns an error wrapping ErrDecrypt if the
// service refuses the ciphertext or the associated data, ErrUnavailable if
// the service cannot be used now (or an integrity check failed:
// ErrIntegrity), or ErrPermission if it refuses the credentials.
func (g *GCP) Decrypt(ctx context.Context, ciphertext, associatedData []byte) ([]byte, error) {
	const op = "gcpkms: decrypt"
	if len(ciphertext) == 0 {
		return nil, fmt.Errorf("%s: ciphertext is empty: %w", op, ErrDecrypt)
	}
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	resp, err := g.client.Decrypt(ctx, &kmspb.DecryptRequest{
		Name:                              g.keyName,
		Ciphertext:                        ciphertext,
		CiphertextCrc32C:                  crc32c(ciphertext),
		AdditionalAuthenticatedData:       associatedData,
		AdditionalAuthenticatedDataCrc32C: crc32c(associatedData),
	})
	if err != nil {
		return nil, g.callError(ctx, op, true, err)
	}
	// The request's checksums are verified by the service, which refuses
	// the call when they do not match; the plaintext is checked here.
	if !crc32cMatches(resp.GetPlaintextCrc32C(), resp.GetPlaintext()) {
		return nil, gcpIntegrityError(op, "the plaintext does not match its checksum")
	}
	if len(resp.GetPlaintext()) == 0 {
		return nil, fmt.Errorf("%s: the service returned no plaintext", op)
	}
	return resp.GetPlaintext(), nil
}

// isKeyVersion reports whether name is "KEY/cryptoKeyVersions/N" for our
// key, as the service names the version that encrypted.
func (g *GCP) isKeyVersion(name string) bool {
	version, ok := strings.CutPrefix(name, g.keyName+"/cryptoKeyVersions/")
	if !ok || version == "" {
		return false
	}
	_, err := strconv.ParseUint(version, 10, 64)
	return err == nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crc32c is the CRC32C checksum of b in the form Cloud KMS's requests take.
func crc32c(b []byte) *wrapperspb.Int64Value {
	return wrapperspb.Int64(int64(crc32.Checksum(b, castagnoli)))
}

// crc32cMatches reports whether sum, taken from a response, is present
// and is b's checksum.
func crc32cMatches(sum *wrapperspb.Int64Value, b []byte) bool {
	return sum != nil && sum.GetValue() == int64(crc32.Checksum(b, castagnoli))
}

func gcpIntegrityError(op, what string) error {
	return fmt.Errorf("%s: %w: %s: %w", op, ErrIntegrity, what, ErrUnavailable)
}

// callError classifies an error of one encrypt or decrypt call by its gRPC
// status code.
func (g *GCP) callError(ctx context.Context, op string, decrypting bool, err error) error {
	if ctx.Err() != nil {
		return transportError(ctx, op, err)
	}
	st, ok := status.FromError(err)
	if !ok {
		return transportError(ctx, op, err)
	}
	rerr := &gcpStatusError{code: st.Code(), msg: gcpOneLine(st.Message()), err: err}
	switch st.Code() {
	case codes.DeadlineExceeded:
		// The server may give up on the call's deadline a moment before
		// the client's context does.
		return fmt.Errorf("%s: no answer in time: %w: %w: %w", op, rerr, context.DeadlineExceeded, ErrUnavailable)
	case codes.Unavailable, codes.ResourceExhausted, codes.Aborted, codes.Internal:
		return fmt.Errorf("%s: %w: %w", op, rerr, ErrUnavailable)
	case codes.PermissionDenied, codes.Unauthenticated:
		return fmt.Errorf("%s: %w: %w", op, rerr, ErrPermission)
	case codes.NotFound:
		return fmt.Errorf("%s: no such key: check the project, location, key ring and key names: %w", op, rerr)
	case codes.InvalidArgument:
		if strings.Contains(strings.ToLower(st.Message()), "crc32c") {
			// The service saw a request whose data did not match the
			// checksum sent with it: damaged in transit, not at rest.
			return fmt.Errorf("%s: %w: %w: %w", op, ErrIntegrity, rerr, ErrUnavailable)
		}
		if decrypting {
			return fmt.Errorf("%s: %w: %w", op, rerr, ErrDecrypt)
		}
	}
	return fmt.Errorf("%s: %w", op, rerr)
}

// gcpStatusError is a gRPC error of the service shown on one line as its code
// and message: the client library's own text can span lines with the
// error details.
type gcpStatusError struct {
	code codes.Code
	msg  string
	err  error
}

func (e *gcpStatusError) Error() string { return e.code.String() + ": " + e.msg }
func (e *gcpStatusError) Unwrap() error { return e.err }

// gcpOneLine folds s onto one line of at most 300 bytes.
func gcpOneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = strings.ToValidUTF8(s[:300], "") + "..."
	}
	return s
}

// probe checks the key at start (see probe).
func (g *GCP) probe(ctx context.Context) error {
	return probe(ctx, g, "gcpkms", "ignores the additional authenticated data")
}
