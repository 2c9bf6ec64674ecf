package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// oldValue is a message as the store wrote it before segments, byte for
// byte (version 1, flags, QoS, time, topic, device, payload), spelled out
// here rather than taken from appendMessage so that a change to that
// encoding cannot make this test agree with itself.
func oldValue(retain bool, qos byte, t int64, topic, device string, payload []byte) []byte {
	v := []byte{1, 0, qos}
	if retain {
		v[1] = 1
	}
	v = binary.BigEndian.AppendUint64(v, uint64(t))
	v = binary.AppendUvarint(v, uint64(len(topic)))
	v = append(v, topic...)
	v = binary.AppendUvarint(v, uint64(len(device)))
	v = append(v, device...)
	return append(v, payload...)
}

// oldKey is a message's key before segments: "m" route-id(4) seq(8).
func oldKey(rid uint32, seq uint64) []byte {
	k := []byte{'m', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(k[1:], rid)
	binary.BigEndian.PutUint64(k[5:], seq)
	return k
}

func TestSegmentCodec(t *testing.T) {
	const t0 = int64(1_780_000_000_000_000_000)
	vals := [][]byte{
		oldValue(false, 1, t0, "building/f1/temp", "temp-01", []byte("21.5")),
		oldValue(false, 1, t0+1500, "building/f1/temp", "temp-01", []byte("21.6")), // topic and device repeated
		oldValue(true, 0, t0-7, "building/f1/hum", "temp-01", nil),                 // time going back, empty payload
		oldValue(false, 2, 0, "x", "", bytes.Repeat([]byte{0xff}, 3000)),           // no time, no device
		{9, 9, 9}, // a record that does not read: carried as it is
		oldValue(false, 1, t0, "building/f1/temp", "temp-02", []byte{0}),
	}
	seqs := []uint64{5, 6, 9, 10, 200, 1 << 40}
	var w segWriter
	w.reset(nil)
	for i, v := range vals {
		w.add(seqs[i], v)
	}
	if w.first != 5 || w.last != 1<<40 || w.n != len(vals) {
		t.Fatalf("writer: first %d last %d n %d; want 5, %d, %d", w.first, w.last, w.n, uint64(1)<<40, len(vals))
	}
	seg := w.b
	var plain int
	for _, v := range vals {
		plain += len(v)
	}
	if len(seg) >= plain {
		t.Fatalf("segment of %d bytes; want fewer than the %d of its messages apart", len(seg), plain)
	}
	r := newSegReader(w.first, w.last, seg)
	for i, v := range vals {
		seq, got, damaged, ok := r.next()
		if !ok || damaged || seq != seqs[i] || !bytes.Equal(got, v) {
			t.Fatalf("message %d: got seq %d %x damaged %v ok %v; want seq %d %x", i, seq, got, damaged, ok, seqs[i], v)
		}
	}
	if _, _, _, ok := r.next(); ok {
		t.Fatal("a message after the last")
	}

	// Cut anywhere: the messages before the cut read, the rest is one
	// damaged record (unless nothing of the segment is missing), never a
	// panic, never a message that was not written.
	for cut := 0; cut < len(seg); cut++ {
		r := newSegReader(w.first, w.last, seg[:cut])
		n, damagedSeen := 0, false
		for {
			seq, got, damaged, ok := r.next()
			if !ok {
				break
			}
			if damagedSeen {
				t.Fatalf("cut at %d: a record after the damaged one", cut)
			}
			if damaged {
				damagedSeen = true
				want := w.first
				if n > 0 {
					want = seqs[n-1] + 1
				}
				if seq != want {
					t.Fatalf("cut at %d: damaged record at seq %d; want %d", cut, seq, want)
				}
				continue
			}
			if n >= len(vals) || seq != seqs[n] || !bytes.Equal(got, vals[n]) {
				t.Fatalf("cut at %d: message %d is seq %d %x", cut, n, seq, got)
			}
			n++
		}
		if n == len(vals) && damagedSeen {
			t.Fatalf("cut at %d: all messages read and a damaged record", cut)
		}
		if n < len(vals) && !damagedSeen {
			t.Fatalf("cut at %d: %d of %d messages and no damaged record", cut, n, len(vals))
		}
	}
}

// TestMigrateOldFormat: a queue as the store wrote it before segments (one
// "m" entry per message, written here byte for byte with badger) opens with
// every message once, in order, with the same counts; the old entries are
// gone and a second Open finds nothing to migrate.
func TestMigrateOldFormat(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  []byte
	}{{"plain", nil}, {"encrypted", testKey32}} {
		t.Run(tc.name, func(t *testing.T) { migrateOld(t, tc.key) })
	}
}

