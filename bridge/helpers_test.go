package bridge

import (
	"log/slog"
	"testing"
)

// newTestQueue returns the queue the acceptance tests run against.
func newTestQueue(t testing.TB) testQueue { return newMemQueue(t) }

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}
