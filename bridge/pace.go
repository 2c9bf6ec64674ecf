package bridge

import (
	"context"
	"time"
)

// bucket is a token bucket: rate tokens per second, at most burst stored.
// It is used by the single writer goroutine only, so it has no lock.
type bucket struct {
	rate   float64 // tokens per second; <= 0 means unlimited
	burst  float64
	tokens float64
	last   time.Time
	now    func() time.Time
	sleep  func(ctx context.Context, d time.Duration) error
}

func newBucket(rate float64, now func() time.Time, sleep func(context.Context, time.Duration) error) *bucket {
	burst := rate / 10 // 100 ms worth, at least one message
	if burst < 1 {
		burst = 1
	}
	return &bucket{rate: rate, burst: burst, tokens: burst, now: now, sleep: sleep, last: now()}
}

// tryTake consumes a token if one is available now.
func (b *bucket) tryTake() bool {
	b.refill()
	if b.tokens >= 1 {
		b.tokens--
		return true
	}
	return false
}

func (b *bucket) refill() {
	t := b.now()
	b.tokens += t.Sub(b.last).Seconds() * b.rate
	b.last = t
	if b.tokens > b.burst {
		b.tokens = b.burst
	}
}

// take waits until one token is available and consumes it.
func (b *bucket) take(ctx context.Context) error {
	if b.rate <= 0 {
		return nil
	}
	for {
		b.refill()
		if b.tokens >= 1 {
			b.tokens--
			return nil
		}
		wait := time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
		if wait < time.Millisecond {
			wait = time.Millisecond
		}
		if err := b.sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// sleepCtx sleeps for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
