// Package kms holds the key-encryption-key (KEK) providers that keep the
// KEK in a key service instead of a local file: Vault or OpenBao transit
// (Vault, via Tink's hcvault integration), AWS KMS (AWS, via the AWS SDK
// for Go v2, with a key URI "aws-kms://arn:aws:kms:REGION:ACCOUNT:key/ID"
// or an alias ARN) and Google Cloud KMS (GCP, via cloud.google.com/go/kms
// over gRPC, with a key URI
// "gcp-kms://projects/P/locations/L/keyRings/R/cryptoKeys/K").
//
// Each provider has exactly the methods of the keyring's KEK interface
// (ID, Encrypt, Decrypt), so package keys uses it without this package
// importing keys.
//
// Invariants:
//   - Associated data is always bound by the service: Vault's transit
//     "associated_data" with an AEAD key type; AWS KMS's encryption context
//     {"bulwark_ad": base64 of the associated data}, none when it is empty
//     (so empty and nil are the same, and differ from any other value).
//     NewVault and NewAWS prove it with a probe and refuse a service that
//     ignores it. The encryption context is not secret: CloudTrail logs it
//     (the keyring's is an org id, a key purpose and a version). Cloud
//     KMS always binds its additional_authenticated_data on a symmetric
//     key, so NewGCP's probe only encrypts and decrypts.
//   - GCP calls make the CRC32C checks Google documents: the request
//     carries the checksums of the plaintext or ciphertext and of the
//     associated data, Encrypt's answer must confirm both and match its
//     ciphertext checksum, Decrypt's must match its plaintext checksum,
//     and Encrypt's answer must name a version of the configured key. A
//     failed check is ErrIntegrity, which also wraps ErrUnavailable (Google
//     asks for a retry) and never ErrDecrypt.
//   - AWS Decrypt names the key, so KMS refuses a ciphertext of another
//     key (ErrDecrypt) instead of decrypting it with whatever key it names.
//     An alias URI therefore opens only what was wrapped under the alias's
//     current target: moving an alias is a KEK change for the keyring.
//   - Every call honours its context and is bounded by the provider's
//     Timeout (AWS: DefaultTimeout), even though Tink's Vault AEAD has no
//     context of its own.
//   - Errors say what happened: ErrUnavailable (unreachable, timed out, 5xx
//     or 429: try later), ErrDecrypt (the service refused the ciphertext or
//     its associated data), ErrPermission (credentials refused). A caller's
//     cancellation is context.Canceled, not ErrUnavailable. For AWS the
//     error code decides: InvalidCiphertextException and
//     IncorrectKeyException on Decrypt are ErrDecrypt; AccessDenied and the
//     signature and token errors ErrPermission; throttling, KMSInternal,
//     DependencyTimeout and KeyUnavailable ErrUnavailable; a missing,
//     disabled or unusable key is a plain error that says so, never
//     ErrDecrypt (the key is not wrong, it is out of use). For GCP the
//     gRPC code decides: InvalidArgument on Decrypt is ErrDecrypt (unless
//     it is about a CRC32C checksum: ErrIntegrity); PermissionDenied and
//     Unauthenticated ErrPermission; Unavailable, DeadlineExceeded,
//     ResourceExhausted, Aborted and Internal ErrUnavailable; NotFound a
//     plain error that names the key.
//
// This package must never log or return a token, a secret key or key
// material in an error or an ID, read configuration from the environment,
// or retry on its own (the AWS and GCP clients make one attempt per call):
// the keyring decides about retries. The one use of the environment is
// AWS's default credential chain and GCP's Application Default
// Credentials, each taken only when no credentials file is configured; the
// region, endpoint and retry settings of the AWS environment and
// ~/.aws/config do not apply, and the Google client's request logging
// (GOOGLE_SDK_GO_LOGGING_LEVEL), which would log plaintext, is off.
//
// Tests: Google publishes no emulator for Cloud KMS, so the GCP provider's
// tests run the real client library, over gRPC on loopback, against an
// in-process implementation of kmspb.KeyManagementServiceServer: real
// AES-256-GCM with the associated data bound, the CRC32C fields checked
// and filled as the service documents them, and the service's status
// codes (InvalidArgument, NotFound, PermissionDenied); switches make it
// hang, break a checksum or answer for another key. A service-account
// key file is tested over TLS by checking the client's self-signed JWT
// against the file's key. What only the real service shows (IAM, key
// versions and rotation, HSM size limits, its exact messages) is not
// tested here.
package kms
