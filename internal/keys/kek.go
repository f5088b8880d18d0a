package keys

import (
	"context"
	"errors"
	"fmt"

	"bulwark/internal/apperr"
)

// KEK is a key-encryption key: the key that wraps every org key before it
// is stored. Implementations are the local key file (OpenLocalKEK) and the
// KMS providers of package keys/kms. A KEK must bind associatedData to the
// ciphertext, and must be safe for concurrent use.
type KEK interface {
	// ID names the key (not its material), e.g. "local:123456789" or a
	// KMS key URI. It is stored beside every key it wraps.
	ID() string
	// Encrypt wraps plaintext, bound to associatedData.
	Encrypt(ctx context.Context, plaintext, associatedData []byte) ([]byte, error)
	// Decrypt unwraps ciphertext. When the ciphertext or associatedData do
	// not authenticate under this key, the error wraps ErrAuthentication;
	// any other error means that the provider could not be used (down,
	// unreachable, refused) and is reported as unavailable.
	Decrypt(ctx context.Context, ciphertext, associatedData []byte) ([]byte, error)
}

// ErrAuthentication is wrapped by the error a KEK's Decrypt returns when
// the ciphertext or its associated data do not authenticate under the key:
// a wrong key or damaged data, as opposed to a provider that is down.
var ErrAuthentication = errors.New("keys: ciphertext does not authenticate under the key")

// errUnavailable is what callers see when the KEK provider cannot be used.
var errUnavailable = apperr.Errorf(apperr.Unavailable, "key service unavailable")

// kekAEAD adapts a KEK to Tink's tink.AEADWithContext for one keyset read
// or write, and keeps the KEK's own error, which Tink flattens to text.
type kekAEAD struct {
	kek KEK
	err error
}

func (a *kekAEAD) EncryptWithContext(ctx context.Context, plaintext, associatedData []byte) ([]byte, error) {
	ct, err := a.kek.Encrypt(ctx, plaintext, associatedData)
	if err != nil {
		a.err = err
	}
	return ct, err
}

func (a *kekAEAD) DecryptWithContext(ctx context.Context, ciphertext, associatedData []byte) ([]byte, error) {
	pt, err := a.kek.Decrypt(ctx, ciphertext, associatedData)
	if err != nil {
		a.err = err
	}
	return pt, err
}

// kekError classifies an error of a KEK call made for op: an
// authentication failure stays internal (the stored key is not the one the
// KEK wrapped: damage or a wrong KEK), a cancelled request stays itself,
// anything else is the provider being unavailable.
func kekError(ctx context.Context, op string, err error) error {
	switch {
	case errors.Is(err, ErrAuthentication):
		return fmt.Errorf("keys: %s: %w", op, err)
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return fmt.Errorf("keys: %s: %w", op, err)
	default:
		return fmt.Errorf("keys: %s: %v: %w", op, err, errUnavailable)
	}
}
