package identity

import (
	"sync"
	"time"
)

// throttle counts failures per key (a client address, an e-mail index)
// in this process: after n failures in a row the next attempt must wait
// Base × 2^(n-1); after Lock failures the key is locked for LockFor. A
// success resets the key. Entries are dropped once they no longer delay
// anything, and the map is bounded.
type throttle struct {
	mu      sync.Mutex
	policy  Lockout
	after   int // failures allowed before delays start
	now     func() time.Time
	entries map[string]*tstate
}

type tstate struct {
	failures int
	last     time.Time
	until    time.Time // locked until
}

// maxThrottleEntries bounds the memory a flood of distinct keys can take;
// past it, the oldest quiet entries are dropped first.
const maxThrottleEntries = 200_000

func newThrottle(p Lockout, now func() time.Time) *throttle {
	return &throttle{policy: p, now: now, entries: map[string]*tstate{}}
}

// wait returns how long key must wait before its next attempt (0: go).
func (t *throttle) wait(key string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.entries[key]
	if !ok {
		return 0
	}
	now := t.now()
	if now.Before(e.until) {
		return e.until.Sub(now)
	}
	n := e.failures - t.after
	if n <= 0 {
		return 0
	}
	if n > 20 {
		n = 20
	}
	next := e.last.Add(t.policy.Base << (n - 1))
	if now.Before(next) {
		return next.Sub(now)
	}
	return 0
}

// fail records a failure and reports whether it locked the key.
func (t *throttle) fail(key string) (locked bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	e, ok := t.entries[key]
	if !ok {
		if len(t.entries) >= maxThrottleEntries {
			t.pruneLocked(now)
		}
		e = &tstate{}
		t.entries[key] = e
	}
	if !e.until.IsZero() && !now.Before(e.until) {
		*e = tstate{} // the lock ran out: start over
	}
	e.failures++
	e.last = now
	if e.failures-t.after >= t.policy.Lock && e.until.IsZero() {
		e.until = now.Add(t.policy.LockFor)
		return true
	}
	return false
}

// reset forgets key's failures.
func (t *throttle) reset(key string) {
	t.mu.Lock()
	delete(t.entries, key)
	t.mu.Unlock()
}

// pruneLocked drops entries that delay nothing any more, and if that is
// not enough, the oldest half.
func (t *throttle) pruneLocked(now time.Time) {
	horizon := t.policy.Base << 20
	if t.policy.LockFor > horizon {
		horizon = t.policy.LockFor
	}
	for k, e := range t.entries {
		if now.Sub(e.last) > horizon && now.After(e.until) {
			delete(t.entries, k)
		}
	}
	if len(t.entries) < maxThrottleEntries {
		return
	}
	var cut time.Time
	for _, e := range t.entries {
		if cut.IsZero() || e.last.Before(cut) {
			cut = e.last
		}
	}
	cut = cut.Add(now.Sub(cut) / 2)
	for k, e := range t.entries {
		if e.last.Before(cut) {
			delete(t.entries, k)
		}
	}
}
