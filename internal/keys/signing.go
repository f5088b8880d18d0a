package keys

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"

	"bulwark/internal/apperr"
	"bulwark/internal/store"
)

// The purposes of signing keys. Each purpose has its own keys: a kid never
// verifies for another purpose.
const (
	// SignAccessToken signs access tokens: HS512, 64-byte HMAC secrets.
	SignAccessToken = "access_token"
	// SignFileLink signs file links: HS512, 64-byte HMAC secrets, never
	// those of access tokens.
	SignFileLink = "file_link"
	// SignAuditCheckpoint signs audit checkpoints: Ed25519.
	SignAuditCheckpoint = "audit_checkpoint"
)

// The algorithms of signing keys, as JWS names them.
const (
	AlgHS512 = "HS512"
	AlgEdDSA = "EdDSA" // Ed25519
)

// The actions of signing key events. The details name the purpose, the
// kid and the KEK id, never key material.
const (
	ActionSigningCreated = "key.signing_created" // the first key of a purpose was created
	ActionSigningRotated = "key.signing_rotated" // a purpose got a new current key
)

const (
	hs512KeySize = 64
	kidSize      = 16
)

// SigningAlg returns the algorithm of the keys of purpose (AlgHS512 or
// AlgEdDSA); invalid for an unknown purpose.
func SigningAlg(purpose string) (string, error) {
	switch purpose {
	case SignAccessToken, SignFileLink:
		return AlgHS512, nil
	case SignAuditCheckpoint:
		return AlgEdDSA, nil
	}
	return "", apperr.Errorf(apperr.Invalid, "unknown signing key purpose %q", purpose)
}

// signingKeyAD is the associated data that binds a wrapped signing key to
// its purpose, kid and algorithm: a wrapped key copied to another row or
// purpose does not unwrap.
func signingKeyAD(purpose, kid, alg string) []byte {
	b := appendLP(nil, "bulwark/keys/signing-key/v1")
	b = appendLP(b, purpose)
	b = appendLP(b, kid)
	return appendLP(b, alg)
}

// newSigningKey generates a kid and the raw key stored for alg: a 64-byte
// HMAC secret, or a 32-byte Ed25519 seed. material is what SigningKey
// returns: the secret, or the ed25519.PrivateKey of the seed.
func newSigningKey(alg string) (kid string, raw, material []byte, err error) {
	id := make([]byte, kidSize)
	if _, err := rand.Read(id); err != nil {
		return "", nil, nil, fmt.Errorf("keys: generate kid: %w", err)
	}
	switch alg {
	case AlgHS512:
		raw = make([]byte, hs512KeySize)
	case AlgEdDSA:
		raw = make([]byte, ed25519.SeedSize)
	default:
		return "", nil, nil, fmt.Errorf("keys: unknown signing algorithm %q", alg)
	}
	if _, err := rand.Read(raw); err != nil {
		return "", nil, nil, fmt.Errorf("keys: generate %s key: %w", alg, err)
	}
	material, err = signingMaterial(alg, raw)
	if err != nil {
		return "", nil, nil, err
	}
	return base64.RawURLEncoding.EncodeToString(id), raw, material, nil
}

// signingMaterial turns a stored raw key into what SigningKey returns.
func signingMaterial(alg string, raw []byte) ([]byte, error) {
	switch {
	case alg == AlgHS512 && len(raw) == hs512KeySize:
		return raw, nil
	case alg == AlgEdDSA && len(raw) == ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(raw), nil
	}
	return nil, fmt.Errorf("keys: stored %s key has a wrong size", alg)
}

