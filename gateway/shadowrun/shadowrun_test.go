package shadowrun

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"

	"github.com/edgegw/edgegw/bridge"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/shadow"
	"github.com/edgegw/edgegw/store"
)

// TestShadowSubscriptionsMatchSyncer: the bridge's in routes are made from
// the config without a Syncer; they must cover every topic the Syncer asks
// to subscribe to, or cloud answers would not come down, and nothing of a
// shadow that is not synced.
func TestShadowSubscriptionsMatchSyncer(t *testing.T) {
	cfg := &config.Config{Shadows: &config.ShadowConfig{Sync: []config.ShadowSync{
		{Thing: "lamp-1", Direction: "both"},
		{Thing: "lamp-2", Shadow: "cfg", Direction: "up"},
		{Thing: "lock:3", Direction: "down", DesiredOwner: "device"},
	}}}
	so := shadow.SyncOptions{}
	for _, c := range cfg.Shadows.Sync {
		d, err := shadow.ParseDirection(c.Direction)
		if err != nil {
			t.Fatal(err)
		}
		so.Shadows = append(so.Shadows, shadow.SyncShadow{Thing: c.Thing, Shadow: c.Shadow, Direction: d})
	}
	syn, err := shadow.NewSyncer(context.Background(), shadow.New(shadow.NewMemStore(), shadow.Options{}), so)
	if err != nil {
		t.Fatal(err)
	}
	filters := shadowFilters(cfg)
	covered := func(topic string) bool {
		return slices.ContainsFunc(filters, func(f string) bool { return bridge.Match(f, topic) })
	}
	for _, tp := range syn.Subscriptions() {
		if !covered(tp) {
			t.Errorf("Syncer subscription %q is not covered by the in routes %q", tp, filters)
		}
	}
	for _, tp := range []string{"$aws/things/lamp-9/shadow/update/accepted", "$aws/things/lamp-2/shadow/update/accepted",
		"$aws/things/lamp-1/shadow/name/cfg/update/accepted", "$aws/things/lamp-1/shadow/update"} {
		if covered(tp) {
			t.Errorf("%q (not an answer of a synced shadow) is covered by the in routes %q", tp, filters)
		}
	}
	rs := Routes(cfg)
	if _, err := bridge.NewRoutes(rs); err != nil {
		t.Fatalf("shadow routes do not compile: %v", err)
	}
	if len(rs) != len(cfg.Shadows.Sync)+1 || rs[0].Name != shadowRouteOut || rs[0].Direction != bridge.Out {
		t.Fatalf("Routes = %+v; want the out route then one in route per synced shadow", rs)
	}
}

type recordingPublisher struct{ topics []string }

func (p *recordingPublisher) PublishLocal(topic string, _ []byte, _ bool, _ byte) error {
	p.topics = append(p.topics, topic)
	return nil
}

// TestShadowInbound: cloud messages on the Syncer's topics go to the
// Syncer and never to the local broker; a bad one is dropped (counted); one
// the store cannot take is left to the upstream to send again
// (bridge.ErrLocalUnavailable); other inbound messages pass through.
func TestShadowInbound(t *testing.T) {
	ctx := context.Background()
	q, err := store.Open(store.Options{Dir: filepath.Join(t.TempDir(), "queue")})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	kv, err := q.KV(shadowSpace)
	if err != nil {
		t.Fatal(err)
	}
	svc := shadow.New(shadowStore{kv}, shadow.Options{})
	syn, err := shadow.NewSyncer(ctx, svc, shadow.SyncOptions{TokenPrefix: "gw", Shadows: []shadow.SyncShadow{{Thing: "lamp-1", Direction: shadow.Both}}})
	if err != nil {
		t.Fatal(err)
	}
	s := &Shadows{log: slog.New(slog.DiscardHandler), svc: svc, sync: syn, kv: kv, q: q, synced: map[string]bool{"lamp-1/": true}}
	next := &recordingPublisher{}
	pub := s.Inbound(next)
	const docs = "$aws/things/lamp-1/shadow/update/documents"
	tests := []struct {
		name, topic, payload string
		wantErr              error // nil: accepted
		wantLocal, dropped   int
	}{
		{"other traffic passes", "cmd/lamp-1", "on", nil, 1, 0},
		{"a shadow of a thing not synced passes", "$aws/things/lamp-9/shadow/update/documents", "{}", nil, 2, 0},
		{"a bad cloud message is dropped", docs, "[1]", nil, 2, 1},
		{"a delta is the Syncer's, not the devices'", "$aws/things/lamp-1/shadow/update/delta", `{"state":{"on":1},"version":3}`, nil, 2, 1},
		{"a request topic is not an answer: it passes", "$aws/things/lamp-1/shadow/update", "{}", nil, 3, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := pub.PublishLocal(tt.topic, []byte(tt.payload), false, 1)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("PublishLocal = %v; want %v", err, tt.wantErr)
			}
			if len(next.topics) != tt.wantLocal {
				t.Fatalf("local publications %q; want %d", next.topics, tt.wantLocal)
			}
			if got := s.dropped.Load(); got != int64(tt.dropped) {
				t.Fatalf("dropped = %d; want %d", got, tt.dropped)
			}
		})
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	err = pub.PublishLocal(docs, []byte(`{"current":{"state":{"desired":{"on":true}},"version":5},"timestamp":1}`), false, 1)
	if !errors.Is(err, bridge.ErrLocalUnavailable) {
		t.Fatalf("PublishLocal with the store closed = %v; want an error wrapping bridge.ErrLocalUnavailable", err)
	}
}