func migrateOld(t *testing.T, key []byte) {
	dir := filepath.Join(t.TempDir(), "q")
	routes := []RouteLimits{{Name: "hi", Priority: 1}, {Name: "lo"}, {Name: "nometa"}}
	q := openT(t, Options{Dir: dir, EncryptionKey: key})
	q.Close()
	// Written as the builds of the old format wrote: 2 MiB memtables, whose
	// transactions take the 2,000 messages of "lo" in one.
	db, err := badger.Open(q.badgerOptions().WithMemTableSize(2 << 20))
	if err != nil {
		t.Fatal(err)
	}
	const t0 = int64(1_780_000_000_000_000_000)
	big := bytes.Repeat([]byte("B"), valueThreshold+100) // in the value log
	type want struct {
		route string
		seq   uint64
		val   []byte
	}
	var wants []want
	err = db.Update(func(txn *badger.Txn) error {
		set := func(k, v []byte) {
			if err == nil {
				err = txn.Set(k, v)
			}
		}
		putMeta := func(rid uint32, m meta) { set([]byte{'c', 0, 0, 0, byte(rid)}, m.append(nil)) }
		set([]byte("rhi"), []byte{0, 0, 0, 1})
		set([]byte("rlo"), []byte{0, 0, 0, 2})
		set([]byte("rnometa"), []byte{0, 0, 0, 3})
		set([]byte{'s'}, be64(1<<16))
		// hi: seqs 1..40 every third, head 4 (1 was acked, still on disk
		// as the old format left it when the delete raced a crash).
		var hm meta
		hm.head = 4
		for seq := uint64(1); seq <= 40; seq += 3 {
			v := oldValue(seq%2 == 0, 1, t0+int64(seq), "site/hi", "dev-a", fmt.Appendf(nil, "hi%d", seq))
			if seq == 22 {
				v = oldValue(false, 1, t0, "site/hi", "dev-a", big)
			}
			set(oldKey(1, seq), v)
			if seq >= hm.head {
				hm.count++
				hm.bytes += int64(len(v))
				wants = append(wants, want{"hi", seq, v})
			}
			hm.last = seq
		}
		putMeta(1, hm)
		// lo: 2000 messages (two migration transactions), seqs 41.., and
		// one record that does not read.
		var lm meta
		lm.head = 41
		for seq := uint64(41); seq < 2041; seq++ {
			v := oldValue(false, 1, t0+int64(seq), fmt.Sprintf("site/lo/%d", seq%3), "", fmt.Appendf(nil, "lo%d", seq))
			if seq == 100 {
				v = []byte{7, 7}
			}
			set(oldKey(2, seq), v)
			lm.count++
			lm.bytes += int64(len(v))
			lm.last = seq
			wants = append(wants, want{"lo", seq, v})
		}
		putMeta(2, lm)
		// nometa: written before the meta existed: a head cursor record.
		set([]byte{'h', 0, 0, 0, 3}, be64(3000))
		for seq := uint64(2999); seq <= 3003; seq++ {
			v := oldValue(false, 0, t0, "site/n", "d", fmt.Appendf(nil, "n%d", seq))
			set(oldKey(3, seq), v)
			if seq >= 3000 {
				wants = append(wants, want{"nometa", seq, v})
			}
		}
		return err
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	q = openT(t, Options{Dir: dir, EncryptionKey: key, Routes: routes})
	checkNoOld := func() {
		t.Helper()
		q.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pMsg}})
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				t.Fatalf("old-format entry %x still there after Open", it.Item().Key())
			}
			return nil
		})
	}
	checkNoOld()
	st := q.Stats()
	counts := map[string][2]int64{}
	for _, w := range wants {
		c := counts[w.route]
		counts[w.route] = [2]int64{c[0] + 1, c[1] + int64(len(w.val))}
	}
	for _, rs := range st.Routes {
		var truth meta
		if err := q.db.View(func(txn *badger.Txn) (err error) { truth, err = scanMeta(txn, q.routes[rs.Name].id, 0); return }); err != nil {
			t.Fatal(err)
		}
		if c := counts[rs.Name]; rs.Depth != c[0] || rs.Bytes != c[1] || truth.count != c[0] || truth.bytes != c[1] {
			t.Fatalf("route %s: Stats %d messages %d bytes, on disk %d, %d; want %d, %d", rs.Name, rs.Depth, rs.Bytes, truth.count, truth.bytes, c[0], c[1])
		}
	}
	// A second Open: nothing left to migrate, the same messages.
	q.Close()
	q = openT(t, Options{Dir: dir, EncryptionKey: key, Routes: routes})
	checkNoOld()
	// Next: hi first (priority), then lo and nometa by seq; each message
	// once, whole. The record that did not read goes to the dead letters.
	var got []want
	for {
		m, err := available(q)
		if err != nil {
			break
		}
		got = append(got, want{m.Route, m.Seq, appendMessage(nil, &m)})
		if err := q.Ack(m.Seq); err != nil {
			t.Fatal(err)
		}
	}
	var expect []want
	for _, r := range []string{"hi", "lo", "nometa"} {
		for _, w := range wants {
			if w.route == r && !(r == "lo" && w.seq == 100) {
				expect = append(expect, w)
			}
		}
	}
	if len(got) != len(expect) {
		t.Fatalf("Next gave %d messages; want %d", len(got), len(expect))
	}
	for i := range got {
		if got[i].route != expect[i].route || got[i].seq != expect[i].seq || !bytes.Equal(got[i].val, expect[i].val) {
			t.Fatalf("message %d: got %s/%d %.40q; want %s/%d %.40q", i, got[i].route, got[i].seq, got[i].val, expect[i].route, expect[i].seq, expect[i].val)
		}
	}
	if err := q.syncDeletes(); err != nil {
		t.Fatal(err)
	}
	dl, err := q.DeadLetters("lo", 0)
	if err != nil || len(dl) != 1 || dl[0].Seq != 100 || dl[0].Reason != ReasonDamaged || !bytes.Equal(dl[0].Payload, []byte{7, 7}) {
		t.Fatalf("dead letters: %+v, %v; want seq 100 damaged, payload 0707", dl, err)
	}
	if seq := enq(t, q, "lo", "new"); seq <= 3003 {
		t.Fatalf("new seq %d; want above the migrated ones", seq)
	}
}

