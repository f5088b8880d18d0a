// Package keys is Bulwark's keyring for encryption at rest: envelope
// encryption with one set of keys per org, wrapped by a key-encryption key
// (KEK) that a KMS or the local key file holds.
//
// # Keys
//
// A KEK (interface KEK) wraps every stored key: OpenLocalKEK reads the
// default one, a Tink AES-256-GCM keyset in DATA/keys/kek.json; package
// keys/kms holds the KMS providers (Vault / OpenBao transit so far). NewRing checks at start
// that the KEK opens the canary stored in the control database, so a
// wrong or regenerated KEK is refused before any request.
//
// Each org has, in the control table org_keys, Tink keysets wrapped by the
// KEK with associated data that binds org id, purpose and version:
//
//   - data keys (AES-256-GCM), versions 1, 2, ...: Seal uses the highest,
//     Open the one the ciphertext names; RotateOrg adds a version and keeps
//     the old ones;
//   - one blind-index key (HMAC-SHA256), never rotated with the data key,
//     for BlindIndex;
//   - a stream key (Tink's AES-256-GCM-HKDF streaming AEAD, 4 KiB
//     segments) for files, NewEncryptingWriter and NewReaderAt: made with
//     the org's other keys, or, for an org made before files had keys, on
//     first use (once across nodes).
//
// Signing keys live in the same keyring (control table signing_keys),
// wrapped by the KEK with associated data binding purpose, kid and
// algorithm: HS512 keys for access tokens and, separately, for signed file
// links, and an Ed25519 key for audit checkpoints. SigningKey gives the
// current key of a purpose (made on first use, once across nodes),
// VerificationKeys every key still valid by kid; RotateSigningKey makes a
// new current key and keeps the old one for verification until everything
// it signed has expired.
//
// Unwrapped keys are cached in memory (Options.CacheSize, Options.CacheTTL);
// concurrent misses of one key unwrap it once.
//
// # Ciphertexts
//
// Seal's output is a 5-byte header (format 0x01, data key version as 4
// bytes big endian), a 12-byte nonce, the ciphertext and a 16-byte tag. The
// AEAD's associated data is a length-prefixed encoding of the header, org
// id, table, row id and field (AD), so a ciphertext moved to another org,
// table, row or field, or altered in any byte, does not open.
//
// A file of NewEncryptingWriter is a 9-byte header ("BWKS", format 0x01,
// stream key version as 4 bytes big endian) and Tink's stream: its own
// header (length, salt, nonce prefix) and segments of 4096 bytes, each
// AES-GCM with a 16-byte tag, the last one flagged in its nonce. Tink's
// associated data is a length-prefixed encoding of the 9-byte header, org
// id, table, row id and field, so the header is authenticated and a file
// moved to another org, table, row or field does not open. Tink reads a
// stream only from its start; StreamReader reads Tink's format at any
// offset, decrypting only the segments a read covers. NewReaderAt
// authenticates the last segment, so a file cut or extended, or that lost
// or gained a segment, does not open, and Size is the size written; a
// segment changed or moved within the file fails the reads that cover it.
//
// # Invariants
//
//   - A key is stored only wrapped by the KEK; the unwrapped form lives only
//     in this package's memory, for at most Options.CacheTTL.
//   - An org never exists without keys: CreateOrgKeys runs in the org's
//     creation transaction.
//   - DestroyOrgKeys deletes every version of every key of the org
//     (crypto-shredding), and its row of org_key_use; nothing this package
//     holds opens the org's values or files afterwards. A stream key made
//     on first use while the org's keys are destroyed is either destroyed
//     with them or not made (locks on PostgreSQL; SQLite has one writer).
//   - A KEK provider that cannot be used gives unavailable ("key service
//     unavailable") and nothing is written: no key row, no half-made
//     rotation, no ciphertext.
//   - Every unwrap and every change of keys is counted and sent to the
//     EventSink; metrics are never labelled by org (unbounded cardinality):
//     per-org counts and the last use time are kept in memory and added to
//     the control table org_key_use by FlushUse (exactly once each), for
//     Status.
//
// # Never
//
// This package never logs, returns, or puts into an error or event any key
// material (raw or unwrapped keys, the KEK), never stores an unwrapped key,
// never uses a random source other than crypto/rand, and never tells a
// caller more about a ciphertext that does not open than that it is
// malformed, names an unknown version, or does not authenticate.
package keys
