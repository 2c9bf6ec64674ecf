package gatewaytest

import (
	"sync"
	"time"
)

// Clock is a settable clock for tests that move time by hand (token and
// session expiry, grace periods, rate limits): Now is what the code under
// test reads, Advance is what the test does. Safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock is a Clock that reads t until advanced.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now is the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

// Advance moves the clock d forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
