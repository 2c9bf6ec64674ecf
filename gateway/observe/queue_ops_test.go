package observe

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/store"
)

// recorder is an Auditor that keeps the events.
type recorder struct {
	mu  sync.Mutex
	evs []audit.Event
}

func (r *recorder) Record(ev audit.Event) { r.mu.Lock(); r.evs = append(r.evs, ev); r.mu.Unlock() }

// TestQueueReplayHandler: POST /queue/replay replays only the dead letters
// its filters select, says how many it kept, audits it, and refuses bad
// filters with what is wrong.
func TestQueueReplayHandler(t *testing.T) {
	ctx := context.Background()
	q, err := store.Open(store.Options{Dir: filepath.Join(t.TempDir(), "q"), Routes: []store.RouteLimits{{Name: "telemetry"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	for i, reason := range []string{"upstream PUBACK 0x87 Not authorized", "upstream PUBACK 0x97 Quota exceeded", "upstream PUBACK 0x87 Not authorized"} {
		if _, err := q.Enqueue(ctx, store.Message{Route: "telemetry", Topic: "t", Payload: []byte{byte(i)}, QoS: 1}); err != nil {
			t.Fatal(err)
		}
		m, err := q.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := q.DeadLetter(m.Seq, reason); err != nil {
			t.Fatal(err)
		}
	}
	rec := &recorder{}
	o := &Observer{log: slog.New(slog.DiscardHandler)}
	o.setSources(Sources{Bridges: []BridgeSource{{Name: "cloud", Queue: q}}})
	o.auditor = rec

	bad := []struct{ name, query, want string }{
		{"age not a number", "older_than_seconds=1h", "older_than_seconds \"1h\": want a positive whole number of seconds"},
		{"negative age", "newer_than_seconds=-5", "newer_than_seconds \"-5\""},
		{"time not RFC 3339", "since=yesterday", "since \"yesterday\": want an RFC 3339 time"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			o.serveQueueReplay(w, httptest.NewRequest(http.MethodPost, "/queue/replay?"+tt.query, nil))
			var e struct{ Error string }
			_ = json.Unmarshal(w.Body.Bytes(), &e)
			if w.Code != http.StatusBadRequest || !strings.Contains(e.Error, tt.want) {
				t.Errorf("got %d %s; want 400 and %q", w.Code, w.Body.String(), tt.want)
			}
		})
	}
	w := httptest.NewRecorder()
	o.serveQueueReplay(w, httptest.NewRequest(http.MethodPost, "/queue/replay?route=nope", nil))
	if w.Code != http.StatusNotFound {
		t.Errorf("unknown route: got %d %s; want 404", w.Code, w.Body.String())
	}
	if st := q.Stats(); st.DeadLetters != 3 || st.Depth != 0 {
		t.Fatalf("refused requests changed the queue: %d dead letters, %d queued; want 3, 0", st.DeadLetters, st.Depth)
	}

	w = httptest.NewRecorder()
	o.serveQueueReplay(w, httptest.NewRequest(http.MethodPost, "/queue/replay?"+ReplayQuery(store.DeadFilter{Reason: "0x87", NewerThan: time.Hour}).Encode(), nil))
	var res QueueOpResult
	if err := json.Unmarshal(w.Body.Bytes(), &res); w.Code != http.StatusOK || err != nil {
		t.Fatalf("replay: got %d %s (%v); want 200", w.Code, w.Body.String(), err)
	}
	if res.Count != 2 || res.Kept != 1 || len(res.Routes) != 1 || res.Routes[0] != (RouteCount{"telemetry", 2}) || len(res.Skipped) != 1 {
		t.Errorf("replay: got %+v; want 2 replayed on telemetry, 1 kept", res)
	}
	ms, err := q.Peek("telemetry", 0)
	if err != nil || len(ms) != 2 || ms[0].Payload[0] != 0 || ms[1].Payload[0] != 2 {
		t.Errorf("queued: got %+v, %v; want payloads 0 and 2, in order", ms, err)
	}
	dls, err := q.DeadLetters("telemetry", 0)
	if err != nil || len(dls) != 1 || dls[0].Payload[0] != 1 {
		t.Errorf("dead letters left: got %+v, %v; want payload 1 (0x97)", dls, err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var found bool
	for _, ev := range rec.evs {
		if ev.Event == EventQueueReplay && ev.Count == 2 && ev.Resource == "route/telemetry/dead-letters" &&
			strings.Contains(ev.Reason, `reason contains "0x87"`) && strings.Contains(ev.Reason, "newer than 1h") {
			found = true
		}
	}
	if !found {
		t.Errorf("audit: got %+v; want a queue_replay of 2 on route/telemetry/dead-letters naming the filter", rec.evs)
	}
}

// TestQueueOpsPickTheBridge: ?bridge=NAME selects that bridge's queue.
func TestQueueOpsPickTheBridge(t *testing.T) {
	q, err := store.Open(store.Options{Dir: filepath.Join(t.TempDir(), "q"), Routes: []store.RouteLimits{{Name: "telemetry"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if _, err := q.Enqueue(context.Background(), store.Message{Route: "telemetry", Topic: "t", Payload: []byte("x"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	o := &Observer{log: slog.New(slog.DiscardHandler)}
	o.setSources(Sources{Bridges: []BridgeSource{{Name: "cloud", Queue: q}}})
	tests := []struct {
		name, query string
		code        int
	}{
		{"default bridge", "n=5", 200},
		{"named bridge", "bridge=cloud&n=5", 200},
		{"unknown bridge", "bridge=nope&n=5", 404},
		{"unknown route", "route=nope&n=5", 404},
		{"bad n", "n=0", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			o.serveQueuePeek(rec, httptest.NewRequest(http.MethodGet, "/queue/peek?"+tt.query, nil))
			if rec.Code != tt.code {
				t.Errorf("got %d %s; want %d", rec.Code, rec.Body.String(), tt.code)
			}
		})
	}
}
