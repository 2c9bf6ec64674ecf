package shadowrun

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/bridge"
	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/gateway/broker"
	"github.com/edgegw/edgegw/gateway/shadow"
	"github.com/edgegw/edgegw/store"
)

type fakeUplink struct {
	mu sync.Mutex
	st bridge.State
}

func (u *fakeUplink) State() bridge.State {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.st
}

func (u *fakeUplink) set(connected bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.st.Connected, u.st.ConnectedSince = connected, time.Now()
}

// requestQueue records what the Syncer asks to send upstream.
type requestQueue struct {
	mu     sync.Mutex
	topics []string
}

func (q *requestQueue) KV(string) (*store.KV, error) { return nil, errors.New("no key spaces here") }
func (q *requestQueue) Enqueue(_ context.Context, m store.Message) (uint64, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.topics = append(q.topics, m.Topic)
	return uint64(len(q.topics)), nil
}
func (q *requestQueue) sent() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]string(nil), q.topics...)
}

type quietBroker struct{}

func (quietBroker) SetShadows(broker.ShadowService)      {}
func (quietBroker) PublishShadow(shadow.Response)        {}
func (quietBroker) ShadowMetrics() *broker.ShadowMetrics { return new(broker.ShadowMetrics) }

type quietAudit struct{}

func (quietAudit) Record(audit.Event) {}

// TestSyncLooksSlowlyWhileIdle: with the uplink down, or up with nothing
// to send, the sync loop looks at the uplink every shadowIdleRepoll, not
// every shadowRepoll; a connection is still followed (the Syncer goes
// online and asks the cloud for its shadows).
func TestSyncLooksSlowlyWhileIdle(t *testing.T) {
	ctx := context.Background()
	syn, err := shadow.NewSyncer(ctx, shadow.New(shadow.NewMemStore(), shadow.Options{}),
		shadow.SyncOptions{Shadows: []shadow.SyncShadow{{Thing: "lamp-1", Direction: shadow.Both}}})
	if err != nil {
		t.Fatal(err)
	}
	q, up := new(requestQueue), new(fakeUplink)
	s := &Shadows{log: slog.New(slog.DiscardHandler), aud: quietAudit{}, b: quietBroker{}, sync: syn, q: q}
	s.Start(up)
	defer s.Close()

	// Idle: at most one look (the first, after shadowRepoll) in 3 x shadowRepoll.
	idle := func(what string) {
		t.Helper()
		n := s.repolls.Load()
		time.Sleep(3 * shadowRepoll)
		if got := s.repolls.Load() - n; got > 1 {
			t.Fatalf("%s: %d looks in %s; want at most 1 (every %s)", what, got, 3*shadowRepoll, shadowIdleRepoll)
		}
	}
	idle("uplink down")
	up.set(true)
	for i := 0; !syn.Stats().Online; i++ {
		if i == 300 {
			t.Fatalf("Syncer not online 15s after the uplink connected; want it within %s + 1s", shadowIdleRepoll)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := q.sent(); len(got) == 0 || !strings.Contains(got[0], "lamp-1") {
		t.Fatalf("requests queued on going online: %q; want lamp-1's shadow asked for", got)
	}
	idle("uplink up, nothing to send")
}
