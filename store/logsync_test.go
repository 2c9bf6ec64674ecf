package store

import (
	"bytes"
	"context"
	"os"
	"testing"
)

// TestLogSyncerFollowsBadger pins what logSyncer assumes about badger's
// files: after every commit, the newest ".mem" (WAL) and ".vlog" files on disk
// are the ones the syncer synced last, across memtable and value-log
// rotations. If a badger upgrade renames or renumbers them, this fails.
func TestLogSyncerFollowsBadger(t *testing.T) {
	q := openT(t, Options{})
	newest := func(ext string) int64 {
		s, err := newLogSyncer(q.dir, ext)
		if err != nil {
			t.Fatal(err)
		}
		return s.cur
	}
	firstWAL, firstVlog := newest(".mem"), newest(".vlog")
	mid := incompressible(valueThreshold*9/10, 1) // stays in the LSM tree: fills memtables (compressed segments would not)
	big := bytes.Repeat([]byte{'v'}, 300<<10)     // goes to the value log
	n := int(memTableSize*3) / len(mid)
	for i := range max(n, 400) {
		p := mid
		if i%4 == 0 {
			p = big
		}
		if _, err := q.Enqueue(context.Background(), Message{Route: "r", Payload: p}); err != nil {
			t.Fatal(err)
		}
		q.mu.Lock() // the committer is idle between commits; its syncers are stable
		w, v := q.walSync.cur, q.vlogSync.cur
		q.mu.Unlock()
		if got := newest(".mem"); got != w {
			t.Fatalf("after enqueue %d: newest WAL file %d; the syncer synced up to %d", i, got, w)
		}
		if got := newest(".vlog"); got != v && i%4 == 0 {
			t.Fatalf("after enqueue %d: newest value-log file %d; the syncer synced up to %d", i, got, v)
		}
	}
	if w, v := q.walSync.cur, q.vlogSync.cur; w < firstWAL+2 || v < firstVlog+1 {
		ents, _ := os.ReadDir(q.dir)
		t.Fatalf("no rotation seen: WAL %d -> %d, value log %d -> %d; files %v", firstWAL, w, firstVlog, v, ents)
	}
}
