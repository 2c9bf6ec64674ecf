// Package shadowtest holds the tests every shadow.Store implementation must pass,
// for the in-memory Store here and for the database-backed one in the store
// room. Only tests import it. It imports the shadow package and the standard
// library, nothing else.
package shadowtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/shadow"
)

// Opener opens the Store under test. Reopen must return a Store over the same
// data as the last one Open returned (closing that one first, if the
// implementation needs it): for a database, a new handle on the same directory.
type Opener struct {
	Open   func(t *testing.T) shadow.Store
	Reopen func(t *testing.T) shadow.Store
}

// StoreSuite runs every Store test against the implementation o opens.
func StoreSuite(t *testing.T, o Opener) {
	t.Run("GetMissing", func(t *testing.T) { testGetMissing(t, o.Open(t)) })
	t.Run("PutGetDelete", func(t *testing.T) { testPutGetDelete(t, o.Open(t)) })
	t.Run("EmptyValue", func(t *testing.T) { testEmptyValue(t, o.Open(t)) })
	t.Run("ValueIsCopied", func(t *testing.T) { testValueIsCopied(t, o.Open(t)) })
	t.Run("ListPrefixOrder", func(t *testing.T) { testList(t, o.Open(t)) })
	t.Run("BatchLastWriteWins", func(t *testing.T) { testBatchOrder(t, o.Open(t)) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, o.Open(t)) })
	t.Run("CanceledContext", func(t *testing.T) { testCanceled(t, o.Open(t)) })
	t.Run("ServiceSurvivesReopen", func(t *testing.T) { testServiceReopen(t, o) })
	t.Run("OutboxSurvivesReopen", func(t *testing.T) { testOutboxReopen(t, o) })
}

func write(t *testing.T, s shadow.Store, ops ...shadow.BatchOp) {
	t.Helper()
	if err := s.Write(context.Background(), &shadow.Batch{Ops: ops}); err != nil {
		t.Fatalf("Write: %v", err)
	}
}

func put(k, v string) shadow.BatchOp { return shadow.BatchOp{Key: k, Value: []byte(v)} }
func del(k string) shadow.BatchOp    { return shadow.BatchOp{Key: k} }

func wantValue(t *testing.T, s shadow.Store, key, want string) {
	t.Helper()
	got, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v; want %q", key, err, want)
	}
	if string(got) != want {
		t.Fatalf("Get(%q) = %q; want %q", key, got, want)
	}
}

func wantMissing(t *testing.T, s shadow.Store, key string) {
	t.Helper()
	got, err := s.Get(context.Background(), key)
	if !errors.Is(err, shadow.ErrNotFound) {
		t.Fatalf("Get(%q) = %q, %v; want an error wrapping ErrNotFound", key, got, err)
	}
}

func testGetMissing(t *testing.T, s shadow.Store) {
	wantMissing(t, s, "d/nothing/")
}

func testPutGetDelete(t *testing.T, s shadow.Store) {
	write(t, s, put("d/lamp/", `{"version":1}`))
	wantValue(t, s, "d/lamp/", `{"version":1}`)
	write(t, s, put("d/lamp/", `{"version":2}`))
	wantValue(t, s, "d/lamp/", `{"version":2}`)
	write(t, s, del("d/lamp/"))
	wantMissing(t, s, "d/lamp/")
	write(t, s, del("d/never-written/")) // deleting a missing key is not an error
}

func testEmptyValue(t *testing.T, s shadow.Store) {
	var b shadow.Batch
	b.Put("n", nil) // Put of nil stores an empty value, it does not delete
	if err := s.Write(context.Background(), &b); err != nil {
		t.Fatalf("Write: %v", err)
	}
	wantValue(t, s, "n", "")
}

func testValueIsCopied(t *testing.T, s shadow.Store) {
	v := []byte("abc")
	write(t, s, shadow.BatchOp{Key: "k", Value: v})
	v[0] = 'X'
	wantValue(t, s, "k", "abc")
	got, _ := s.Get(context.Background(), "k")
	got[0] = 'Y'
	wantValue(t, s, "k", "abc")
}

func testList(t *testing.T, s shadow.Store) {
	write(t, s,
		put("o/00000000000000000010", "10"), put("o/00000000000000000002", "2"),
		put("d/lamp/", "c"), put("d/lamp/b", "b"), put("d/lamp/a", "a"), put("d/lamp2/", "x"),
		put("c/lamp/", "cloud"), put("d/a:b-c_d/$x", "named"), put("d/a:b-c_d/", "classic"))
	tests := []struct {
		name, prefix string
		want         []string
	}{
		{"named shadows of one thing", "d/lamp/", []string{"d/lamp/", "d/lamp/a", "d/lamp/b"}},
		{"a thing name that is a prefix of another", "d/lamp", []string{"d/lamp/", "d/lamp/a", "d/lamp/b", "d/lamp2/"}},
		{"outbox in sequence order", "o/", []string{"o/00000000000000000002", "o/00000000000000000010"}},
		{"names with : - _ $", "d/a:b-c_d/", []string{"d/a:b-c_d/", "d/a:b-c_d/$x"}},
		{"no match", "x/", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.List(context.Background(), tt.prefix)
			if err != nil {
				t.Fatalf("List(%q): %v", tt.prefix, err)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("List(%q) = %q; want %q", tt.prefix, got, tt.want)
			}
		})
	}
}

