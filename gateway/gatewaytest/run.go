package gatewaytest

import (
	"context"
	"testing"
	"time"
)

// RunUntilCleanup runs run(ctx) in its own goroutine until the test's
// cleanup, which cancels ctx and fails the test if run returns an error or
// has not returned within stop. The channel gets run's result; a test that
// takes it before the cleanup puts it back for the cleanup's check.
func RunUntilCleanup(t testing.TB, stop time.Duration, run func(context.Context) error) chan error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(stop):
			t.Errorf("Run did not return within %v of cancel", stop)
		}
	})
	return done
}
