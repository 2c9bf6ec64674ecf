package store

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// TestSeqNeverReused: sequence numbers continue above every one handed out
// before, whatever happened to the queue in between: drained to empty,
// moved aside as corrupt, removed by hand. (The cloud drops a message whose
// (device, seq) it has seen.)
func TestSeqNeverReused(t *testing.T) {
	reopenDelay = 0
	cases := []struct {
		name   string
		damage func(t *testing.T, dir string)
		moved  bool
	}{
		{"reopened", func(*testing.T, string) {}, false},
		{"drained to empty", nil, false},
		{"moved aside as corrupt", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "MANIFEST"), []byte("garbage garbage garbage"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"removed by hand", func(t *testing.T, dir string) {
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "q")
			var last uint64
			for round := range 3 {
				q, err := Open(Options{Dir: dir})
				if err != nil {
					t.Fatal(err)
				}
				for range 5 {
					s := enq(t, q, "a", "x")
					if s <= last {
						t.Fatalf("round %d: seq %d; want above %d", round, s, last)
					}
					last = s
				}
				if tc.damage == nil { // drained: no message key is left
					for range 5 {
						if err := q.Ack(next(t, q).Seq); err != nil {
							t.Fatal(err)
						}
					}
				}
				if err := q.Close(); err != nil {
					t.Fatal(err)
				}
				if tc.damage != nil {
					tc.damage(t, dir)
				}
			}
			q := openT(t, Options{Dir: dir})
			if s := enq(t, q, "a", "x"); s <= last {
				t.Fatalf("after the last reopen: seq %d; want above %d", s, last)
			}
			if moved := q.Stats().CorruptMovedTo != ""; moved != tc.moved {
				t.Fatalf("moved aside %v; want %v", moved, tc.moved)
			}
		})
	}
}

// TestSeqFileDamaged: a garbled mark beside the queue is reported and the
// queue's own mark is used.
func TestSeqFileDamaged(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "q")
	q := openT(t, Options{Dir: dir})
	s1 := enq(t, q, "a", "x")
	q.Close()
	if err := os.WriteFile(seqPath(dir), []byte("not a number"), 0o600); err != nil {
		t.Fatal(err)
	}
	q = openT(t, Options{Dir: dir})
	if s := enq(t, q, "a", "y"); s <= s1 {
		t.Fatalf("seq %d after %d", s, s1)
	}
	if v, err := readSeqFile(seqPath(dir)); err != nil || v <= s1 {
		t.Fatalf("mark rewritten: %d, %v", v, err)
	}
}

// TestDamagedMetaRecounted: a route meta that does not decode is counted
// again from the messages (logged), not a queue that refuses to open.
func TestDamagedMetaRecounted(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "q")
	q := openT(t, Options{Dir: dir})
	enq(t, q, "a", "x")
	enq(t, q, "a", "y")
	q.mu.Lock()
	rid := q.routes["a"].id
	q.mu.Unlock()
	if err := q.db.Update(func(txn *badger.Txn) error { return txn.Set(routePrefix(pMeta, rid), []byte("short")) }); err != nil {
		t.Fatal(err)
	}
	q.Close()
	q = openT(t, Options{Dir: dir})
	if st := q.Stats(); st.Depth != 2 {
		t.Fatalf("depth %d after a recount; want 2", st.Depth)
	}
	if m := next(t, q); string(m.Payload) != "x" {
		t.Fatalf("first message %q", m.Payload)
	}
}