// TestMigrateHalfDone: a crash in the middle of the migration leaves some
// messages in segments and the rest in the old format (each transaction
// moves a batch whole); Open finishes it, each message once, in order.
func TestMigrateHalfDone(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "q")
	q := openT(t, Options{Dir: dir})
	var seqs []uint64
	for i := range 30 {
		seqs = append(seqs, enq(t, q, "a", fmt.Sprintf("m%02d", i)))
	}
	q.mu.Lock()
	rid := q.routes["a"].id
	q.mu.Unlock()
	q.Close()
	db, err := badger.Open(q.badgerOptions())
	if err != nil {
		t.Fatal(err)
	}
	// Messages 10..29 back to the old format, as if the migration had
	// converted only 0..9.
	err = db.Update(func(txn *badger.Txn) error {
		for i, seq := range seqs[10:] {
			if err := txn.Delete(segKey(rid, seq, seq)); err != nil {
				return err
			}
			v := oldValue(false, 1, 0, "t/a", "dev1", fmt.Appendf(nil, "m%02d", 10+i))
			if err := txn.Set(oldKey(rid, seq), v); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	q = openT(t, Options{Dir: dir})
	var want []string
	for i := range 30 {
		want = append(want, fmt.Sprintf("m%02d", i))
	}
	if got := payloads(t, q, 30); !slices.Equal(got, want) {
		t.Fatalf("got %v; want %v", got, want)
	}
	nextNone(t, q)
}

// countKeys counts the keys of q under prefix.
func countKeys(t *testing.T, q *Queue, prefix byte) int {
	t.Helper()
	n := 0
	if err := q.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: []byte{prefix}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSegmentHeadAndMarkers: messages removed out of order are markers
// until the head passes them; a reopen hands out exactly the others; once
// everything is acked no segment and no marker is left.
func TestSegmentHeadAndMarkers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "q")
	q := openT(t, Options{Dir: dir})
	// One commit: Submit all, then wait (the committer may still split
	// them; the test does not depend on how).
	seqs := submitAll(t, q, 20, func(i int) Message {
		return Message{Route: "a", Topic: "t", Payload: fmt.Appendf(nil, "m%02d", i), QoS: 1}
	})
	for range 20 {
		next(t, q)
	}
	// Ack the odd ones (out of order: markers), dead-letter number 4.
	for i := 1; i < 20; i += 2 {
		if err := q.Ack(seqs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.DeadLetter(seqs[4], "refused"); err != nil {
		t.Fatal(err)
	}
	if err := q.syncDeletes(); err != nil {
		t.Fatal(err)
	}
	if n := countKeys(t, q, pMark); n != 11 {
		t.Fatalf("%d markers; want 11 (10 acks and a dead letter, all above the head)", n)
	}
	q.Close()
	q = openT(t, Options{Dir: dir})
	var want []string
	for i := 0; i < 20; i += 2 {
		if i != 4 {
			want = append(want, fmt.Sprintf("m%02d", i))
		}
	}
	var got []string
	for range len(want) {
		m := next(t, q)
		got = append(got, string(m.Payload))
		if err := q.Ack(m.Seq); err != nil {
			t.Fatal(err)
		}
	}
	nextNone(t, q)
	if !slices.Equal(got, want) {
		t.Fatalf("after reopen got %v; want %v", got, want)
	}
	if err := q.syncDeletes(); err != nil {
		t.Fatal(err)
	}
	if g, d := countKeys(t, q, pSeg), countKeys(t, q, pMark); g != 0 || d != 0 {
		t.Fatalf("after every ack: %d segments, %d markers left; want none", g, d)
	}
	if st := q.Stats(); st.Depth != 0 || st.DeadLetters != 1 {
		t.Fatalf("Stats: depth %d, dead letters %d; want 0, 1", st.Depth, st.DeadLetters)
	}
}

// TestSegmentBelowHeadNotRead: a segment below the head, as badger's
// value-log GC can bring a deleted one back (gcresurrect_test.go), is
// neither handed out nor counted, nor exported.
func TestSegmentBelowHeadNotRead(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "q")
	q := openT(t, Options{Dir: dir})
	old := enq(t, q, "a", "acked")
	q.Ack(next(t, q).Seq)
	keep := enq(t, q, "a", "kept")
	if err := q.syncDeletes(); err != nil {
		t.Fatal(err)
	}
	q.mu.Lock()
	rid, head := q.routes["a"].id, q.routes["a"].disk.head
	q.mu.Unlock()
	if head <= old {
		t.Fatalf("head %d; want above the acked %d", head, old)
	}
	// The acked message's segment, back.
	var w segWriter
	w.reset(nil)
	w.add(old, oldValue(false, 1, 0, "t/a", "dev1", []byte("acked")))
	if err := q.db.Update(func(txn *badger.Txn) error { return txn.Set(segKey(rid, old, old), w.b) }); err != nil {
		t.Fatal(err)
	}
	q.Close()
	q = openT(t, Options{Dir: dir})
	var out strings.Builder
	if n, err := q.Export("a", &out); err != nil || n != 1 || !strings.Contains(out.String(), fmt.Sprintf(`"seq":%d`, keep)) {
		t.Fatalf("Export: %d, %v, %s; want the kept message alone", n, err, out.String())
	}
	m := next(t, q)
	if m.Seq != keep {
		t.Fatalf("Next: seq %d %q; want %d", m.Seq, m.Payload, keep)
	}
	nextNone(t, q)
	var truth meta
	q.db.View(func(txn *badger.Txn) (err error) { truth, err = scanMeta(txn, rid, 0); return })
	if truth.count != 1 || q.Stats().Depth != 1 {
		t.Fatalf("on disk %d messages, Stats %d; want 1", truth.count, q.Stats().Depth)
	}
	// The next move of the head deletes it again, with the one it passes.
	q.Ack(m.Seq)
	if err := q.syncDeletes(); err != nil {
		t.Fatal(err)
	}
	if g := countKeys(t, q, pSeg); g != 0 {
		t.Fatalf("%d segments left after the head passed them; want none", g)
	}
}

// TestPurgeDeletesEverySegment: a purge moves the head past more segments
// than one commit deletes; the committer goes on by itself until none is
// left, with no further traffic.
func TestPurgeDeletesEverySegment(t *testing.T) {
	q := openT(t, Options{})
	n := maxPassed + 100
	for i := range n {
		enq(t, q, "a", fmt.Sprint(i)) // one commit each: a segment each
	}
	if g := countKeys(t, q, pSeg); g != n {
		t.Fatalf("%d segments; want %d", g, n)
	}
	if got, err := q.Purge("a", 0); err != nil || got != n {
		t.Fatalf("Purge: %d, %v; want %d", got, err, n)
	}
	if left := syncUntilNoneBehind(t, q); left != 0 {
		t.Fatalf("%d segments and markers left after the purge; want none", left)
	}
	nextNone(t, q)
}

// syncUntilNoneBehind syncs the committer, which deletes what a head passed
// a commit's share at a time, until no segment or marker is left (at most
// 100 syncs); it returns how many are left.
func syncUntilNoneBehind(t *testing.T, q *Queue) int {
	t.Helper()
	left := -1
	for range 100 {
		if err := q.sync(); err != nil {
			t.Fatal(err)
		}
		if left = countKeys(t, q, pSeg) + countKeys(t, q, pMark); left == 0 {
			break
		}
	}
	return left
}

// TestSegmentsStayBelowThreshold: a commit of many messages of one route
// is cut into segments below the value threshold (in the LSM tree, no
// value-log file to sync and collect); one message above it is a segment
// of its own. All come out in order.
func TestSegmentsStayBelowThreshold(t *testing.T) {
	q := openT(t, Options{})
	payload := bytes.Repeat([]byte("p"), 500)
	submitAll(t, q, 600, func(i int) Message {
		p := append(fmt.Appendf(nil, "%03d", i), payload...)
		if i == 300 {
			p = bytes.Repeat([]byte("B"), valueThreshold+10)
		}
		return Message{Route: "a", Topic: "t", Payload: p, QoS: 1}
	})
	var big int
	if err := q.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pSeg}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			_, first, last, _ := parseSegKey(it.Item().Key())
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			if len(v) >= valueThreshold {
				if first != last {
					t.Errorf("segment %d..%d of %d bytes: over the threshold %d with more than one message", first, last, len(v), valueThreshold)
				}
				big++
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if big != 1 {
		t.Fatalf("%d segments over the threshold; want 1 (the big message)", big)
	}
	q.Close()
	q = openT(t, Options{Dir: q.dir})
	for i := range 600 {
		m := next(t, q)
		if i == 300 {
			if len(m.Payload) != valueThreshold+10 {
				t.Fatalf("message %d: %d bytes; want the big one", i, len(m.Payload))
			}
			continue
		}
		if want := fmt.Sprintf("%03d", i); string(m.Payload[:3]) != want {
			t.Fatalf("message %d: %q...; want %s", i, m.Payload[:3], want)
		}
	}
	nextNone(t, q)
}

// TestReadBackAcrossSegments: read back from disk (after a reopen), a
// segment of many messages is handed out aheadMax at a time from one
// reader, a Rewind goes back into it, an ack out of order is skipped after
// the next reopen; every message in order.
func TestReadBackAcrossSegments(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "q")
	q := openT(t, Options{Dir: dir})
	submitAll(t, q, 300, func(i int) Message {
		return Message{Route: "a", Topic: "t", Payload: fmt.Appendf(nil, "%03d", i), QoS: 1}
	})
	q.Close()
	q = openT(t, Options{Dir: dir})
	want := func(from, to int, skip ...int) []string {
		var out []string
		for i := from; i < to; i++ {
			if !slices.Contains(skip, i) {
				out = append(out, fmt.Sprintf("%03d", i))
			}
		}
		return out
	}
	var seqs []uint64
	var got []string
	for range 150 {
		m := next(t, q)
		seqs = append(seqs, m.Seq)
		got = append(got, string(m.Payload))
	}
	if !slices.Equal(got, want(0, 150)) {
		t.Fatalf("first 150: got %v", got)
	}
	q.Ack(seqs[0])
	q.Ack(seqs[100])
	q.Rewind()
	got = payloads(t, q, 298)
	if !slices.Equal(got, want(1, 300, 100)) {
		t.Fatalf("after Rewind: got %v", got)
	}
	nextNone(t, q)
	q.Close()
	q = openT(t, Options{Dir: dir})
	if got = payloads(t, q, 298); !slices.Equal(got, want(1, 300, 100)) {
		t.Fatalf("after reopen: got %v", got)
	}
	nextNone(t, q)
	if q.readBack == 0 {
		t.Fatal("nothing was read back from disk: the test does not reach the segment reader")
	}
}

// FuzzSegmentReader: whatever bytes a segment holds (a damaged disk, a
// bad salvage), reading it never panics, returns seqs rising within the
// key's range, and every message it does not call damaged decodes.
func FuzzSegmentReader(f *testing.F) {
	var w segWriter
	w.reset(nil)
	w.add(10, oldValue(true, 1, 5, "a/b", "d", []byte("x")))
	w.add(12, oldValue(false, 0, 3, "a/b", "d", nil))
	w.add(13, []byte{1, 2})
	f.Add(uint64(10), uint64(13), w.b)
	hw, _, _ := harnessLike(40)
	f.Add(hw.first, hw.last, sealSeg(hw.b)) // version 3
	f.Add(uint64(1), uint64(1), []byte{segVersion})
	f.Add(uint64(1), uint64(1), []byte{segVersionS2})
	f.Add(uint64(5), uint64(9), []byte{7, 7, 7})
	f.Fuzz(func(t *testing.T, first, last uint64, v []byte) {
		if first > last || first == 0 {
			return
		}
		r := newSegReader(first, last, v)
		prev := uint64(0)
		for n := 0; ; n++ {
			seq, val, damaged, ok := r.next()
			if !ok {
				break
			}
			if n > len(v)+1 {
				t.Fatalf("%d records out of %d bytes", n, len(v))
			}
			if seq < first || seq > last || (n > 0 && seq <= prev) {
				t.Fatalf("seq %d after %d, outside %d..%d", seq, prev, first, last)
			}
			prev = seq
			if !damaged && len(val) > 0 && val[0] == encVersion {
				var m Message
				if parseOld(val).raw {
					continue // a raw record carried over as it was
				}
				if err := decodeMessage(val, &m); err != nil {
					t.Fatalf("seq %d: %v", seq, err)
				}
			}
		}
	})
}

// incompressible returns n pseudo-random bytes (seeded): payloads that
// fill memtables and value-log files as their length says, compressed
// segments or not.
func incompressible(n int, seed uint64) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)}).Read(b)
	return b
}

