// Package kms holds the key-encryption-key (KEK) providers that keep the
// KEK in a key service instead of a local file: Vault or OpenBao transit
// (Vault, via Tink's hcvault integration). AWS KMS and Google Cloud KMS are
// designed but not yet added.
//
// Each provider has exactly the methods of the keyring's KEK interface
// (ID, Encrypt, Decrypt), so package keys uses it without this package
// importing keys.
//
// Invariants:
//   - Associated data is always bound by the service: Vault's transit
//     "associated_data" with an AEAD key type. NewVault proves it with a
//     probe and refuses a server that ignores it.
//   - Every call honours its context and is bounded by the provider's
//     Timeout, even though Tink's Vault AEAD has no context of its own.
//   - Errors say what happened: ErrUnavailable (unreachable, timed out, 5xx
//     or 429: try later), ErrDecrypt (the service refused the ciphertext or
//     its associated data), ErrPermission (credentials refused). A caller's
//     cancellation is context.Canceled, not ErrUnavailable.
//
// This package must never log or return a token or key material in an
// error or an ID, read configuration from the environment, or retry on its
// own: the keyring decides about retries.
package kms
