package keys

import (
	"bytes"
	"context"
	"crypto/subtle"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/aead/aesgcm"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/mac"
	"github.com/tink-crypto/tink-go/v2/mac/hmac"
	"github.com/tink-crypto/tink-go/v2/secretdata"
	"github.com/tink-crypto/tink-go/v2/streamingaead/aesgcmhkdf"

	"bulwark/internal/apperr"
	"bulwark/internal/store"
)

// The purposes of org keys.
const (
	purposeData   = "data"
	purposeIndex  = "index"
	purposeStream = "stream" // files: NewEncryptingWriter, NewReaderAt (stream.go)
)

// Options configure a Ring. Zero values take the defaults.
type Options struct {
	// CacheSize bounds the unwrapped key versions held in memory (default
	// 1000; a negative value caches nothing).
	CacheSize int
	// CacheTTL bounds how long an unwrapped key is held (default 10m). It
	// is also how long another node may go on using a data key version
	// after RotateOrg, or a key after DestroyOrgKeys, ran elsewhere.
	CacheTTL time.Duration
	// Events receives key events; nil sends them nowhere.
	Events EventSink
	// Registerer, when not nil, gets the Prometheus counters of key use.
	Registerer prometheus.Registerer
	// Now is the clock of the cache and of events; nil: time.Now.
	Now func() time.Time
}

// Ring is the keyring: it creates, unwraps, caches, rotates and destroys
// the keys of every org, and seals and opens values with them. It is safe
// for concurrent use.
type Ring struct {
	st      *store.Store
	opts    Options
	cache   *keyCache
	metrics *metrics
	use     useCounts
	flushMu sync.Mutex   // one FlushUse at a time; Status and DestroyOrgKeys wait for it
	sig     signingCache // unwrapped signing keys (signing.go)

	mu  sync.RWMutex
	kek KEK
}