func testBatchOrder(t *testing.T, s shadow.Store) {
	write(t, s, put("a", "1"), put("a", "2"), put("b", "1"), del("b"), del("c"), put("c", "3"))
	wantValue(t, s, "a", "2")
	wantMissing(t, s, "b")
	wantValue(t, s, "c", "3")
}

// testConcurrent checks that a batch is atomic to readers: a reader never sees
// one key of a batch without the other.
func testConcurrent(t *testing.T, s shadow.Store) {
	ctx := context.Background()
	const rounds = 200
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range rounds {
			v := []byte(fmt.Sprint(i))
			if err := s.Write(ctx, &shadow.Batch{Ops: []shadow.BatchOp{{Key: "x/a", Value: v}, {Key: "x/b", Value: v}}}); err != nil {
				errs <- err
				return
			}
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; i < rounds*4 && time.Now().Before(deadline); i++ {
		keys, err := s.List(ctx, "x/")
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if len(keys) == 1 {
			t.Fatalf("List saw %q: one key of a two-key batch", keys)
		}
	}
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatalf("Write: %v", err)
	default:
	}
	a, _ := s.Get(ctx, "x/a")
	b, _ := s.Get(ctx, "x/b")
	if !bytes.Equal(a, b) || string(a) != fmt.Sprint(rounds-1) {
		t.Fatalf("after the writes x/a = %q, x/b = %q; want both %d", a, b, rounds-1)
	}
}

func testCanceled(t *testing.T, s shadow.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Write(ctx, &shadow.Batch{Ops: []shadow.BatchOp{put("k", "v")}}); err == nil {
		t.Fatalf("Write with a canceled context = nil; want an error")
	}
	wantMissing(t, s, "k")
}

// testServiceReopen checks that shadow versions survive a reopen of the Store.
func testServiceReopen(t *testing.T, o Opener) {
	if o.Reopen == nil {
		t.Fatal("Opener.Reopen is nil: give a function that reopens the last Store opened (for an in-memory Store, the same Store)")
	}
	ctx := context.Background()
	at := time.Unix(1591140517, 0)
	svc := shadow.New(o.Open(t), shadow.Options{})
	topic := "$aws/things/lamp/shadow/name/cfg/update"
	for _, p := range []string{`{"state":{"reported":{"on":true}}}`, `{"state":{"reported":{"on":false}}}`} {
		if out := svc.Handle(ctx, shadow.Request{Topic: topic, Payload: []byte(p), Time: at}); len(out) == 0 || !bytes.HasSuffix([]byte(out[0].Topic), []byte("/accepted")) {
			t.Fatalf("update %s: got %v; want an accepted response", p, out)
		}
	}
	svc = shadow.New(o.Reopen(t), shadow.Options{})
	out := svc.Handle(ctx, shadow.Request{Topic: "$aws/things/lamp/shadow/name/cfg/get", Time: at})
	want := `{"metadata":{"reported":{"on":{"timestamp":1591140517}}},"state":{"reported":{"on":false}},"timestamp":1591140517,"version":2}`
	if len(out) != 1 || string(out[0].Payload) != want {
		t.Fatalf("get after reopen = %v; want one response %s", out, want)
	}
}

// testOutboxReopen checks that a local change waiting for the cloud survives a
// reopen of the Store, and is still sent afterwards.
func testOutboxReopen(t *testing.T, o Opener) {
	if o.Reopen == nil {
		t.Fatal("Opener.Reopen is nil: give a function that reopens the last Store opened (for an in-memory Store, the same Store)")
	}
	ctx := context.Background()
	opts := shadow.SyncOptions{Shadows: []shadow.SyncShadow{{Thing: "lamp", Direction: shadow.Up}}}
	svc := shadow.New(o.Open(t), shadow.Options{})
	if _, err := shadow.NewSyncer(ctx, svc, opts); err != nil {
		t.Fatalf("NewSyncer: %v", err)
	}
	out := svc.Handle(ctx, shadow.Request{Topic: "$aws/things/lamp/shadow/update", Payload: []byte(`{"state":{"reported":{"on":true}}}`)})
	if len(out) == 0 || !bytes.HasSuffix([]byte(out[0].Topic), []byte("/accepted")) {
		t.Fatalf("update: got %v; want accepted", out)
	}
	svc = shadow.New(o.Reopen(t), shadow.Options{})
	s, err := shadow.NewSyncer(ctx, svc, opts)
	if err != nil {
		t.Fatalf("NewSyncer after reopen: %v", err)
	}
	if n := s.Outbox(); n != 1 {
		t.Fatalf("outbox after reopen = %d; want 1", n)
	}
	a, err := s.Connected(ctx)
	if err != nil {
		t.Fatalf("Connected: %v", err)
	}
	want := `{"clientToken":"edgegw:1","state":{"reported":{"on":true}}}`
	if len(a.Upstream) != 1 || a.Upstream[0].Topic != "$aws/things/lamp/shadow/update" || string(a.Upstream[0].Payload) != want {
		t.Fatalf("Connected sends %+v; want one update %s", a.Upstream, want)
	}
}