// harnessLike is n messages of four sensors in turn, payloads as the paho
// harness sends them ("<prefix> <sensor> <seq> 0" and spaces to 100
// bytes), in the per-message encoding; ends[i] is where message i's
// encoding ends in the version-2 body w.b[1:] of the returned writer.
func harnessLike(n int) (w segWriter, vals [][]byte, ends []int) {
	const t0 = int64(1_780_000_000_000_000_000)
	w.reset(nil)
	for i := range n {
		sensor := fmt.Sprintf("sensor-%02d", i%4)
		p := fmt.Appendf(nil, "bench %s %d 0", sensor, i)
		p = append(p, bytes.Repeat([]byte(" "), 100-len(p))...)
		v := oldValue(false, 1, t0+int64(i)*1e6, "sensors/"+sensor+"/t", sensor, p)
		vals = append(vals, v)
		w.add(uint64(100+i), v)
		ends = append(ends, len(w.b)-1)
	}
	return w, vals, ends
}

// segChunks returns where each compressed chunk of a version-3 segment
// starts, and its stored length (length prefix, block, CRC).
func segChunks(t *testing.T, v []byte) (starts, lens []int) {
	t.Helper()
	for p := 1; p < len(v); {
		n, k := binary.Uvarint(v[p:])
		if k <= 0 {
			t.Fatalf("chunk at %d: no length", p)
		}
		starts, lens = append(starts, p), append(lens, k+int(n)+4)
		p += k + int(n) + 4
	}
	return starts, lens
}

