package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// A crash state is built on disk byte for byte from two copies of a live
// queue's files, taken while it was open (what kill -9 leaves: the page
// cache holds every byte written, synced or not): before, after every
// acknowledged message, and after, one more commit later. The state is
// before's files with the damage a crash can do to the part after wrote:
// a record written halfway, a file cut short, a file created and not yet
// extended. Open must repair it with no help, report what it repaired, and
// every message acknowledged before must be there, in order per route.

// crashCopies returns the two copies and the sequence numbers acknowledged
// before the first, per route. big puts one message of the last commit in
// the value log.
func crashCopies(t *testing.T, key []byte, big bool) (before, after string, acked map[string][]uint64) {
	t.Helper()
	root := t.TempDir()
	src := filepath.Join(root, "live")
	q := openT(t, Options{Dir: src, EncryptionKey: key})
	acked = map[string][]uint64{}
	for i := range 40 {
		route := []string{"a", "b"}[i%2]
		payload := fmt.Sprintf("m%03d", i)
		if i%13 == 0 {
			payload = strings.Repeat("v", valueThreshold+100) // in the value log
		}
		acked[route] = append(acked[route], enq(t, q, route, payload))
	}
	before = filepath.Join(root, "before")
	copyQueue(t, src, before)
	last := "the last commit"
	if big {
		last = strings.Repeat("w", 3*valueThreshold)
	}
	enq(t, q, "a", last)
	after = filepath.Join(root, "after")
	copyQueue(t, src, after)
	return before, after, acked
}

// copyQueue copies the regular files of a queue directory (not LOCK).
func copyQueue(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || e.Name() == "LOCK" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// newest is the name of the highest-numbered file with ext in dir.
func newest(t *testing.T, dir, ext string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "*"+ext))
	if len(m) == 0 {
		t.Fatalf("no %s file in %s", ext, dir)
	}
	slices.Sort(m)
	return filepath.Base(m[len(m)-1])
}

