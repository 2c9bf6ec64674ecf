package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// syncRecorder is an Options.OnSync that keeps every duration and checks,
// from inside the callback, that the queue's lock is free (Stats takes it:
// a callback made under the lock would wait here until the bound).
type syncRecorder struct {
	t  *testing.T
	q  *Queue
	mu sync.Mutex
	ds []time.Duration
}

func (r *syncRecorder) onSync(d time.Duration) {
	if q := r.q; q != nil {
		done := make(chan struct{})
		go func() { q.Stats(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			r.t.Errorf("OnSync called with the queue's lock held: Stats blocked for 10s")
		}
	}
	r.mu.Lock()
	r.ds = append(r.ds, d)
	r.mu.Unlock()
}

func (r *syncRecorder) calls() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Duration(nil), r.ds...)
}

func TestOnSyncPerCommit(t *testing.T) {
	rec := &syncRecorder{t: t}
	q := openT(t, Options{Routes: []RouteLimits{{Name: "r", MaxMessages: 4, Overflow: Reject}}, OnSync: rec.onSync})
	rec.q = q
	ctx := context.Background()

	// One writer at a time: every Enqueue is a commit of its own, and its
	// sync is counted before Enqueue returns.
	base := len(rec.calls())
	for i := range 3 {
		enq(t, q, "r", fmt.Sprint("m", i))
		if got := len(rec.calls()) - base; got != i+1 {
			t.Fatalf("after Enqueue %d: OnSync called %d times; want %d", i+1, got, i+1)
		}
	}
	for i, d := range rec.calls()[base:] {
		if d <= 0 {
			t.Errorf("OnSync call %d: duration %v; want > 0", i, d)
		}
	}

	// A commit of deletes alone is not synced (an ack that is lost in a
	// power cut only brings the message back as a duplicate).
	m := next(t, q)
	if err := q.Ack(m.Seq); err != nil {
		t.Fatalf("Ack(%d): %v", m.Seq, err)
	}
	before := len(rec.calls())
	if err := q.syncDeletes(); err != nil {
		t.Fatalf("syncDeletes: %v", err)
	}
	if got := len(rec.calls()) - before; got != 0 {
		t.Fatalf("a commit of deletes alone: OnSync called %d times; want 0", got)
	}

	// A commit that admits nothing writes nothing durable: no sync.
	enq(t, q, "r", "m3")
	enq(t, q, "r", "m4") // the route is now at its 4 messages
	before = len(rec.calls())
	if _, err := q.Enqueue(ctx, Message{Route: "r", Payload: []byte("over")}); !errors.Is(err, ErrQuota) {
		t.Fatalf("Enqueue over max_messages: %v; want ErrQuota", err)
	}
	if got := len(rec.calls()) - before; got != 0 {
		t.Fatalf("a refused message: OnSync called %d times; want 0", got)
	}

	// Many writers share commits: at least one sync, never more than one
	// per message.
	q2rec := &syncRecorder{t: t}
	q2 := openT(t, Options{Routes: []RouteLimits{{Name: "r"}}, OnSync: q2rec.onSync})
	q2rec.q = q2
	base = len(q2rec.calls())
	const writers, per = 16, 20
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range per {
				if _, err := q2.Enqueue(ctx, Message{Route: "r", Payload: []byte(fmt.Sprint(w, "/", i))}); err != nil {
					t.Errorf("Enqueue: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	got := q2rec.calls()[base:]
	if len(got) < 1 || len(got) > writers*per {
		t.Fatalf("%d concurrent messages: OnSync called %d times; want 1..%d", writers*per, len(got), writers*per)
	}
	for i, d := range got {
		if d <= 0 {
			t.Errorf("OnSync call %d: duration %v; want > 0", i, d)
		}
	}
}

func TestOnSyncKVWrite(t *testing.T) {
	rec := &syncRecorder{t: t}
	q := openT(t, Options{OnSync: rec.onSync})
	rec.q = q
	kv, err := q.KV("space")
	if err != nil {
		t.Fatalf("KV: %v", err)
	}
	defer kv.Close()
	ctx := context.Background()
	base := len(rec.calls())
	for i, v := range [][]byte{[]byte("small"), make([]byte, valueThreshold+1)} { // the WAL alone; the value log too
		if err := kv.Write(ctx, []KVOp{{Key: fmt.Sprint("k", i), Value: v}}); err != nil {
			t.Fatalf("Write %d: %v", i, err)
		}
		if got := len(rec.calls()) - base; got != i+1 {
			t.Fatalf("after Write %d: OnSync called %d times; want %d", i+1, got, i+1)
		}
	}
	for i, d := range rec.calls()[base:] {
		if d <= 0 {
			t.Errorf("OnSync call %d: duration %v; want > 0", i, d)
		}
	}
}