// TestSegmentCompressed: a segment of harness-like messages is written
// compressed (version 3, in chunks) and reads back message for message;
// incompressible and tiny segments stay version 2, byte for byte.
func TestSegmentCompressed(t *testing.T) {
	w, vals, _ := harnessLike(300)
	plain := slices.Clone(w.b)
	v := sealSeg(slices.Clone(w.b))
	if v[0] != segVersionS2 || len(v) > len(plain)/4 {
		t.Fatalf("sealed: version %d, %d bytes of %d; want version %d, at most a quarter", v[0], len(v), len(plain), segVersionS2)
	}
	if starts, _ := segChunks(t, v); len(starts) != (len(plain)-1+segChunk-1)/segChunk {
		t.Fatalf("%d chunks for a body of %d bytes; want one per %d", len(starts), len(plain)-1, segChunk)
	}
	r := newSegReader(w.first, w.last, v)
	for i, want := range vals {
		seq, got, damaged, ok := r.next()
		if !ok || damaged || seq != uint64(100+i) || !bytes.Equal(got, want) {
			t.Fatalf("message %d: seq %d damaged %v ok %v %x; want seq %d %x", i, seq, damaged, ok, got, 100+i, want)
		}
	}
	if _, _, _, ok := r.next(); ok {
		t.Fatal("a message after the last")
	}

	for _, tc := range []struct {
		name    string
		payload []byte
		n       int
	}{
		{"incompressible", nil, 40},
		{"tiny", []byte("21.5"), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var w segWriter
			w.reset(nil)
			for i := range tc.n {
				p := tc.payload
				if p == nil {
					p = incompressible(100, uint64(i))
				}
				w.add(uint64(1+i), oldValue(false, 1, int64(i), fmt.Sprintf("t/%d", i), "", p))
			}
			if v := sealSeg(slices.Clone(w.b)); !bytes.Equal(v, w.b) {
				t.Fatalf("sealed to %d bytes, version %d; want the version-2 segment as it was", len(v), v[0])
			}
		})
	}
}

