package keys

import (
	"container/list"
	"context"
	"crypto/cipher"
	"errors"
	"sync"
	"time"

	"github.com/tink-crypto/tink-go/v2/tink"
)

// slot names one unwrapped key in the cache. Version 0 stands for the
// current (highest) version of the purpose.
type slot struct {
	org     string
	purpose string
	version int
}

// unwrapped is one org key version ready for use: an AEAD for purpose
// data, a MAC for purpose index, a streamKey for purpose stream. It holds
// key material and never leaves the package.
type unwrapped struct {
	version int
	aead    tink.AEAD
	gcm     cipher.AEAD // the same key as aead, called directly (see directGCM)
	mac     tink.MAC
	stream  *streamKey
}

type cacheItem struct {
	slot    slot
	key     *unwrapped
	expires time.Time
}

type flight struct {
	done chan struct{}
	key  *unwrapped
	err  error
}

// keyCache holds unwrapped keys: at most size of them, each for at most
// ttl, least recently used out first. Concurrent misses of one slot share
// one load. A load that started before its org was dropped does not put
// its key back (gen).
type keyCache struct {
	size int
	ttl  time.Duration
	now  func() time.Time

	mu      sync.Mutex
	items   map[slot]*list.Element // of *cacheItem
	lru     *list.List
	flights map[slot]*flight
	gen     map[string]uint64 // org -> times dropped
	// last is the element of the last hit: the next get of the same slot
	// (a page of records opens many values of one org) skips the map's
	// hashing of the slot, a fifth of a small Open's time. Every removal
	// goes through removeLocked, which clears it.
	last *list.Element
}

func newKeyCache(size int, ttl time.Duration, now func() time.Time) *keyCache {
	return &keyCache{size: size, ttl: ttl, now: now, items: map[slot]*list.Element{},
		lru: list.New(), flights: map[slot]*flight{}, gen: map[string]uint64{}}
}

// get returns the cached key of s, if any and not expired.
func (c *keyCache) get(s slot) *unwrapped {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.getLocked(s)
}

func (c *keyCache) getLocked(s slot) *unwrapped {
	e := c.last
	if e == nil || e.Value.(*cacheItem).slot != s {
		var ok bool
		if e, ok = c.items[s]; !ok {
			return nil
		}
	}
	it := e.Value.(*cacheItem)
	if !c.now().Before(it.expires) {
		c.removeLocked(e)
		return nil
	}
	c.lru.MoveToFront(e)
	c.last = e
	return it.key
}

// removeLocked forgets the cached item of e.
func (c *keyCache) removeLocked(e *list.Element) {
	if c.last == e {
		c.last = nil
	}
	c.lru.Remove(e)
	delete(c.items, e.Value.(*cacheItem).slot)
}

// load returns the key of s from the cache, or from fn, which runs once
// for all concurrent callers missing s. A key loaded for the current
// version (0) is cached under its own version too.
func (c *keyCache) load(ctx context.Context, s slot, fn func(ctx context.Context) (*unwrapped, error)) (*unwrapped, error) {
	c.mu.Lock()
	if k := c.getLocked(s); k != nil {
		c.mu.Unlock()
		return k, nil
	}
	if f, ok := c.flights[s]; ok {
		c.mu.Unlock()
		select {
		case <-f.done:
			return f.key, f.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f := &flight{done: make(chan struct{})}
	c.flights[s] = f
	gen := c.gen[s.org]
	c.mu.Unlock()

	// The deferred part runs even if fn panics, so that waiters are never
	// left behind a flight that will not land.
	f.err = errors.New("keys: key load did not finish")
	defer func() {
		c.mu.Lock()
		delete(c.flights, s)
		if f.err == nil && c.gen[s.org] == gen {
			c.putLocked(s, f.key)
			if s.version == 0 {
				c.putLocked(slot{s.org, s.purpose, f.key.version}, f.key)
			}
		}
		c.mu.Unlock()
		close(f.done)
	}()
	f.key, f.err = fn(ctx)
	return f.key, f.err
}

func (c *keyCache) putLocked(s slot, k *unwrapped) {
	if c.size <= 0 {
		return
	}
	if e, ok := c.items[s]; ok {
		c.removeLocked(e)
	}
	c.items[s] = c.lru.PushFront(&cacheItem{slot: s, key: k, expires: c.now().Add(c.ttl)})
	for c.lru.Len() > c.size {
		c.removeLocked(c.lru.Back())
	}
}

// drop forgets slot s.
func (c *keyCache) drop(s slot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[s]; ok {
		c.removeLocked(e)
	}
}

// dropOrg forgets every key of org, and keeps loads in flight from
// putting theirs back.
func (c *keyCache) dropOrg(org string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen[org]++
	for s, e := range c.items {
		if s.org == org {
			c.removeLocked(e)
		}
	}
}

// len returns the number of cached keys.
func (c *keyCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}
