package store_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/edgegw/edgegw/gateway/shadow"
	"github.com/edgegw/edgegw/gateway/shadow/shadowtest"
	"github.com/edgegw/edgegw/store"
)

// kvStore is shadow.Store over a store.KV, as the gateway wires it.
type kvStore struct{ kv *store.KV }

func (s kvStore) Get(ctx context.Context, key string) ([]byte, error) {
	v, err := s.kv.Get(ctx, key)
	if errors.Is(err, store.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w: %w", shadow.ErrNotFound, err)
	}
	return v, err
}

func (s kvStore) List(ctx context.Context, prefix string) ([]string, error) {
	return s.kv.List(ctx, prefix)
}

func (s kvStore) Write(ctx context.Context, b *shadow.Batch) error {
	ops := make([]store.KVOp, len(b.Ops))
	for i, o := range b.Ops {
		ops[i] = store.KVOp{Key: o.Key, Value: o.Value}
	}
	return s.kv.Write(ctx, ops)
}

var testKey = []byte("0123456789abcdef0123456789abcdef")

func openKV(t *testing.T, dir string) (*store.Queue, *store.KV) {
	t.Helper()
	q, err := store.Open(store.Options{Dir: dir, EncryptionKey: testKey})
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	kv, err := q.KV("shadow")
	if err != nil {
		q.Close()
		t.Fatalf("KV: %v", err)
	}
	t.Cleanup(kv.Close)
	return q, kv
}

func TestKVShadowStoreSuite(t *testing.T) {
	var dir string
	var q *store.Queue
	closeLast := func() {
		if q != nil {
			if err := q.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			q = nil
		}
	}
	open := func(t *testing.T, fresh bool) shadow.Store {
		closeLast()
		if fresh {
			dir = filepath.Join(t.TempDir(), "queue")
		}
		var kv *store.KV
		q, kv = openKV(t, dir)
		t.Cleanup(closeLast)
		return kvStore{kv}
	}
	shadowtest.StoreSuite(t, shadowtest.Opener{
		Open:   func(t *testing.T) shadow.Store { return open(t, true) },
		Reopen: func(t *testing.T) shadow.Store { return open(t, false) },
	})
}

// TestKVBesideQueue checks that a key space and the queue do not see each
// other's records: messages stay countable and in order around KV writes,
// across a reopen, and a KV write after Close fails with ErrClosed.
func TestKVBesideQueue(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "queue")
	q, kv := openKV(t, dir)
	for i := range 3 {
		if _, err := q.Enqueue(ctx, store.Message{Route: "r", Topic: "t", Payload: fmt.Appendf(nil, "m%d", i), QoS: 1}); err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
	}
	// Keys that look like the queue's own records, in the KV space.
	if err := kv.Write(ctx, []store.KVOp{{Key: "m", Value: []byte("x")}, {Key: "s", Value: []byte("12345678")}, {Key: "r", Value: []byte("1")}}); err != nil {
		t.Fatalf("Write: %v", err)
	}
	other, err := q.KV("other")
	if err != nil {
		t.Fatalf("KV(other): %v", err)
	}
	if keys, err := other.List(ctx, ""); err != nil || len(keys) != 0 {
		t.Fatalf("other space List = %q, %v; want none", keys, err)
	}
	if err := q.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := kv.Write(ctx, []store.KVOp{{Key: "a", Value: []byte("1")}}); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Write after Close = %v; want ErrClosed", err)
	}
	q, kv = openKV(t, dir)
	defer q.Close()
	if got := q.Stats().Depth; got != 3 {
		t.Fatalf("queue depth after reopen = %d; want 3", got)
	}
	for i := range 3 {
		m, err := q.Next(ctx)
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if want := fmt.Sprintf("m%d", i); string(m.Payload) != want {
			t.Fatalf("message %d = %q; want %q", i, m.Payload, want)
		}
	}
	keys, err := kv.List(ctx, "")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if want := []string{"m", "r", "s"}; fmt.Sprint(keys) != fmt.Sprint(want) {
		t.Fatalf("KV keys after reopen = %q; want %q", keys, want)
	}
}

func TestKVSpaceName(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "queue")
	q, err := store.Open(store.Options{Dir: dir})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer q.Close()
	tests := []struct {
		name, space string
		ok          bool
	}{
		{"plain", "shadow", true},
		{"empty", "", false},
		{"NUL", "a\x00b", false},
		{"too long", string(make([]byte, 65)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := q.KV(tt.space)
			if (err == nil) != tt.ok {
				t.Fatalf("KV(%q) error = %v; want ok=%v", tt.space, err, tt.ok)
			}
			if err != nil && !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("KV(%q) error = %v; want one wrapping ErrInvalid", tt.space, err)
			}
		})
	}
}

// TestKVFreeSpaceReserve: below the disk's free-space reserve a Write that
// sets a value is refused with ErrFull and writes nothing; a Write of
// deletes only goes through; above it writes succeed again.
func TestKVFreeSpaceReserve(t *testing.T) {
	var free atomic.Uint64
	free.Store(1 << 40)
	q, err := store.Open(store.Options{Dir: filepath.Join(t.TempDir(), "q"), MinFreeBytes: 64 << 20,
		Statfs: func(string) (uint64, error) { return free.Load(), nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	kv, err := q.KV("sessions")
	if err != nil {
		t.Fatal(err)
	}
	defer kv.Close()
	ctx := context.Background()
	if err := kv.Write(ctx, []store.KVOp{{Key: "a", Value: []byte("1")}}); err != nil {
		t.Fatal(err)
	}
	free.Store(1 << 20)
	if err := kv.Write(ctx, []store.KVOp{{Key: "a"}, {Key: "b", Value: []byte("2")}}); !errors.Is(err, store.ErrFull) {
		t.Fatalf("write below the reserve: %v; want ErrFull", err)
	}
	if keys, err := kv.List(ctx, ""); err != nil || len(keys) != 1 || keys[0] != "a" {
		t.Fatalf("keys %q, %v; want [a]: the refused write wrote nothing", keys, err)
	}
	if err := kv.Write(ctx, []store.KVOp{{Key: "a"}}); err != nil {
		t.Fatalf("delete below the reserve: %v; want it to go through", err)
	}
	free.Store(1 << 40)
	if err := kv.Write(ctx, []store.KVOp{{Key: "b", Value: []byte("2")}}); err != nil {
		t.Fatal(err)
	}
}