// verificationMaterial turns what SigningKey returns into what
// VerificationKeys returns: the secret itself, or the Ed25519 public key.
func verificationMaterial(alg string, material []byte) []byte {
	if alg == AlgEdDSA {
		return clone(ed25519.PrivateKey(material).Public().(ed25519.PublicKey))
	}
	return clone(material)
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

// signingCache holds unwrapped signing keys, each for at most
// Options.CacheTTL, and the current kid of each purpose. Its zero value is
// ready for use. Loads and rotations of one purpose in this process take
// the purpose's turn, one at a time.
type signingCache struct {
	mu      sync.Mutex
	current map[string]cachedCurrent // purpose -> current key
	keys    map[string]cachedSigning // kid -> unwrapped key
	turns   map[string]chan struct{} // purpose -> its turn (capacity 1)
}

type cachedCurrent struct {
	kid     string
	expires time.Time
}

type cachedSigning struct {
	purpose, alg string
	material     []byte
	expires      time.Time
}

// turn waits for the purpose's turn; the caller gives it back with
// release.
func (c *signingCache) turn(ctx context.Context, purpose string) (release func(), err error) {
	c.mu.Lock()
	if c.turns == nil {
		c.turns = map[string]chan struct{}{}
	}
	t, ok := c.turns[purpose]
	if !ok {
		t = make(chan struct{}, 1)
		c.turns[purpose] = t
	}
	c.mu.Unlock()
	select {
	case t <- struct{}{}:
		return func() { <-t }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// getCurrent returns the cached current key of purpose, if any and fresh.
func (c *signingCache) getCurrent(purpose string, now time.Time) (kid string, material []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur, ok := c.current[purpose]
	if !ok || !now.Before(cur.expires) {
		return "", nil
	}
	k := c.getLocked(cur.kid, purpose, now)
	if k == nil {
		return "", nil
	}
	return cur.kid, k.material
}

// get returns the cached unwrapped key kid of purpose, if any and fresh.
func (c *signingCache) get(kid, purpose string, now time.Time) *cachedSigning {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.getLocked(kid, purpose, now)
}

func (c *signingCache) getLocked(kid, purpose string, now time.Time) *cachedSigning {
	k, ok := c.keys[kid]
	if !ok || k.purpose != purpose {
		return nil
	}
	if !now.Before(k.expires) {
		delete(c.keys, kid)
		return nil
	}
	return &k
}

// put caches an unwrapped key for ttl, and makes it the purpose's current
// one when current is set. It also forgets every key past its time.
func (c *signingCache) put(kid, purpose, alg string, material []byte, current bool, now time.Time, ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.keys == nil {
		c.keys = map[string]cachedSigning{}
		c.current = map[string]cachedCurrent{}
	}
	for id, k := range c.keys {
		if !now.Before(k.expires) {
			delete(c.keys, id)
		}
	}
	expires := now.Add(ttl)
	c.keys[kid] = cachedSigning{purpose: purpose, alg: alg, material: material, expires: expires}
	if current {
		c.current[purpose] = cachedCurrent{kid: kid, expires: expires}
	}
}

// dropCurrent forgets the current key of purpose (its key stays cached:
// it still verifies).
func (c *signingCache) dropCurrent(purpose string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.current, purpose)
}

func (r *Ring) cacheSigning(kid, purpose, alg string, material []byte, current bool) {
	if r.opts.CacheSize < 0 {
		return
	}
	r.sig.put(kid, purpose, alg, material, current, r.opts.Now(), r.opts.CacheTTL)
}

// errSigningRace: another caller stored the current key of the purpose
// first.
var errSigningRace = errors.New("keys: another current signing key was stored first")

// SigningKey returns the current key of purpose and its kid, to sign with:
// for HS512 the 64-byte HMAC secret, for EdDSA an ed25519.PrivateKey. The
// first use of a purpose creates its key; concurrent first uses, on any
// node, end with one key. The key is cached for Options.CacheTTL, so
// another node may go on signing with a key for that long after
// RotateSigningKey ran elsewhere. The returned slice is the caller's own.
// Returns invalid for an unknown purpose, unavailable when the KEK provider
// cannot be used (then nothing is written).
func (r *Ring) SigningKey(ctx context.Context, purpose string) (kid string, key []byte, err error) {
	alg, err := SigningAlg(purpose)
	if err != nil {
		return "", nil, err
	}
	if kid, m := r.sig.getCurrent(purpose, r.opts.Now()); m != nil {
		return kid, clone(m), nil
	}
	release, err := r.sig.turn(ctx, purpose)
	if err != nil {
		return "", nil, err
	}
	defer release()
	if kid, m := r.sig.getCurrent(purpose, r.opts.Now()); m != nil {
		return kid, clone(m), nil
	}
	for attempt := 0; attempt < 3; attempt++ {
		kid, m, err := r.loadCurrentSigning(ctx, purpose, alg)
		if err != nil {
			return "", nil, err
		}
		if m == nil {
			kid, m, err = r.createSigningKey(ctx, purpose, alg)
			if errors.Is(err, errSigningRace) {
				continue // read the one that won
			}
			if err != nil {
				return "", nil, err
			}
		}
		r.cacheSigning(kid, purpose, alg, m, true)
		return kid, clone(m), nil
	}
	return "", nil, apperr.Errorf(apperr.Conflict, "the current %s signing key changed while it was read", purpose)
}

// loadCurrentSigning reads and unwraps the current key of purpose; no kid
// and no error when the purpose has none yet.
func (r *Ring) loadCurrentSigning(ctx context.Context, purpose, alg string) (kid string, material []byte, err error) {
	for attempt := 0; ; attempt++ {
		kek := r.currentKEK()
		var rowAlg string
		var wrapped []byte
		err := r.st.Control().SQL().QueryRowContext(ctx,
			"SELECT kid, alg, wrapped FROM signing_keys WHERE purpose = $1 AND retired_at IS NULL", purpose).Scan(&kid, &rowAlg, &wrapped)
		if errors.Is(err, sql.ErrNoRows) {
			return "", nil, nil
		}
		if err != nil {
			return "", nil, fmt.Errorf("keys: read %s signing key: %w", purpose, err)
		}
		if rowAlg != alg {
			return "", nil, fmt.Errorf("keys: %s signing key %s is %s, want %s", purpose, kid, rowAlg, alg)
		}
		m, err := r.unwrapSigning(ctx, kek, purpose, kid, alg, wrapped)
		if err != nil {
			// RotateKEK may have re-wrapped the row between our reads of the
			// KEK and of the row: try once more with the new KEK.
			if attempt == 0 && errors.Is(err, ErrAuthentication) && r.currentKEK() != kek {
				continue
			}
			return "", nil, err
		}
		return kid, m, nil
	}
}

// unwrapSigning decrypts a stored signing key under kek.
func (r *Ring) unwrapSigning(ctx context.Context, kek KEK, purpose, kid, alg string, wrapped []byte) ([]byte, error) {
	raw, err := kek.Decrypt(ctx, wrapped, signingKeyAD(purpose, kid, alg))
	if err != nil {
		return nil, r.kekFailed(ctx, "unwrap "+purpose+" signing key", err)
	}
	m, err := signingMaterial(alg, raw)
	if err != nil {
		return nil, err
	}
	r.emit(ctx, "", ActionUnwrapped, map[string]string{"purpose": purpose, "kid": kid, "kek_id": kek.ID()})
	return m, nil
}

// storeSigningKey wraps raw under the ring's KEK and runs write with the
// wrapped key, holding the KEK so that RotateKEK does not switch it
// between the wrap and the commit (a row wrapped by a retired KEK). The
// KEK call is made before the transaction: it must not hold the control
// database's write lock.
func (r *Ring) storeSigningKey(ctx context.Context, purpose, kid, alg string, raw []byte,
	write func(tx *store.Tx, kekID string, wrapped []byte) error) (kekID string, err error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	kek := r.kek // not currentKEK: a second RLock can deadlock behind RotateKEK
	wrapped, err := kek.Encrypt(ctx, raw, signingKeyAD(purpose, kid, alg))
	if err != nil {
		return "", r.kekFailed(ctx, "wrap "+purpose+" signing key", err)
	}
	err = r.st.Control().InTx(ctx, func(tx *store.Tx) error { return write(tx, kek.ID(), wrapped) })
	return kek.ID(), err
}

func insertSigningKey(ctx context.Context, tx *store.Tx, kid, purpose, alg, kekID string, wrapped []byte, now time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO signing_keys (kid, purpose, alg, kek_id, wrapped, created_at)
VALUES ($1, $2, $3, $4, $5, $6)`, kid, purpose, alg, kekID, wrapped, now)
	if store.IsUniqueViolation(err) {
		return errSigningRace
	}
	if err != nil {
		return fmt.Errorf("keys: store %s signing key: %w", purpose, err)
	}
	return nil
}

// createSigningKey creates the first key of purpose. errSigningRace when
// another caller created one first.
func (r *Ring) createSigningKey(ctx context.Context, purpose, alg string) (kid string, material []byte, err error) {
	kid, raw, material, err := newSigningKey(alg)
	if err != nil {
		return "", nil, err
	}
	now := r.signingNow()
	kekID, err := r.storeSigningKey(ctx, purpose, kid, alg, raw, func(tx *store.Tx, kekID string, wrapped []byte) error {
		return insertSigningKey(ctx, tx, kid, purpose, alg, kekID, wrapped, now)
	})
	if err != nil {
		return "", nil, err
	}
	r.emit(ctx, "", ActionSigningCreated, map[string]string{"purpose": purpose, "kid": kid, "alg": alg, "kek_id": kekID})
	return kid, material, nil
}

// signingNow is the time signing key rows are written with: the ring's
// clock, which VerificationKeys checks expiry against, in the form of
// Tx.Now.
func (r *Ring) signingNow() time.Time { return r.now().Truncate(time.Microsecond) }

// VerificationKeys returns, by kid, the keys that verify signatures of
// purpose: the current key and every retired one not past its expiry
// (RotateSigningKey); for HS512 the HMAC secret, for EdDSA the
// ed25519.PublicKey. It reads the kids from the control database at each
// call, so that a key created or rotated on another node verifies here at
// once; unwrapped keys are cached for Options.CacheTTL. An empty map when
// the purpose has no key yet. The map is the caller's own. Returns invalid
// for an unknown purpose, unavailable when the KEK provider cannot be used.
func (r *Ring) VerificationKeys(ctx context.Context, purpose string) (map[string][]byte, error) {
	alg, err := SigningAlg(purpose)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		kek := r.currentKEK()
		out, err := r.verificationKeys(ctx, kek, purpose, alg)
		if err != nil && attempt == 0 && errors.Is(err, ErrAuthentication) && r.currentKEK() != kek {
			continue // re-wrapped by RotateKEK meanwhile
		}
		return out, err
	}
}

func (r *Ring) verificationKeys(ctx context.Context, kek KEK, purpose, alg string) (map[string][]byte, error) {
	type row struct {
		kid, alg string
		wrapped  []byte
	}
	rows, err := r.st.Control().SQL().QueryContext(ctx,
		"SELECT kid, alg, wrapped, expires_at FROM signing_keys WHERE purpose = $1", purpose)
	if err != nil {
		return nil, fmt.Errorf("keys: read %s signing keys: %w", purpose, err)
	}
	now := r.now()
	var live []row
	for rows.Next() {
		var k row
		var expires sql.NullTime
		if err := rows.Scan(&k.kid, &k.alg, &k.wrapped, &expires); err != nil {
			rows.Close()
			return nil, fmt.Errorf("keys: read %s signing keys: %w", purpose, err)
		}
		if !expires.Valid || now.Before(expires.Time) {
			live = append(live, k)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("keys: read %s signing keys: %w", purpose, err)
	}
	out := make(map[string][]byte, len(live))
	for _, k := range live {
		if k.alg != alg {
			return nil, fmt.Errorf("keys: %s signing key %s is %s, want %s", purpose, k.kid, k.alg, alg)
		}
		if c := r.sig.get(k.kid, purpose, r.opts.Now()); c != nil {
			out[k.kid] = verificationMaterial(alg, c.material)
			continue
		}
		m, err := r.unwrapSigning(ctx, kek, purpose, k.kid, alg, k.wrapped)
		if err != nil {
			return nil, err
		}
		r.cacheSigning(k.kid, purpose, alg, m, false)
		out[k.kid] = verificationMaterial(alg, m)
	}
	return out, nil
}

// RotateSigningKey makes a new key of purpose the current one and retires
// the old one: it goes on verifying until now + keepFor, which must cover
// the longest lifetime of anything it signed, and is left out of
// VerificationKeys afterwards. Since other nodes may go on signing with
// the old key for up to Options.CacheTTL, keepFor should include that too.
// Retired keys already past their expiry are deleted. Without a current
// key, the new key is simply the first one. Returns the new kid; invalid
// for an unknown purpose or a negative keepFor, conflict when another
// rotation of the purpose won the race, unavailable when the KEK provider
// cannot be used (then nothing is written).
func (r *Ring) RotateSigningKey(ctx context.Context, purpose string, keepFor time.Duration) (newKid string, err error) {
	alg, err := SigningAlg(purpose)
	if err != nil {
		return "", err
	}
	if keepFor < 0 {
		return "", apperr.Errorf(apperr.Invalid, "negative keep-for duration")
	}
	release, err := r.sig.turn(ctx, purpose)
	if err != nil {
		return "", err
	}
	defer release()
	kid, raw, material, err := newSigningKey(alg)
	if err != nil {
		return "", err
	}
	now := r.signingNow()
	expires := now.Add(keepFor)
	var oldKid string
	var pruned int
	kekID, err := r.storeSigningKey(ctx, purpose, kid, alg, raw, func(tx *store.Tx, kekID string, wrapped []byte) error {
		oldKid, pruned = "", 0
		rows, err := tx.QueryContext(ctx, "SELECT kid, retired_at, expires_at FROM signing_keys WHERE purpose = $1", purpose)
		if err != nil {
			return fmt.Errorf("keys: read %s signing keys: %w", purpose, err)
		}
		var expired []string
		for rows.Next() {
			var k string
			var retired, exp sql.NullTime
			if err := rows.Scan(&k, &retired, &exp); err != nil {
				rows.Close()
				return fmt.Errorf("keys: read %s signing keys: %w", purpose, err)
			}
			switch {
			case !retired.Valid:
				oldKid = k
			case exp.Valid && !now.Before(exp.Time):
				expired = append(expired, k)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("keys: read %s signing keys: %w", purpose, err)
		}
		for _, k := range expired {
			if _, err := tx.ExecContext(ctx, "DELETE FROM signing_keys WHERE kid = $1", k); err != nil {
				return fmt.Errorf("keys: delete expired %s signing key: %w", purpose, err)
			}
		}
		pruned = len(expired)
		if oldKid != "" {
			res, err := tx.ExecContext(ctx, `UPDATE signing_keys SET retired_at = $1, expires_at = $2
WHERE kid = $3 AND retired_at IS NULL`, now, expires, oldKid)
			if err != nil {
				return fmt.Errorf("keys: retire %s signing key: %w", purpose, err)
			}
			if n, err := res.RowsAffected(); err != nil || n != 1 {
				return errSigningRace
			}
		}
		return insertSigningKey(ctx, tx, kid, purpose, alg, kekID, wrapped, now)
	})
	if errors.Is(err, errSigningRace) {
		return "", apperr.Errorf(apperr.Conflict, "another rotation of the %s signing key ran at the same time", purpose)
	}
	if err != nil {
		return "", err
	}
	r.sig.dropCurrent(purpose)
	r.cacheSigning(kid, purpose, alg, material, true)
	details := map[string]string{"purpose": purpose, "kid": kid, "alg": alg, "kek_id": kekID,
		"old_kid": oldKid, "pruned": fmt.Sprint(pruned)}
	if oldKid != "" {
		details["old_expires_at"] = expires.Format(time.RFC3339Nano)
	}
	r.emit(ctx, "", ActionSigningRotated, details)
	return kid, nil
}

// rewrapSigningKeys re-wraps every stored signing key from old to next in
// tx, for RotateKEK. Returns how many it re-wrapped.
func (r *Ring) rewrapSigningKeys(ctx context.Context, tx *store.Tx, old, next KEK) (int, error) {
	type row struct {
		kid, purpose, alg string
		wrapped           []byte
	}
	rows, err := tx.QueryContext(ctx, "SELECT kid, purpose, alg, wrapped FROM signing_keys ORDER BY kid")
	if err != nil {
		return 0, fmt.Errorf("keys: read signing keys: %w", err)
	}
	var all []row
	for rows.Next() {
		var k row
		if err := rows.Scan(&k.kid, &k.purpose, &k.alg, &k.wrapped); err != nil {
			rows.Close()
			return 0, fmt.Errorf("keys: read signing keys: %w", err)
		}
		all = append(all, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("keys: read signing keys: %w", err)
	}
	for _, k := range all {
		ad := signingKeyAD(k.purpose, k.kid, k.alg)
		raw, err := old.Decrypt(ctx, k.wrapped, ad)
		if err != nil {
			return 0, r.kekFailed(ctx, "unwrap "+k.purpose+" signing key", err)
		}
		w, err := next.Encrypt(ctx, raw, ad)
		clear(raw)
		if err != nil {
			return 0, r.kekFailed(ctx, "wrap "+k.purpose+" signing key", err)
		}
		if _, err := tx.ExecContext(ctx, "UPDATE signing_keys SET kek_id = $1, wrapped = $2 WHERE kid = $3",
			next.ID(), w, k.kid); err != nil {
			return 0, fmt.Errorf("keys: store re-wrapped signing key: %w", err)
		}
	}
	return len(all), nil
}
