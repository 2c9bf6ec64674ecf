package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	refused87 = "upstream PUBACK 0x87 Not authorized"
	refused97 = "upstream PUBACK 0x97 Quota exceeded"
)

// deadFixture fills a queue with dead letters: a0..a5 on route a, moved an
// hour apart from t0 with reasons 0x87 (even) and 0x97 (odd), and b0 on
// route b (0x87, at t0). The clock ends at t0+6h.
func deadFixture(t *testing.T, dir string, clk *clock) *Queue {
	t.Helper()
	q := openT(t, Options{Dir: dir, Clock: clk.now})
	for i := range 6 {
		enq(t, q, "a", fmt.Sprint("a", i))
	}
	enq(t, q, "b", "b0")
	for range 7 {
		m := next(t, q)
		reason := refused87
		if m.Route == "a" && (m.Payload[1]-'0')%2 == 1 {
			reason = refused97
		}
		if m.Route == "a" {
			clk.mu.Lock()
			clk.t = t0.Add(time.Duration(m.Payload[1]-'0') * time.Hour)
			clk.mu.Unlock()
		} else {
			clk.mu.Lock()
			clk.t = t0
			clk.mu.Unlock()
		}
		if err := q.DeadLetter(m.Seq, reason); err != nil {
			t.Fatal(err)
		}
	}
	clk.mu.Lock()
	clk.t = t0.Add(6 * time.Hour)
	clk.mu.Unlock()
	return q
}

var t0 = SaneAfter.Add(30 * 24 * time.Hour)

// deadPayloads lists the dead letters' payloads, route by route, in order.
func deadPayloads(t *testing.T, q *Queue) []string {
	t.Helper()
	dls, err := q.DeadLetters("", 0)
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, d := range dls {
		out = append(out, string(d.Payload))
	}
	return out
}

func livePayloads(t *testing.T, q *Queue) []string {
	t.Helper()
	ms, err := q.Peek("", 0)
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, m := range ms {
		out = append(out, string(m.Payload))
	}
	return out
}

func TestReplayDeadLetters(t *testing.T) {
	all := []string{"a0", "a1", "a2", "a3", "a4", "a5", "b0"}
	tests := []struct {
		name   string
		f      DeadFilter
		replay []string // queued again, in this order
	}{
		{name: "all", f: DeadFilter{}, replay: all},
		{name: "route", f: DeadFilter{Route: "a"}, replay: all[:6]},
		{name: "reason code", f: DeadFilter{Reason: "0x87"}, replay: []string{"a0", "a2", "a4", "b0"}},
		{name: "reason text, case folded", f: DeadFilter{Reason: "NOT AUTHORIZED"}, replay: []string{"a0", "a2", "a4", "b0"}},
		{name: "full reason", f: DeadFilter{Reason: refused97}, replay: []string{"a1", "a3", "a5"}},
		{name: "older than", f: DeadFilter{OlderThan: 3 * time.Hour}, replay: []string{"a0", "a1", "a2", "b0"}},
		{name: "newer than", f: DeadFilter{NewerThan: 2 * time.Hour}, replay: []string{"a4", "a5"}},
		{name: "since and until", f: DeadFilter{Since: t0.Add(time.Hour), Until: t0.Add(3 * time.Hour)}, replay: []string{"a1", "a2"}},
		{name: "route, reason and age", f: DeadFilter{Route: "a", Reason: "0x97", OlderThan: 2 * time.Hour}, replay: []string{"a1", "a3"}},
		{name: "nothing matches", f: DeadFilter{Reason: "0x80"}, replay: []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "q")
			clk := &clock{}
			q := deadFixture(t, dir, clk)
			rep, err := q.ReplayDeadLetters(context.Background(), tt.f)
			if err != nil {
				t.Fatalf("ReplayDeadLetters: %v", err)
			}
			if rep.Replayed != len(tt.replay) {
				t.Errorf("replayed %d; want %d (%+v)", rep.Replayed, len(tt.replay), rep)
			}
			var want []string
			for _, p := range all {
				if !contains(tt.replay, p) {
					want = append(want, p)
				}
			}
			if tt.f.Route == "" && rep.Kept != len(want) {
				t.Errorf("kept %d; want %d (%+v)", rep.Kept, len(want), rep)
			}
			// The live queue holds exactly the replayed ones, each once, in order.
			check := func(q *Queue) {
				t.Helper()
				if got := livePayloads(t, q); !eq(got, tt.replay) {
					t.Errorf("queued: got %v; want %v", got, tt.replay)
				}
				wantDead := want
				if wantDead == nil {
					wantDead = []string{}
				}
				if got := deadPayloads(t, q); !eq(got, wantDead) {
					t.Errorf("dead letters left: got %v; want %v", got, wantDead)
				}
				if st := q.Stats(); st.DeadLetters != int64(len(wantDead)) || st.Depth != int64(len(tt.replay)) {
					t.Errorf("stats: dead letters %d, depth %d; want %d, %d", st.DeadLetters, st.Depth, len(wantDead), len(tt.replay))
				}
			}
			check(q)
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}
			check(openT(t, Options{Dir: dir, Clock: clk.now})) // written, counts persisted
		})
	}
}