// grown returns where the file name differs between before and after: the
// bytes the last commit wrote, [from, to).
func grown(t *testing.T, before, after, name string) (a, b []byte, from, to int) {
	t.Helper()
	a, _ = os.ReadFile(filepath.Join(before, name))
	b, err := os.ReadFile(filepath.Join(after, name))
	if err != nil {
		t.Fatal(err)
	}
	from = -1
	for i := range b {
		if i >= len(a) || a[i] != b[i] {
			if from < 0 {
				from = i
			}
			to = i + 1
		}
	}
	if from < 0 || to-from < 2 {
		t.Fatalf("%s: the last commit wrote nothing to it", name)
	}
	return a, b, from, to
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func truncate(t *testing.T, path string, n int64) {
	t.Helper()
	if err := os.Truncate(path, n); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRepairsCrashStates(t *testing.T) {
	key := make([]byte, 32)
	rand.Read(key)
	cases := []struct {
		name string
		big  bool // the last commit puts a value in the value log
		// build turns dir (a copy of before) into the crash state.
		build func(t *testing.T, dir, before, after string)
		want  []RepairKind
	}{
		{name: "zero-length new value log", want: []RepairKind{RepairEmptyLog},
			build: func(t *testing.T, dir, _, _ string) {
				// Created by a rotation or by Open, killed before ftruncate.
				writeFile(t, filepath.Join(dir, nextName(t, dir, ".vlog")), nil)
			}},
		{name: "zero-length new memtable log", want: []RepairKind{RepairEmptyLog},
			build: func(t *testing.T, dir, _, _ string) {
				writeFile(t, filepath.Join(dir, nextName(t, dir, ".mem")), nil)
			}},
		{name: "value log shorter than its header", want: []RepairKind{RepairShortHeader},
			build: func(t *testing.T, dir, _, _ string) {
				// Extended, and a power cut kept only the first bytes of the header.
				writeFile(t, filepath.Join(dir, nextName(t, dir, ".vlog")), []byte{0, 0, 0, 0, 0, 0, 0})
			}},
		{name: "memtable log shorter than its header", want: []RepairKind{RepairShortHeader},
			build: func(t *testing.T, dir, _, _ string) {
				writeFile(t, filepath.Join(dir, nextName(t, dir, ".mem")), []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
			}},
		{name: "torn last record in the memtable log",
			build: func(t *testing.T, dir, before, after string) {
				// kill -9 in the middle of the copy of the last transaction.
				name := newest(t, after, ".mem")
				a, b, from, to := grown(t, before, after, name)
				torn := bytes.Clone(a)
				copy(torn[from:], b[from:from+(to-from)/2])
				writeFile(t, filepath.Join(dir, name), torn)
			}},
		{name: "memtable log cut inside its last record",
			build: func(t *testing.T, dir, before, after string) {
				// A power cut: the file's size went to disk, not all of its end.
				name := newest(t, after, ".mem")
				_, b, from, to := grown(t, before, after, name)
				writeFile(t, filepath.Join(dir, name), b[:from+(to-from)/3])
			}},
		{name: "torn last value in the value log", big: true,
			build: func(t *testing.T, dir, before, after string) {
				name := newest(t, after, ".vlog")
				a, b, from, to := grown(t, before, after, name)
				torn := bytes.Clone(a)
				if len(torn) < to {
					torn = append(torn, make([]byte, to-len(torn))...)
				}
				copy(torn[from:], b[from:from+(to-from)/2])
				writeFile(t, filepath.Join(dir, name), torn)
			}},
		{name: "value log cut inside its last value", big: true,
			build: func(t *testing.T, dir, before, after string) {
				name := newest(t, after, ".vlog")
				_, b, from, to := grown(t, before, after, name)
				writeFile(t, filepath.Join(dir, name), b[:from+(to-from)/3])
			}},
		{name: "MANIFEST with a half-written change", want: []RepairKind{RepairManifestTail},
			build: func(t *testing.T, dir, _, _ string) {
				// A change record's length and checksum, and part of its body.
				f, err := os.OpenFile(filepath.Join(dir, "MANIFEST"), os.O_APPEND|os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				f.Write([]byte{0, 0, 0, 40, 0xde, 0xad, 0xbe, 0xef, 10, 4})
				f.Close()
			}},
		{name: "MANIFEST whose last change kept its size, not its bytes", want: []RepairKind{RepairManifestTail},
			build: func(t *testing.T, dir, _, _ string) {
				f, err := os.OpenFile(filepath.Join(dir, "MANIFEST"), os.O_APPEND|os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				f.Write([]byte{0, 0, 0, 4, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0})
				f.Close()
			}},
		{name: "MANIFEST cut inside a change's header", want: []RepairKind{RepairManifestTail},
			build: func(t *testing.T, dir, _, _ string) {
				f, err := os.OpenFile(filepath.Join(dir, "MANIFEST"), os.O_APPEND|os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				f.Write([]byte{0, 0, 0})
				f.Close()
			}},
		{name: "MANIFEST cut short before its magic, no table", want: []RepairKind{RepairManifest},
			build: func(t *testing.T, dir, _, _ string) {
				if m, _ := filepath.Glob(filepath.Join(dir, "*.sst")); len(m) > 0 {
					t.Fatalf("the queue has tables %v; this state needs none", m)
				}
				truncate(t, filepath.Join(dir, "MANIFEST"), 5)
			}},
		{name: "DISCARD cut to 5 bytes", want: []RepairKind{RepairDiscard},
			build: func(t *testing.T, dir, _, _ string) { truncate(t, filepath.Join(dir, "DISCARD"), 5) }},
		{name: "DISCARD cut inside a slot", want: []RepairKind{RepairDiscard},
			build: func(t *testing.T, dir, _, _ string) {
				// Slot 0 in use, cut in slot 1: no empty slot would be left.
				path := filepath.Join(dir, "DISCARD")
				b, _ := os.ReadFile(path)
				b = b[:discardSlot+9]
				copy(b, []byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0})
				writeFile(t, path, b)
			}},
		{name: "zero-length DISCARD",
			build: func(t *testing.T, dir, _, _ string) { truncate(t, filepath.Join(dir, "DISCARD"), 0) }},
	}
	for _, enc := range []bool{false, true} {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s/encrypted=%v", tc.name, enc), func(t *testing.T) {
				var k []byte
				if enc {
					k = key
				}
				before, after, acked := crashCopies(t, k, tc.big)
				dir := filepath.Join(t.TempDir(), "q")
				copyQueue(t, before, dir)
				tc.build(t, dir, before, after)
				var logs bytes.Buffer
				q := openT(t, Options{Dir: dir, EncryptionKey: k, KeepCorrupt: true,
					Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
				rep := q.OpenReport()
				var kinds []RepairKind
				for _, r := range rep.Repairs {
					kinds = append(kinds, r.Kind)
				}
				if !slices.Equal(kinds, tc.want) || rep.MovedTo != "" {
					t.Fatalf("OpenReport: got repairs %v, moved to %q; want %v, not moved", rep.Repairs, rep.MovedTo, tc.want)
				}
				for _, r := range rep.Repairs {
					if want := fmt.Sprintf("kind=%s file=%s size=%d", r.Kind, r.File, r.Size); !strings.Contains(logs.String(), "queue file repaired after a crash") || !strings.Contains(logs.String(), want) {
						t.Fatalf("log: got %q; want a line with %q", logs.String(), want)
					}
				}
				checkAcked(t, q, acked)
				// It keeps working: a new message, and a second Open.
				seq := enq(t, q, "a", "after the repair")
				if err := q.Close(); err != nil {
					t.Fatal(err)
				}
				q2 := openT(t, Options{Dir: dir, EncryptionKey: k, KeepCorrupt: true})
				acked["a"] = append(acked["a"], seq)
				checkAcked(t, q2, acked)
				if r := q2.OpenReport(); !r.Empty() {
					t.Fatalf("second Open repaired again: %+v", r)
				}
			})
		}
	}
}

// nextName is the name badger gives the next file with ext in dir.
func nextName(t *testing.T, dir, ext string) string {
	t.Helper()
	var id int
	fmt.Sscanf(newest(t, dir, ext), "%d", &id)
	if ext == ".mem" {
		return fmt.Sprintf("%05d.mem", id+1)
	}
	return fmt.Sprintf("%06d.vlog", id+1)
}

// checkAcked reads the whole queue with Next and checks that every seq in
// acked is there, in order per route, no seq twice.
func checkAcked(t *testing.T, q *Queue, acked map[string][]uint64) {
	t.Helper()
	got := map[string][]uint64{}
	for {
		m, err := available(q)
		if errors.Is(err, context.Canceled) {
			break
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if s := got[m.Route]; len(s) > 0 && m.Seq <= s[len(s)-1] {
			t.Fatalf("route %s: seq %d after %d", m.Route, m.Seq, s[len(s)-1])
		}
		got[m.Route] = append(got[m.Route], m.Seq)
	}
	for route, want := range acked {
		present := map[uint64]bool{}
		for _, s := range got[route] {
			present[s] = true
		}
		for _, s := range want {
			if !present[s] {
				t.Fatalf("route %s: acknowledged seq %d is missing; got %v; want all of %v", route, s, got[route], want)
			}
		}
	}
}

// TestOpenSalvagesUnreadableQueue: a queue whose route registry badger reads
// but the store cannot is moved aside, and every readable message is copied
// into the new queue with its route, sequence number and order; the counts
// are in the OpenReport.
func TestOpenSalvagesUnreadableQueue(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "q")
	q := openT(t, Options{Dir: dir})
	acked := map[string][]uint64{}
	for i := range 30 {
		route := []string{"a", "b", "c"}[i%3]
		acked[route] = append(acked[route], enq(t, q, route, fmt.Sprintf("m%d", i)))
	}
	kv, err := q.KV("shadow")
	if err != nil {
		t.Fatal(err)
	}
	bigDoc := bytes.Repeat([]byte{'d'}, valueThreshold+10) // in the value log
	if err := kv.Write(context.Background(), []KVOp{{Key: "thing/a", Value: []byte(`{"v":1}`)}, {Key: "thing/b", Value: bigDoc}}); err != nil {
		t.Fatal(err)
	}
	kv.Close()
	// What a kill -9 leaves: a write-ahead log not yet flushed. Put back
	// under a later id after the damage, it makes the damaged queue's logs
	// numbered above the ones a new queue starts with.
	mems, _ := filepath.Glob(filepath.Join(dir, "*.mem"))
	if len(mems) == 0 {
		t.Fatal("no write-ahead log in the open queue")
	}
	unflushed, err := os.ReadFile(mems[len(mems)-1])
	if err != nil {
		t.Fatal(err)
	}
	q.Close()
	// Damage: route b's registry entry, and one message of route c.
	// The store's value-log size: badger's default (2 GiB) cannot be mapped on 32-bit.
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithValueLogFileSize(valueLogFileSize))
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(txn *badger.Txn) error {
		if err := txn.Set([]byte("rb"), []byte{1, 2}); err != nil {
			return err
		}
		s := acked["c"][4] // enqueued alone: a segment of its own
		return txn.Set(segKey(3, s, s), []byte{9, 9})
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	if err := os.WriteFile(filepath.Join(dir, "00009.mem"), unflushed, 0o600); err != nil {
		t.Fatal(err)
	}

	q = openT(t, Options{Dir: dir, Routes: []RouteLimits{{Name: "a"}, {Name: "c"}}})
	rep := q.OpenReport()
	if rep.MovedTo == "" || rep.Salvage.Messages != 29 || rep.Salvage.Keys != 2 || rep.Salvage.Lost != 2 {
		t.Fatalf("OpenReport: got %+v; want moved aside, 29 messages and 2 key-space records salvaged, 2 records lost (b's registry entry, one message of c)", rep)
	}
	// The key space (device shadows) is copied whole.
	kv, err = q.KV("shadow")
	if err != nil {
		t.Fatal(err)
	}
	defer kv.Close()
	for k, want := range map[string][]byte{"thing/a": []byte(`{"v":1}`), "thing/b": bigDoc} {
		if got, err := kv.Get(context.Background(), k); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("salvaged key %s: got %d bytes, %v; want %d bytes", k, len(got), err, len(want))
		}
	}
	// Route b's messages are kept under a name made from its id.
	acked["salvaged-route-2"] = acked["b"]
	delete(acked, "b")
	acked["c"] = slices.Delete(acked["c"], 4, 5)
	checkAcked(t, q, acked)
	if st := q.Stats(); st.Depth != 29 || st.CorruptMovedTo != rep.MovedTo {
		t.Fatalf("Stats: got depth %d, moved to %q; want 29 and %q", st.Depth, st.CorruptMovedTo, rep.MovedTo)
	}
	if seq := enq(t, q, "a", "new"); seq <= acked["c"][len(acked["c"])-1] {
		t.Fatalf("new seq %d not above the salvaged ones", seq)
	}
	// That commit was synced in the new queue's write-ahead log, not in a
	// file of the queue moved aside (the syncers are reopened on salvage).
	s := q.walSync
	if s.fd == nil {
		t.Fatal("no write-ahead log synced after the salvage")
	}
	got, err := s.fd.Stat()
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.Stat(filepath.Join(dir, fmt.Sprintf("%05d.mem", s.fdID)))
	if err != nil || !os.SameFile(got, want) {
		t.Fatalf("the commit after a salvage synced %s (id %d), not the new queue's log in %s (%v)", s.fd.Name(), s.fdID, dir, err)
	}
}

// TestNextMovesDamagedMessageAside: a queued message whose record does not
// read goes to the dead letters (reason ReasonDamaged, its bytes as the
// payload) and Next hands out the messages after it: one bad record does
// not stop the queue.
func TestNextMovesDamagedMessageAside(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "q")
	q := openT(t, Options{Dir: dir})
	var seqs []uint64
	for i := range 4 {
		seqs = append(seqs, enq(t, q, "a", fmt.Sprintf("m%d", i)))
	}
	q.mu.Lock()
	rid := q.routes["a"].id
	q.mu.Unlock()
	if err := q.db.Update(func(txn *badger.Txn) error { return txn.Set(segKey(rid, seqs[1], seqs[1]), []byte{7, 7, 7}) }); err != nil {
		t.Fatal(err)
	}
	q.Close()
	var logs bytes.Buffer
	q = openT(t, Options{Dir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	var got []string
	for range 3 {
		m := next(t, q)
		got = append(got, string(m.Payload))
		q.Ack(m.Seq)
	}
	nextNone(t, q)
	if want := []string{"m0", "m2", "m3"}; !slices.Equal(got, want) {
		t.Fatalf("Next: got %q; want %q", got, want)
	}
	if err := q.syncDeletes(); err != nil { // the dead letter is written by the next commit
		t.Fatal(err)
	}
	dl, err := q.DeadLetters("a", 0)
	if err != nil || len(dl) != 1 || dl[0].Seq != seqs[1] || dl[0].Reason != ReasonDamaged || !bytes.Equal(dl[0].Payload, []byte{7, 7, 7}) {
		t.Fatalf("DeadLetters: got %+v, %v; want seq %d, reason %s, payload 070707", dl, err, seqs[1], ReasonDamaged)
	}
	if !strings.Contains(logs.String(), "queued message does not read") {
		t.Fatalf("log: got %q; want the damaged message named", logs.String())
	}
	if st := q.Stats(); st.Depth != 0 || st.DeadLetters != 1 {
		t.Fatalf("Stats: got depth %d, dead letters %d; want 0 and 1", st.Depth, st.DeadLetters)
	}
}