// NewRing returns the keyring of st, whose control database must have been
// opened with ControlSchema, under kek. On first use it stores the KEK
// canary; afterwards it checks that kek opens the canary, so that a wrong
// or replaced KEK is refused at start rather than at the first read of
// data. Returns unavailable when the KEK provider cannot be used.
func NewRing(ctx context.Context, st *store.Store, kek KEK, opts Options) (*Ring, error) {
	if st == nil || kek == nil {
		return nil, errors.New("keys: NewRing needs a store and a KEK")
	}
	if opts.CacheSize == 0 {
		opts.CacheSize = 1000
	}
	if opts.CacheTTL <= 0 {
		opts.CacheTTL = 10 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("keys: register metrics: %w", err)
	}
	r := &Ring{st: st, opts: opts, kek: kek, metrics: m, cache: newKeyCache(opts.CacheSize, opts.CacheTTL, opts.Now)}
	if err := r.checkCanary(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Ring) now() time.Time { return r.opts.Now().UTC() }

func (r *Ring) currentKEK() KEK {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.kek
}

// KEKID returns the id of the KEK the ring wraps keys with.
func (r *Ring) KEKID() string { return r.currentKEK().ID() }

// The canary: a known value that only the right KEK unwraps.
var (
	canaryName      = "kek_canary"
	canaryPlaintext = []byte("bulwark keyring KEK canary v1")
	canaryAD        = []byte("bulwark/keys/kek-canary/v1")
)

func (r *Ring) checkCanary(ctx context.Context) error {
	kek := r.currentKEK()
	storedID, wrapped, err := readCanary(ctx, r.st.Control().SQL())
	if errors.Is(err, sql.ErrNoRows) {
		ct, werr := kek.Encrypt(ctx, canaryPlaintext, canaryAD)
		if werr != nil {
			return r.kekFailed(ctx, "wrap KEK canary", werr)
		}
		_, werr = r.st.Control().SQL().ExecContext(ctx, `INSERT INTO keyring_meta (name, kek_id, wrapped, updated_at)
VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING`, canaryName, kek.ID(), ct, r.st.Now())
		if werr != nil {
			return fmt.Errorf("keys: store KEK canary: %w", werr)
		}
		// Another node may have stored its canary first: check the stored one.
		storedID, wrapped, err = readCanary(ctx, r.st.Control().SQL())
	}
	if err != nil {
		return fmt.Errorf("keys: read KEK canary: %w", err)
	}
	pt, err := kek.Decrypt(ctx, wrapped, canaryAD)
	if err != nil && errors.Is(err, ErrAuthentication) {
		return fmt.Errorf("keys: wrong KEK: the KEK %s does not open the canary that the KEK %s stored in the control database, "+
			"so it cannot unwrap any stored key (a replaced or regenerated key file, or another deployment's KMS key?). "+
			"Configure the KEK this database was set up with; do not start with a new one", kek.ID(), storedID)
	}
	if err != nil {
		return r.kekFailed(ctx, "open KEK canary", err)
	}
	if subtle.ConstantTimeCompare(pt, canaryPlaintext) != 1 {
		return fmt.Errorf("keys: wrong KEK: the KEK canary in the control database opens under %s but holds another value", kek.ID())
	}
	return nil
}

func readCanary(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (kekID string, wrapped []byte, err error) {
	err = q.QueryRowContext(ctx, "SELECT kek_id, wrapped FROM keyring_meta WHERE name = $1", canaryName).Scan(&kekID, &wrapped)
	return kekID, wrapped, err
}

// kekFailed classifies a KEK error and counts unavailability.
func (r *Ring) kekFailed(ctx context.Context, op string, err error) error {
	err = kekError(ctx, op, err)
	if apperr.CodeOf(err) == apperr.Unavailable {
		r.metrics.unavailable.Inc()
	}
	return err
}

// keyAD is the associated data that binds a wrapped key to its org,
// purpose and version: a wrapped key copied to another org, purpose or
// version does not unwrap.
func keyAD(orgID, purpose string, version int) []byte {
	b := appendLP(nil, "bulwark/keys/org-key/v1")
	b = appendLP(b, orgID)
	b = appendLP(b, purpose)
	return binary.BigEndian.AppendUint32(b, uint32(version))
}

// appendLP appends s with its length in front, so that a sequence of
// fields has one reading only.
func appendLP(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// newKeyset generates a one-key keyset for purpose. Data: AES-256-GCM
// (12-byte nonce, 16-byte tag) with Tink's output prefix, whose key id is
// the version, so that Tink's ciphertext starts with the header of Seal
// (0x01, version) and needs no copy. Index: HMAC-SHA256 with a 32-byte key
// and tag, without prefix. Stream: AES-256-GCM-HKDF streaming with 4 KiB
// segments (Tink's AES256_GCM_HKDF_4KB): a 4 KiB read at a random offset
// decrypts one or two segments, and a writer holds 8 KiB of buffers.
func newKeyset(purpose string, version int) (*keyset.Handle, error) {
	km := keyset.NewManager()
	var id uint32
	var err error
	switch purpose {
	case purposeData:
		var p *aesgcm.Parameters
		p, err = aesgcm.NewParameters(aesgcm.ParametersOpts{KeySizeInBytes: 32, IVSizeInBytes: nonceSize, TagSizeInBytes: tagSize, Variant: aesgcm.VariantTink})
		var raw secretdata.Bytes
		if err == nil {
			raw, err = secretdata.NewBytesFromRand(32)
		}
		var k *aesgcm.Key
		if err == nil {
			k, err = aesgcm.NewKey(raw, uint32(version), p)
		}
		if err == nil {
			id, err = km.AddKey(k)
		}
	case purposeIndex:
		var p *hmac.Parameters
		p, err = hmac.NewParameters(hmac.ParametersOpts{KeySizeInBytes: 32, TagSizeInBytes: 32, HashType: hmac.SHA256, Variant: hmac.VariantNoPrefix})
		if err == nil {
			id, err = km.AddNewKeyFromParameters(p)
		}
	case purposeStream:
		var p *aesgcmhkdf.Parameters
		p, err = aesgcmhkdf.NewParameters(aesgcmhkdf.ParametersOpts{KeySizeInBytes: 32, DerivedKeySizeInBytes: 32,
			HKDFHashType: aesgcmhkdf.SHA256, SegmentSizeInBytes: 4096})
		if err == nil {
			id, err = km.AddNewKeyFromParameters(p)
		}
	default:
		err = fmt.Errorf("unknown purpose %q", purpose)
	}
	if err == nil {
		err = km.SetPrimary(id)
	}
	if err != nil {
		return nil, fmt.Errorf("keys: generate %s key: %w", purpose, err)
	}
	return km.Handle()
}

// wrap encrypts h under kek for (orgID, purpose, version).
func (r *Ring) wrap(ctx context.Context, kek KEK, h *keyset.Handle, orgID, purpose string, version int) ([]byte, error) {
	var buf bytes.Buffer
	a := &kekAEAD{kek: kek}
	if err := h.WriteWithContext(ctx, keyset.NewBinaryWriter(&buf), a, keyAD(orgID, purpose, version)); err != nil {
		if a.err != nil {
			return nil, r.kekFailed(ctx, "wrap "+purpose+" key", a.err)
		}
		return nil, fmt.Errorf("keys: wrap %s key: %w", purpose, err)
	}
	return buf.Bytes(), nil
}

// unwrapHandle decrypts a stored key under kek.
func (r *Ring) unwrapHandle(ctx context.Context, kek KEK, wrapped []byte, orgID, purpose string, version int) (*keyset.Handle, error) {
	a := &kekAEAD{kek: kek}
	h, err := keyset.ReadWithContext(ctx, keyset.NewBinaryReader(bytes.NewReader(wrapped)), a, keyAD(orgID, purpose, version))
	if err != nil {
		if a.err != nil {
			return nil, r.kekFailed(ctx, "unwrap "+purpose+" key", a.err)
		}
		return nil, fmt.Errorf("keys: unwrap %s key: %w", purpose, err)
	}
	return h, nil
}

// primitive turns an unwrapped keyset into the primitive of its purpose.
func primitive(h *keyset.Handle, purpose string, version int) (*unwrapped, error) {
	u := &unwrapped{version: version}
	var err error
	switch purpose {
	case purposeData:
		if u.aead, err = aead.New(h); err == nil {
			u.gcm, err = directGCM(h, version)
		}
	case purposeStream:
		u.stream, err = newStreamKey(h)
	default:
		u.mac, err = mac.New(h)
	}
	if err != nil {
		return nil, fmt.Errorf("keys: %s key version %d: %w", purpose, version, err)
	}
	return u, nil
}

// CreateOrgKeys creates the keys of a new org, version 1 of its data key,
// its blind-index key and its stream key, wrapped by the KEK, in tx: the
// control-database transaction that creates the org, so that an org never
// exists without keys. The org's hook in package org calls it. Returns invalid for a
// malformed org id, conflict when the org has keys already, and
// unavailable when the KEK provider cannot be used (then nothing is
// written, and the caller's transaction should roll back).
func (r *Ring) CreateOrgKeys(ctx context.Context, tx *store.Tx, orgID string) error {
	if !store.ValidOrgID(orgID) {
		return apperr.Errorf(apperr.Invalid, "invalid org id")
	}
	kek := r.currentKEK()
	for _, purpose := range []string{purposeData, purposeIndex, purposeStream} {
		h, err := newKeyset(purpose, 1)
		if err != nil {
			return err
		}
		wrapped, err := r.wrap(ctx, kek, h, orgID, purpose, 1)
		if err != nil {
			return err
		}
		if err := insertKey(ctx, tx, orgID, purpose, 1, kek.ID(), wrapped); err != nil {
			if store.IsUniqueViolation(err) {
				return apperr.Errorf(apperr.Conflict, "org already has keys")
			}
			return err
		}
	}
	r.emit(ctx, orgID, ActionCreated, map[string]string{"data_version": "1", "index_version": "1", "stream_version": "1", "kek_id": kek.ID()})
	return nil
}

func insertKey(ctx context.Context, tx *store.Tx, orgID, purpose string, version int, kekID string, wrapped []byte) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO org_keys (org_id, purpose, version, kek_id, wrapped, created_at)
VALUES ($1, $2, $3, $4, $5, $6)`, orgID, purpose, version, kekID, wrapped, tx.Now)
	if err != nil {
		return fmt.Errorf("keys: store %s key: %w", purpose, err)
	}
	return nil
}

// loadKey reads and unwraps the key of s; version 0 is the highest. It
// returns not_found when the org has no keys and invalid when it has no
// such version.
func (r *Ring) loadKey(ctx context.Context, s slot) (*unwrapped, error) {
	for attempt := 0; ; attempt++ {
		kek := r.currentKEK()
		var version int
		var wrapped []byte
		var err error
		if s.version == 0 {
			err = r.st.Control().SQL().QueryRowContext(ctx, `SELECT version, wrapped FROM org_keys
WHERE org_id = $1 AND purpose = $2 ORDER BY version DESC LIMIT 1`, s.org, s.purpose).Scan(&version, &wrapped)
		} else {
			version = s.version
			err = r.st.Control().SQL().QueryRowContext(ctx, `SELECT wrapped FROM org_keys
WHERE org_id = $1 AND purpose = $2 AND version = $3`, s.org, s.purpose, s.version).Scan(&wrapped)
		}
		if errors.Is(err, sql.ErrNoRows) {
			return nil, r.missingKey(ctx, s)
		}
		if err != nil {
			return nil, fmt.Errorf("keys: read %s key: %w", s.purpose, err)
		}
		h, err := r.unwrapHandle(ctx, kek, wrapped, s.org, s.purpose, version)
		if err != nil {
			// RotateKEK may have re-wrapped the row between our reads of the
			// KEK and of the row: try once more with the new KEK.
			if attempt == 0 && errors.Is(err, ErrAuthentication) && r.currentKEK() != kek {
				continue
			}
			return nil, err
		}
		u, err := primitive(h, s.purpose, version)
		if err != nil {
			return nil, err
		}
		r.use.of(s.org).unwraps.Add(1)
		r.metrics.unwrapOf(s.purpose).Inc()
		r.emit(ctx, s.org, ActionUnwrapped, map[string]string{"purpose": s.purpose, "version": strconv.Itoa(version), "kek_id": kek.ID()})
		return u, nil
	}
}

var errNoOrgKeys = apperr.Errorf(apperr.NotFound, "org keys not found")

// missingKey tells an org without keys (never created or destroyed:
// not_found) from a version the org does not have (invalid).
func (r *Ring) missingKey(ctx context.Context, s slot) error {
	if s.version == 0 {
		return errNoOrgKeys
	}
	var n int
	if err := r.st.Control().SQL().QueryRowContext(ctx,
		"SELECT COUNT(*) FROM org_keys WHERE org_id = $1", s.org).Scan(&n); err != nil {
		return fmt.Errorf("keys: read keys: %w", err)
	}
	if n == 0 {
		return errNoOrgKeys
	}
	return apperr.Errorf(apperr.Invalid, "ciphertext names an unknown key version")
}

// key returns the unwrapped key of s, from the cache or the database:
// not_found (errNoOrgKeys) for an org id that is not one (checked on a
// miss only: the cache holds nothing else, and the check costs a small
// Open a sixth of its time).
func (r *Ring) key(ctx context.Context, s slot) (*unwrapped, error) {
	if k := r.cache.get(s); k != nil {
		return k, nil
	}
	if !store.ValidOrgID(s.org) {
		return nil, errNoOrgKeys
	}
	return r.cache.load(ctx, s, func(ctx context.Context) (*unwrapped, error) { return r.loadKey(ctx, s) })
}

// RotateOrg makes a new version of the org's data key the one new values
// are sealed with; every older version stays, so values sealed under them
// still open. The blind-index key is not rotated (that would break every
// index). Operators call it (bulwark keys rotate). Other nodes take the
// new version up within Options.CacheTTL. Returns the new version;
// not_found when the org has no keys, conflict when another rotation of
// the org won the race, unavailable when the KEK provider cannot be used
// (then nothing is written).
func (r *Ring) RotateOrg(ctx context.Context, orgID string) (newVersion int, err error) {
	if !store.ValidOrgID(orgID) {
		return 0, errNoOrgKeys
	}
	var current sql.NullInt64
	if err := r.st.Control().SQL().QueryRowContext(ctx,
		"SELECT MAX(version) FROM org_keys WHERE org_id = $1 AND purpose = $2", orgID, purposeData).Scan(&current); err != nil {
		return 0, fmt.Errorf("keys: rotate: %w", err)
	}
	if !current.Valid {
		return 0, errNoOrgKeys
	}
	newVersion = int(current.Int64) + 1
	kek := r.currentKEK()
	h, err := newKeyset(purposeData, newVersion)
	if err != nil {
		return 0, err
	}
	// Wrap before the transaction: a remote KEK call must not hold the
	// control database's write lock.
	wrapped, err := r.wrap(ctx, kek, h, orgID, purposeData, newVersion)
	if err != nil {
		return 0, err
	}
	err = r.st.Control().InTx(ctx, func(tx *store.Tx) error {
		// The org's keys must still exist (DestroyOrgKeys may be running):
		// the same lock as the first stream key's creation.
		q := "SELECT COUNT(*) FROM org_keys WHERE org_id = $1 AND purpose = $2"
		if r.st.Driver() == store.Postgres {
			q = "SELECT COUNT(*) FROM (SELECT 1 FROM org_keys WHERE org_id = $1 AND purpose = $2 FOR SHARE) AS k"
		}
		var n int
		if err := tx.QueryRowContext(ctx, q, orgID, purposeIndex).Scan(&n); err != nil {
			return fmt.Errorf("keys: read keys: %w", err)
		}
		if n == 0 {
			return errNoOrgKeys
		}
		if err := insertKey(ctx, tx, orgID, purposeData, newVersion, kek.ID(), wrapped); err != nil {
			return err
		}
		// The values sealed with older versions are to be re-encrypted
		// (Reencryptor); recorded with the rotation so it cannot be lost.
		return startReencrypt(ctx, tx, orgID, newVersion)
	})
	if store.IsUniqueViolation(err) {
		return 0, apperr.Errorf(apperr.Conflict, "another rotation of this org's key ran at the same time")
	}
	if err != nil {
		return 0, fmt.Errorf("keys: rotate: %w", err)
	}
	r.cache.drop(slot{orgID, purposeData, 0})
	r.emit(ctx, orgID, ActionRotated, map[string]string{"purpose": purposeData, "version": strconv.Itoa(newVersion), "kek_id": kek.ID()})
	return newVersion, nil
}

// RotateKEK re-wraps every stored org key, every signing key and the
// canary under next, in one transaction, and makes next the ring's KEK: no
// value is re-encrypted.
// Operators call it (bulwark keys rotate-kek); afterwards the deployment
// must be configured with next, since the old KEK opens nothing any more.
// Returns the number of keys re-wrapped; unavailable when either KEK
// provider cannot be used (then nothing is changed).
func (r *Ring) RotateKEK(ctx context.Context, next KEK) (rewrapped int, err error) {
	if next == nil {
		return 0, apperr.Errorf(apperr.Invalid, "no new KEK given")
	}
	r.mu.Lock() // one KEK rotation at a time; loads wait for the switch
	defer r.mu.Unlock()
	old := r.kek
	type row struct {
		org, purpose string
		version      int
		wrapped      []byte
	}
	err = r.st.Control().InTx(ctx, func(tx *store.Tx) error {
		rows, err := tx.QueryContext(ctx, "SELECT org_id, purpose, version, wrapped FROM org_keys ORDER BY org_id, purpose, version")
		if err != nil {
			return fmt.Errorf("keys: read keys: %w", err)
		}
		var all []row
		for rows.Next() {
			var k row
			if err := rows.Scan(&k.org, &k.purpose, &k.version, &k.wrapped); err != nil {
				rows.Close()
				return fmt.Errorf("keys: read keys: %w", err)
			}
			all = append(all, k)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("keys: read keys: %w", err)
		}
		for _, k := range all {
			h, err := r.unwrapHandle(ctx, old, k.wrapped, k.org, k.purpose, k.version)
			if err != nil {
				return err
			}
			w, err := r.wrap(ctx, next, h, k.org, k.purpose, k.version)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE org_keys SET kek_id = $1, wrapped = $2
WHERE org_id = $3 AND purpose = $4 AND version = $5`, next.ID(), w, k.org, k.purpose, k.version); err != nil {
				return fmt.Errorf("keys: store re-wrapped key: %w", err)
			}
		}
		signing, err := r.rewrapSigningKeys(ctx, tx, old, next)
		if err != nil {
			return err
		}
		ct, err := next.Encrypt(ctx, canaryPlaintext, canaryAD)
		if err != nil {
			return r.kekFailed(ctx, "wrap KEK canary", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE keyring_meta SET kek_id = $1, wrapped = $2, updated_at = $3 WHERE name = $4`,
			next.ID(), ct, tx.Now, canaryName); err != nil {
			return fmt.Errorf("keys: store KEK canary: %w", err)
		}
		rewrapped = len(all) + signing
		return nil
	})
	if err != nil {
		return 0, err
	}
	r.kek = next
	r.emit(ctx, "", ActionKEKRotated, map[string]string{"old_kek_id": old.ID(), "kek_id": next.ID(), "rewrapped": strconv.Itoa(rewrapped)})
	return rewrapped, nil
}

// DestroyOrgKeys destroys every version of every key of the org
// (crypto-shredding): afterwards nothing this keyring holds opens a value
// sealed for the org, wherever a copy of it lives. On SQLite the rows are
// deleted with secure_delete on and the WAL is checkpointed, so the wrapped
// keys do not linger in the database files; PostgreSQL keeps dead rows
// until VACUUM, and backups of either keep wrapped keys: only the KEK opens
// those, and rotating the KEK (RotateKEK, then retiring the old KEK)
// finishes the shredding. The org's deletion hook calls it. Destroying the
// keys of an org that has none is no error. Other nodes drop cached keys
// within Options.CacheTTL.
func (r *Ring) DestroyOrgKeys(ctx context.Context, orgID string) error {
	if !store.ValidOrgID(orgID) {
		return apperr.Errorf(apperr.Invalid, "invalid org id")
	}
	sqlite := r.st.Driver() == store.SQLite
	var n int64
	// No flush of this process may add the org's use back between the
	// delete and forgetting the counts in memory.
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	err := r.st.Control().InTx(ctx, func(tx *store.Tx) error {
		if sqlite {
			// Zero deleted content instead of leaving it in free space. The
			// setting stays on this pooled connection; it only costs deletes.
			if _, err := tx.ExecContext(ctx, "PRAGMA secure_delete = ON"); err != nil {
				return fmt.Errorf("keys: secure delete: %w", err)
			}
		} else {
			// Wait for a stream key being made for the org to be stored
			// (insertStreamKey): the DELETE, whose snapshot is taken after
			// this lock, then destroys it too.
			if _, err := tx.ExecContext(ctx, "SELECT 1 FROM org_keys WHERE org_id = $1 FOR UPDATE", orgID); err != nil {
				return fmt.Errorf("keys: destroy keys: %w", err)
			}
		}
		res, err := tx.ExecContext(ctx, "DELETE FROM org_keys WHERE org_id = $1", orgID)
		if err != nil {
			return fmt.Errorf("keys: destroy keys: %w", err)
		}
		if n, err = res.RowsAffected(); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM org_key_use WHERE org_id = $1", orgID); err != nil {
			return fmt.Errorf("keys: destroy key use: %w", err)
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM reencrypt_jobs WHERE org_id = $1", orgID); err != nil {
			return fmt.Errorf("keys: drop re-encryption job: %w", err)
		}
		return nil
	})
	r.cache.dropOrg(orgID)
	if err != nil {
		return err
	}
	r.use.forget(orgID)
	if sqlite {
		// Move the zeroed pages into the database file and empty the WAL,
		// which still holds the pages as they were. Best effort: a reader
		// holding an old snapshot can keep the WAL from being truncated now;
		// SQLite's own checkpoints overwrite it later.
		_, _ = r.st.Control().SQL().ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
	}
	if n > 0 {
		r.emit(ctx, orgID, ActionDestroyed, map[string]string{"keys": strconv.FormatInt(n, 10)})
	}
	return nil
}
