package bridge

import (
	"log/slog"
	"testing"

	"github.com/edgegw/edgegw/store"
)

var _ Queue = (*store.Queue)(nil)

// newTestQueue returns the queue the acceptance tests run against: a real
// store.Queue (Badger) in t.TempDir(), closed at cleanup.
func newTestQueue(t testing.TB) testQueue {
	t.Helper()
	return openStore(t, []store.RouteLimits{{Name: "telemetry"}, {Name: "forbidden"}, {Name: "cmd"}})
}

// openStore opens a store.Queue with routes lims in t.TempDir() and closes
// it at cleanup.
func openStore(t testing.TB, lims []store.RouteLimits) *store.Queue {
	t.Helper()
	q, err := store.Open(store.Options{Dir: t.TempDir(), Routes: lims, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("opening the store: %v", err)
	}
	t.Cleanup(func() {
		if err := q.Close(); err != nil {
			t.Errorf("closing the store: %v", err)
		}
	})
	return q
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}