func contains(s []string, x string) bool {
	for _, e := range s {
		if e == x {
			return true
		}
	}
	return false
}

// TestReplayOnce: a replayed message refused again becomes a new dead
// letter; the replay that queued it does not replay it again, a later one
// does, and the dead letters are counted right throughout.
func TestReplayOnce(t *testing.T) {
	clk := &clock{}
	q := deadFixture(t, filepath.Join(t.TempDir(), "q"), clk)
	if _, err := q.ReplayDeadLetters(context.Background(), DeadFilter{Route: "b"}); err != nil {
		t.Fatal(err)
	}
	m := next(t, q)
	if string(m.Payload) != "b0" {
		t.Fatalf("next: got %q; want b0", m.Payload)
	}
	if err := q.DeadLetter(m.Seq, refused87); err != nil {
		t.Fatal(err)
	}
	rep, err := q.ReplayDeadLetters(context.Background(), DeadFilter{Route: "b"})
	if err != nil || rep.Replayed != 1 {
		t.Fatalf("second replay: %+v, %v; want 1 replayed", rep, err)
	}
	if got := livePayloads(t, q); !eq(got, []string{"b0"}) {
		t.Fatalf("queued: got %v; want [b0]", got)
	}
	if st := q.Stats(); st.DeadLetters != 6 {
		t.Fatalf("dead letters %d; want 6 (route a's)", st.DeadLetters)
	}
}

// TestReplayChunks: more dead letters than one chunk, every third kept,
// replayed in order.
func TestReplayChunks(t *testing.T) {
	q := openT(t, Options{})
	const n = 2*replayChunk + 100
	submitAll(t, q, n, func(i int) Message {
		return Message{Route: "a", Topic: "t", Payload: []byte(fmt.Sprint(i))}
	})
	var want []string
	for i := range n {
		m := next(t, q)
		reason := refused87
		if i%3 == 0 {
			reason = refused97
		} else {
			want = append(want, string(m.Payload))
		}
		if err := q.DeadLetter(m.Seq, reason); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := q.ReplayDeadLetters(context.Background(), DeadFilter{Reason: "0x87"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Replayed != len(want) || rep.Kept != n-len(want) {
		t.Fatalf("replayed %d, kept %d; want %d, %d", rep.Replayed, rep.Kept, len(want), n-len(want))
	}
	if got := livePayloads(t, q); !eq(got, want) {
		t.Fatalf("queued %d messages, first %v; want %d in order", len(got), got[:min(5, len(got))], len(want))
	}
}

func TestReplayRefusals(t *testing.T) {
	t.Run("unknown route", func(t *testing.T) {
		q := openT(t, Options{})
		enq(t, q, "a", "x")
		_, err := q.ReplayDeadLetters(context.Background(), DeadFilter{Route: "nope"})
		if !errors.Is(err, ErrNoRoute) {
			t.Fatalf("got %v; want ErrNoRoute", err)
		}
	})
	t.Run("ages without a sane clock", func(t *testing.T) {
		clk := &clock{t: SaneAfter.Add(-time.Hour)}
		q := openT(t, Options{Clock: clk.now})
		_, err := q.ReplayDeadLetters(context.Background(), DeadFilter{OlderThan: time.Hour})
		if err == nil || !strings.Contains(err.Error(), "clock") {
			t.Fatalf("got %v; want the clock named", err)
		}
		// Absolute times need no clock.
		if _, err := q.ReplayDeadLetters(context.Background(), DeadFilter{Since: t0}); err != nil {
			t.Fatalf("since without a sane clock: %v", err)
		}
	})
	t.Run("closed", func(t *testing.T) {
		q := openT(t, Options{})
		q.Close()
		if _, err := q.ReplayDeadLetters(context.Background(), DeadFilter{}); !errors.Is(err, ErrClosed) {
			t.Fatalf("got %v; want ErrClosed", err)
		}
	})
}
