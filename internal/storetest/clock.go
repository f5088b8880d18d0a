package storetest

import (
	"sync/atomic"
	"time"
)

// Clock is a settable clock for tests, safe for concurrent use: pass
// its Now as store.Options.Now and to the services under test.
type Clock struct{ ns atomic.Int64 }

// NewClock returns a Clock reading start.
func NewClock(start time.Time) *Clock {
	c := &Clock{}
	c.ns.Store(start.UnixNano())
	return c
}

// Now returns the clock's time, in UTC.
func (c *Clock) Now() time.Time { return time.Unix(0, c.ns.Load()).UTC() }

// Add moves the clock by d.
func (c *Clock) Add(d time.Duration) { c.ns.Add(int64(d)) }