// TestSegmentVersionsByteForByte: segments as the store writes them, spelled
// out byte for byte (version 2, and version 3 with one chunk of S2 literals
// and its CRC), read from a queue: every message with its fields.
func TestSegmentVersionsByteForByte(t *testing.T) {
	body := []byte{
		0x00,       // seq - first
		0x02,       // flags: QoS 1
		0xd0, 0x0f, // time 1000 (zigzag varint)
		3, 'a', '/', 'b', // topic
		2, 'd', '1', // device
		2, 'h', 'i', // payload
		0x01,             // seq + 1
		0x33,             // flags: retain, QoS 1, same topic, same device
		0x0a,             // time + 5
		3, 'y', 'o', 'u', // payload
	}
	v2 := append([]byte{2}, body...)
	// An S2 block of literals: the decoded length, a literal tag
	// ((len-1)<<2), the bytes.
	block := append([]byte{byte(len(body)), byte(len(body)-1) << 2}, body...)
	v3 := append([]byte{3, byte(len(block))}, block...)
	v3 = binary.BigEndian.AppendUint32(v3, crc32.Checksum(block, crc32.MakeTable(crc32.Castagnoli)))

	for _, tc := range []struct {
		name string
		v    []byte
	}{{"version 2", v2}, {"version 3", v3}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "q")
			q := openT(t, Options{Dir: dir})
			a, b := enq(t, q, "r", "x"), enq(t, q, "r", "y")
			if b != a+1 {
				t.Fatalf("seqs %d and %d; want consecutive (the spelled-out segment's second delta is 1)", a, b)
			}
			q.mu.Lock()
			rid := q.routes["r"].id
			q.mu.Unlock()
			// The two one-message segments, replaced by one holding both.
			if err := q.db.Update(func(txn *badger.Txn) error {
				if err := txn.Delete(segKey(rid, a, a)); err != nil {
					return err
				}
				if err := txn.Delete(segKey(rid, b, b)); err != nil {
					return err
				}
				return txn.Set(segKey(rid, a, b), tc.v)
			}); err != nil {
				t.Fatal(err)
			}
			q.Close()
			q = openT(t, Options{Dir: dir})
			var out strings.Builder // the admin reader
			if n, err := q.Export("r", &out); err != nil || n != 2 || !strings.Contains(out.String(), `"topic":"a/b"`) {
				t.Fatalf("Export: %d, %v, %s; want both messages", n, err, out.String())
			}
			want := []Message{
				{Route: "r", Topic: "a/b", Device: "d1", Payload: []byte("hi"), QoS: 1, Seq: a, Time: 1000},
				{Route: "r", Topic: "a/b", Device: "d1", Payload: []byte("you"), QoS: 1, Retain: true, Seq: b, Time: 1005},
			}
			for _, w := range want {
				m := next(t, q)
				if m.Topic != w.Topic || m.Device != w.Device || !bytes.Equal(m.Payload, w.Payload) || m.QoS != w.QoS ||
					m.Retain != w.Retain || m.Seq != w.Seq || m.Time != w.Time {
					t.Fatalf("Next: got %+v; want %+v", m, w)
				}
			}
			nextNone(t, q)
		})
	}
}

