package keys

import (
	"testing"
	"time"
)

// The cache answers a repeated get of one slot without the map, and that
// shortcut forgets what drop, dropOrg, expiry and eviction remove.
func TestKeyCache_RepeatedGetsFollowRemovals(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	c := newKeyCache(2, time.Minute, func() time.Time { return now })
	a := slot{"00000000-0000-0000-0000-00000000000a", purposeData, 0}
	b := slot{"00000000-0000-0000-0000-00000000000b", purposeData, 0}
	d := slot{"00000000-0000-0000-0000-00000000000d", purposeData, 0}
	ka, kb, kd := &unwrapped{version: 1}, &unwrapped{version: 2}, &unwrapped{version: 3}
	put := func(s slot, k *unwrapped) {
		c.mu.Lock()
		c.putLocked(s, k)
		c.mu.Unlock()
	}
	hitTwice := func(s slot, want *unwrapped) {
		t.Helper()
		for range 2 {
			if got := c.get(s); got != want {
				t.Fatalf("get(%s) = %v, want %v", s.org[len(s.org)-1:], got, want)
			}
		}
	}

	put(a, ka)
	hitTwice(a, ka)
	c.drop(a)
	hitTwice(a, nil)

	put(a, ka)
	hitTwice(a, ka)
	c.dropOrg(a.org)
	hitTwice(a, nil)

	put(a, ka)
	hitTwice(a, ka)
	now = now.Add(time.Minute)
	hitTwice(a, nil)

	// Eviction: a is the least recently used of three in a cache of two.
	put(a, ka)
	hitTwice(a, ka)
	put(b, kb)
	hitTwice(b, kb)
	put(d, kd)
	hitTwice(a, nil)
	hitTwice(b, kb)
	hitTwice(d, kd)

	// A slot put anew replaces the key a repeated get returns.
	kb2 := &unwrapped{version: 4}
	put(b, kb2)
	hitTwice(b, kb2)

	// Gets that alternate between slots keep each one's key.
	for range 3 {
		if c.get(b) != kb2 || c.get(d) != kd {
			t.Fatal("alternating gets returned the wrong key")
		}
	}
	if c.len() != 2 {
		t.Fatalf("len = %d, want 2", c.len())
	}
}
