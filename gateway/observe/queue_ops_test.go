package observe

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/store"
)

func TestReplayFilterMismatch(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	dl := func(reason string, age time.Duration) store.DeadLetter {
		return store.DeadLetter{Reason: reason, At: now.Add(-age).UnixNano()}
	}
	acl := "upstream refused: 0x87 not authorized"
	tests := []struct {
		name   string
		dls    []store.DeadLetter
		older  time.Duration
		reason string
		miss   string // "" = all match; else a substring of the reason
	}{
		{name: "no filters", dls: []store.DeadLetter{dl(acl, time.Minute), dl("other", time.Hour)}},
		{name: "reason matches all", dls: []store.DeadLetter{dl(acl, time.Minute), dl(acl, time.Hour)}, reason: acl},
		{name: "reason matches some", dls: []store.DeadLetter{dl(acl, time.Minute), dl("other", time.Hour)}, reason: acl, miss: "1 of its 2"},
		{name: "all older", dls: []store.DeadLetter{dl(acl, 2*time.Hour), dl(acl, 3*time.Hour)}, older: time.Hour},
		{name: "one too young", dls: []store.DeadLetter{dl(acl, time.Minute), dl(acl, 3*time.Hour)}, older: time.Hour, miss: "1 of its 2"},
		{name: "unknown time is not old", dls: []store.DeadLetter{{Reason: acl}}, older: time.Hour, miss: "1 of its 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := filterMismatch(tt.dls, tt.older, tt.reason, now)
			if (tt.miss == "") != (got == "") || !strings.Contains(got, tt.miss) {
				t.Errorf("got %q; want %q", got, tt.miss)
			}
		})
	}
}

// racingQueue is a real queue whose Enqueue also dead-letters the message
// it hands out next, as a bridge whose upstream still refuses would.
type racingQueue struct {
	*store.Queue
	refuse bool
}

func (r *racingQueue) Enqueue(ctx context.Context, m store.Message) (uint64, error) {
	seq, err := r.Queue.Enqueue(ctx, m)
	if err == nil && r.refuse {
		next, nerr := r.Queue.Next(ctx)
		if nerr != nil {
			return seq, nerr
		}
		err = r.Queue.DeadLetter(next.Seq, "refused again")
	}
	return seq, err
}

// TestReplayKeepsDeadLettersWhenNewOnesArrive: a replay delivers a route's
// dead letters back into it and removes them; when new dead letters arrive
// meanwhile it removes nothing (never a loss) and says why.
func TestReplayKeepsDeadLettersWhenNewOnesArrive(t *testing.T) {
	tests := []struct {
		name     string
		refuse   bool
		wantErr  error
		wantDead int64 // dead letters after the replay
		wantLive int64 // messages queued after the replay
	}{
		{name: "upstream fixed", wantDead: 0, wantLive: 3},
		{name: "upstream still refuses", refuse: true, wantErr: ErrReplayRace, wantDead: 6, wantLive: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			q, err := store.Open(store.Options{Dir: filepath.Join(t.TempDir(), "q"), Routes: []store.RouteLimits{{Name: "telemetry"}}})
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			for i := range 3 {
				if _, err := q.Enqueue(ctx, store.Message{Route: "telemetry", Topic: "t", Payload: []byte{byte(i)}, QoS: 1}); err != nil {
					t.Fatal(err)
				}
				m, err := q.Next(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if err := q.DeadLetter(m.Seq, "refused"); err != nil {
					t.Fatal(err)
				}
			}
			o := &Observer{log: slog.New(slog.DiscardHandler)}
			res, err := o.replay(ctx, &racingQueue{Queue: q, refuse: tt.refuse}, "", 0, "")
			if !errors.Is(err, tt.wantErr) || res.Count != 3 {
				t.Errorf("replay: got %d replayed, err %v; want 3 and %v", res.Count, err, tt.wantErr)
			}
			st := q.Stats()
			if st.DeadLetters != tt.wantDead || st.Depth != tt.wantLive {
				t.Errorf("after replay: got %d dead letters, %d queued; want %d and %d", st.DeadLetters, st.Depth, tt.wantDead, tt.wantLive)
			}
			if !tt.refuse {
				ms, err := q.Peek("telemetry", 0)
				if err != nil || len(ms) != 3 || ms[0].Payload[0] != 0 || ms[2].Payload[0] != 2 {
					t.Errorf("replayed messages: got %+v, %v; want the 3, in order", ms, err)
				}
			}
		})
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