// TestCompressedSegmentDamaged: a byte flipped in any chunk of a compressed
// segment, or the segment cut anywhere: the messages the good chunks hold
// whole read, exactly those, in order; the rest is one damaged record at
// the next seq; salvage copies the readable ones and counts the rest lost.
func TestCompressedSegmentDamaged(t *testing.T) {
	w, vals, ends := harnessLike(300)
	v := sealSeg(slices.Clone(w.b))
	starts, lens := segChunks(t, v)
	// readable: the messages whose encoding ends within the first good
	// bytes of the body.
	readable := func(good int) int {
		n := 0
		for n < len(ends) && ends[n] <= good {
			n++
		}
		return n
	}
	check := func(t *testing.T, bad []byte, want int) {
		t.Helper()
		r := newSegReader(w.first, w.last, bad)
		n, damaged := 0, 0
		for {
			seq, got, dmg, ok := r.next()
			if !ok {
				break
			}
			if dmg {
				if damaged++; seq != uint64(100+n) {
					t.Fatalf("damaged record at seq %d after %d messages; want %d", seq, n, 100+n)
				}
				continue
			}
			if damaged > 0 || n >= len(vals) || seq != uint64(100+n) || !bytes.Equal(got, vals[n]) {
				t.Fatalf("message %d: seq %d %x (after %d damaged)", n, seq, got, damaged)
			}
			n++
		}
		if n != want || (n < len(vals)) != (damaged == 1) || damaged > 1 {
			t.Fatalf("%d messages and %d damaged records; want %d messages and a damaged record for the rest", n, damaged, want)
		}
		k := segKey(7, w.first, w.last)
		var rep SalvageReport
		sk, sv, err := salvageSegment(k, bad, &rep)
		if err != nil || rep.Messages != want || (rep.Lost == 1) != (want < len(vals)) {
			t.Fatalf("salvage: %d messages, %d lost, %v; want %d messages", rep.Messages, rep.Lost, err, want)
		}
		if want > 0 {
			_, first, last, _ := parseSegKey(sk)
			r, n := newSegReader(first, last, sv), 0
			for {
				_, got, dmg, ok := r.next()
				if !ok || dmg || !bytes.Equal(got, vals[n]) {
					break
				}
				n++
			}
			if first != 100 || last != uint64(100+want-1) || n != want {
				t.Fatalf("salvaged segment %d..%d reads %d messages; want 100..%d, %d", first, last, n, 100+want-1, want)
			}
		}
	}
	for c := range starts {
		t.Run(fmt.Sprintf("chunk %d flipped", c), func(t *testing.T) {
			bad := slices.Clone(v)
			bad[starts[c]+lens[c]/2] ^= 0x40
			check(t, bad, readable(c*segChunk))
		})
	}
	for cut := 1; cut < len(v); cut += 7 {
		good := 0
		for c := range starts {
			if starts[c]+lens[c] <= cut {
				good = min((c+1)*segChunk, len(w.b)-1)
			}
		}
		check(t, v[:cut], readable(good))
	}
}

