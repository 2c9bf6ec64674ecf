//go:build gcresurrect

package store

// An open bug, reproduced here and not fixed: badger v4.9.6's value-log GC
// brings deleted keys back. Build with -tags gcresurrect to run it:
//
//	go test -tags gcresurrect -count=1 -run '^TestValueLogGCResurrects$' -v ./store/
//
// It fails (usually in its first or second round of a few seconds): after
// a clean Close and reopen, a route's data holds big messages that were
// acked long ago (below its head cursor; no tombstone left), which its meta
// does not count.
//
// The cause, in badger's value.go and levels.go: valueLog.rewrite looks
// each entry of the file up with db.get(e.Key), and e.Key carries the
// entry's own version, so db.get finds that version even when a newer
// tombstone shadows it (discardEntry then keeps it): GC writes the dead
// value back, at its old version, at the top of the LSM tree. The tombstone
// is kept only while the rewrite runs (gcActive, badger #2286); afterwards a
// compaction of the last level drops it (hasOverlap looks only at the levels
// below), and the old value above it is live again. The queue does not
// deliver such a message again (it is below the head cursor) but its value
// is never reclaimed, a dead letter purged or replayed comes back, and so
// does a deleted key of a KV space (a deleted device shadow). The crash and
// power-cut children do not run GC (their GCInterval is the default 5
// minutes) until this is fixed.

import (
	"bytes"
	"context"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestValueLogGCResurrects(t *testing.T) {
	defer func(n int64) { valueLogFileSize = n }(valueLogFileSize)
	valueLogFileSize = 1 << 20 // badger's least: many files for GC
	dir := filepath.Join(t.TempDir(), "q")
	for round := range 12 {
		q, err := Open(Options{Dir: dir, Routes: soakRoutes, GCInterval: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		checkMeta(t, round, q)
		var stop atomic.Bool
		var wg sync.WaitGroup
		for w := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(round), uint64(w)))
				route := soakRoutes[w%3].Name
				for !stop.Load() {
					size := 50 + rng.IntN(200)
					switch {
					case rng.IntN(40) == 0:
						size = valueThreshold + rng.IntN(3*valueThreshold) // the value log
					case route == "bulk":
						size = 2048 + rng.IntN(14<<10) // memtable flushes, compactions
					}
					if _, err := q.Enqueue(context.Background(), Message{Route: route, Topic: "t", Payload: bytes.Repeat([]byte{'x'}, size)}); err != nil {
						return
					}
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				m, err := q.Next(ctx)
				cancel()
				if err != nil {
					continue
				}
				q.Ack(m.Seq)
				if i%10 == 0 {
					time.Sleep(2 * time.Millisecond)
				}
			}
		}()
		time.Sleep(3 * time.Second)
		stop.Store(true)
		wg.Wait()
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: meta and data agreed at its start", round)
	}
}
