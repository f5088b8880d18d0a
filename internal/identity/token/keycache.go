package token

import (
	"context"
	"crypto/hmac"
	"crypto/sha512"
	"fmt"
	"hash"
	"sync"
	"sync/atomic"
	"time"

	"bulwark/internal/keys"
)

// minKeySize is the shortest HS512 key used: RFC 7518 wants at least the
// hash's size. A shorter key from Keys is never used, to sign or verify.
const minKeySize = sha512.Size

// keyCache holds the verification keys for ttl (see the package comment
// for the window that opens). Reads of a fresh set take no lock; a stale
// set is reloaded by one caller while the others wait for it.
type keyCache struct {
	keys Keys
	ttl  time.Duration
	now  func() time.Time

	set atomic.Pointer[keySet]
	mu  sync.Mutex // one reload at a time
}

// keySet is one answer of Keys.VerificationKeys, or its failure.
type keySet struct {
	byKid  map[string]*macKey
	err    error
	loaded time.Time // taken before the call: the set is never held longer than ttl after it
}

// macKey is one HS512 key with a pool of HMAC states, each keyed once, so
// that a verification neither re-hashes the key nor allocates.
type macKey struct {
	secret []byte
	pool   sync.Pool // of *macState
}

type macState struct {
	h   hash.Hash
	in  []byte // the signing input, copied: hash.Hash takes bytes, the token is a string
	sum []byte
}

// verify reports whether mac is the HMAC-SHA512 of input, comparing in
// constant time.
func (k *macKey) verify(input string, mac []byte) bool {
	st, _ := k.pool.Get().(*macState)
	if st == nil {
		st = &macState{h: hmac.New(sha512.New, k.secret), sum: make([]byte, 0, sha512.Size)}
	} else {
		st.h.Reset()
	}
	st.in = append(st.in[:0], input...)
	st.h.Write(st.in)
	st.sum = st.h.Sum(st.sum[:0])
	ok := hmac.Equal(st.sum, mac)
	k.pool.Put(st)
	return ok
}

func (c *keyCache) fresh(s *keySet, now time.Time) bool {
	return s != nil && !now.Before(s.loaded) && now.Sub(s.loaded) < c.ttl
}

// get returns the key named kid, nil when the keyring has no such key (as
// of the cached set). The error is that of Keys: the keys could not be
// read.
func (c *keyCache) get(ctx context.Context, kid string) (*macKey, error) {
	if s := c.set.Load(); c.fresh(s, c.now()) {
		return s.lookup(kid)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	old := c.set.Load()
	if c.fresh(old, now) {
		return old.lookup(kid) // another caller reloaded it meanwhile
	}
	m, err := c.keys.VerificationKeys(ctx, keys.SignAccessToken)
	if err != nil {
		err = fmt.Errorf("token: read verification keys: %w", err)
		if ctx.Err() == nil {
			// Remembered, so that a keyring that is down is asked once per
			// ttl, not once per request. Fails closed: the old keys are
			// dropped too.
			c.set.Store(&keySet{err: err, loaded: now})
		}
		return nil, err
	}
	next := &keySet{byKid: make(map[string]*macKey, len(m)), loaded: now}
	for id, secret := range m {
		if len(secret) < minKeySize {
			continue
		}
		if old != nil && old.byKid[id] != nil && hmac.Equal(old.byKid[id].secret, secret) {
			next.byKid[id] = old.byKid[id] // keeps its warm HMAC states
			continue
		}
		next.byKid[id] = &macKey{secret: secret}
	}
	c.set.Store(next)
	return next.lookup(kid)
}

func (s *keySet) lookup(kid string) (*macKey, error) {
	if s.err != nil {
		return nil, s.err
	}
	return s.byKid[kid], nil
}