// TestHeadsPassingManyMarkersFitOneCommit: several routes whose heads pass
// more markers at once than one badger transaction holds (badger refuses a
// transaction of 15% of a memtable in entries or bytes: ErrTxnTooBig). The
// deletes behind the heads share one allowance per commit, so the commit
// that moves the heads is written; before, every route took up to
// maxPassed markers and maxPassed segments of its own, the transaction was
// refused, its acks went back to wait and every later commit carried them
// again: the queue refused every new message from then on.
func TestHeadsPassingManyMarkersFitOneCommit(t *testing.T) {
	q := openT(t, Options{})
	const routes = 4
	n := maxPassed + 100
	seqs := make([][]uint64, routes)
	for r := range routes {
		route := fmt.Sprintf("r%d", r)
		seqs[r] = submitAll(t, q, n, func(i int) Message {
			return Message{Route: route, Topic: "t", Payload: []byte(fmt.Sprint(i)), QoS: 1}
		})
	}
	// Everything but each route's first message: markers, the heads stay.
	for r := range routes {
		for _, s := range seqs[r][1:] {
			if err := q.Ack(s); err != nil {
				t.Fatalf("Ack(%d): %v", s, err)
			}
		}
	}
	// One sync writes what one transaction holds: more for the rest.
	marks, want := 0, routes*(n-1)
	for range 100 {
		if err := q.sync(); err != nil {
			t.Fatal(err)
		}
		if marks = countKeys(t, q, pMark); marks == want {
			break
		}
	}
	if marks != want {
		t.Fatalf("%d markers before the heads move; want %d", marks, want)
	}
	// The first messages together: one commit moves every head past
	// routes x (n-1) markers.
	for r := range routes {
		if err := q.Ack(seqs[r][0]); err != nil {
			t.Fatalf("Ack(%d): %v", seqs[r][0], err)
		}
	}
	if left := syncUntilNoneBehind(t, q); left != 0 {
		t.Fatalf("%d segments and markers left after the heads passed them; want none", left)
	}
	if _, err := q.Enqueue(context.Background(), Message{Route: "r0", Topic: "t", Payload: []byte("after"), QoS: 1}); err != nil {
		t.Fatalf("Enqueue after the heads moved: %v", err)
	}
	m, err := q.Next(context.Background())
	if err != nil || string(m.Payload) != "after" {
		t.Fatalf("Next: %q, %v; want the message enqueued after the acks", m.Payload, err)
	}
}

// TestHeadPassesTrackedSegments: the segments the committer wrote are
// deleted from memory (rt.segs) once a head moved past the ones from
// before (read from badger); past segTrackMax of them tracking starts
// over. Whichever way, every segment the head passes is deleted and none
// other, and the messages come out in order.
func TestHeadPassesTrackedSegments(t *testing.T) {
	q := openT(t, Options{})
	n := segTrackMax + 50
	var seqs []uint64
	for i := range n {
		seqs = append(seqs, enq(t, q, "a", fmt.Sprint(i))) // one commit each: a segment each
	}
	q.mu.Lock()
	rt := q.routes["a"]
	if tracked, from := len(rt.segs), rt.trackFrom; tracked != 50-1 || from != seqs[segTrackMax+1] {
		q.mu.Unlock()
		t.Fatalf("tracking %d segments from %d; want 49 from %d (it started over at segTrackMax)", tracked, from, seqs[segTrackMax+1])
	}
	q.mu.Unlock()
	ack := func(k int) {
		t.Helper()
		for range k {
			m := next(t, q)
			if want := seqs[0]; m.Seq != want {
				t.Fatalf("Next: seq %d; want %d", m.Seq, want)
			}
			seqs = seqs[1:]
			if err := q.Ack(m.Seq); err != nil {
				t.Fatal(err)
			}
		}
		if err := q.syncDeletes(); err != nil {
			t.Fatal(err)
		}
	}
	// The head passes untracked segments (read), then tracked ones.
	for _, k := range []int{10, segTrackMax, 20} {
		ack(k)
		if left := syncUntilNoneBehind(t, q); left != len(seqs) {
			t.Fatalf("%d segments and markers left; want %d (one per message not acked)", left, len(seqs))
		}
	}
	q.mu.Lock()
	if rt.trackFrom > rt.passFrom || len(rt.segs) != len(seqs) {
		q.mu.Unlock()
		t.Fatalf("tracking from %d, head passed %d, %d segments tracked; want the head past tracking's start and %d tracked", rt.trackFrom, rt.passFrom, len(rt.segs), len(seqs))
	}
	q.mu.Unlock()
	// A few commits of many messages: the tracked segments hold several each.
	for range 3 {
		seqs = append(seqs, submitAll(t, q, 40, func(i int) Message {
			return Message{Route: "a", Topic: "t", Payload: fmt.Appendf(nil, "m%02d", i), QoS: 1}
		})...)
	}
	ack(len(seqs))
	if left := syncUntilNoneBehind(t, q); left != 0 {
		t.Fatalf("%d segments and markers left after every ack; want none", left)
	}
	nextNone(t, q)
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(rt.segs) != 0 {
		t.Fatalf("%d segments still tracked after every one was deleted", len(rt.segs))
	}
}
