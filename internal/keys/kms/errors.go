package kms

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"bulwark/internal/keys"
)

// ErrUnavailable is wrapped by every error that means the key service could
// not be used right now: the connection was refused or dropped, the call
// timed out, or the service answered with a server error (5xx) or asked the
// caller to slow down (429). Retrying later may succeed; the data is not
// at fault.
var ErrUnavailable = errors.New("kms: key service unavailable")

// ErrDecrypt is wrapped by the error Decrypt returns when the key service
// was reached and refused the ciphertext: it was not made by this key, it
// was damaged, or the associated data differs from the data it was sealed
// with. It wraps keys.ErrAuthentication, so the keyring tells a wrong key
// or damaged data from a key service that is down.
var ErrDecrypt = fmt.Errorf("kms: ciphertext does not authenticate under the key: %w", keys.ErrAuthentication)

// ErrPermission is wrapped by the error a provider returns when the key
// service rejected its credentials (a bad or expired token, or a policy
// that does not allow the operation on the key). Retrying will not help;
// the configuration must change.
var ErrPermission = errors.New("kms: key service refused the credentials")

// transportError classifies an error that happened before any answer came
// back from the service. ctx is the context of the call: when it was
// cancelled by the caller, the error says so and is not ErrUnavailable;
// when its deadline passed, the service is taken to be unavailable (it did
// not answer in time) and the error also wraps context.DeadlineExceeded.
func transportError(ctx context.Context, op string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			return fmt.Errorf("%s: no answer in time: %w: %w", op, ctxErr, ErrUnavailable)
		}
		return fmt.Errorf("%s: %w", op, ctxErr)
	}
	if isTLSConfigError(err) {
		// A certificate that does not verify is a configuration error:
		// the service is there, but it is not the one we trust.
		return fmt.Errorf("%s: TLS: %w", op, err)
	}
	if errors.Is(err, context.DeadlineExceeded) || isNetError(err) {
		return fmt.Errorf("%s: %w: %w", op, err, ErrUnavailable)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// isNetError reports whether err is a failure to reach the service or to
// read its answer. Every error of an http.Client call is a *url.Error,
// which is a net.Error, so in practice any transport failure counts.
func isNetError(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

func isTLSConfigError(err error) bool {
	var unknownAuthority x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	var record tls.RecordHeaderError
	return errors.As(err, &unknownAuthority) || errors.As(err, &hostname) ||
		errors.As(err, &invalid) || errors.As(err, &verify) || errors.As(err, &record)
}

// statusError classifies an answer of the key service by its HTTP status.
// decrypting says whether the call was a Decrypt, where a refusal of the
// request itself (400) means the ciphertext or its associated data did not
// authenticate.
func statusError(op string, status int, decrypting bool, err error) error {
	switch {
	case status >= 500 || status == 429:
		return fmt.Errorf("%s: %w: %w", op, err, ErrUnavailable)
	case status == 401 || status == 403:
		return fmt.Errorf("%s: %w: %w", op, err, ErrPermission)
	case decrypting && status == 400:
		return fmt.Errorf("%s: %w: %w", op, err, ErrDecrypt)
	default:
		return fmt.Errorf("%s: %w", op, err)
	}
}

// probe checks a provider at start: it encrypts a random value, decrypts it
// under the same associated data, and checks that another associated data
// is refused (a service that ignores it would bind nothing). name prefixes
// the errors; ignoredAD is the message for a service that ignores it.
func probe(ctx context.Context, k keys.KEK, name, ignoredAD string) error {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return fmt.Errorf("%s: probe: %w", name, err)
	}
	ad := []byte("bulwark kms probe")
	ct, err := k.Encrypt(ctx, secret, ad)
	if err != nil {
		return fmt.Errorf("%w (key %s)", err, k.ID())
	}
	pt, err := k.Decrypt(ctx, ct, ad)
	if err != nil {
		return fmt.Errorf("%w (key %s)", err, k.ID())
	}
	if !bytes.Equal(pt, secret) {
		return fmt.Errorf("%s: probe: key %s decrypted a value to something else", name, k.ID())
	}
	_, err = k.Decrypt(ctx, ct, []byte("bulwark kms probe, other data"))
	switch {
	case err == nil:
		return fmt.Errorf("%s: key %s %s; refusing to use it", name, k.ID(), ignoredAD)
	case !errors.Is(err, ErrDecrypt):
		return fmt.Errorf("%w (key %s)", err, k.ID())
	}
	return nil
}
