package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// waitDisarmed waits (bounded) until q's compaction driver has gone idle
// (its compactions done).
func waitDisarmed(t *testing.T, q *Queue) {
	t.Helper()
	for i := 0; q.compact.armed.Load(); i++ {
		if i == 6000 {
			t.Fatalf("compaction driver still armed a minute after the writes (%d checks, %d compactions)", q.compact.checks.Load(), q.compact.flattens.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// An idle queue makes no level-0 checks; writes arm the driver, which keeps
// level 0 short through many memtable flushes (no flush ever waits: badger's
// L0 stall is out of reach) and goes idle again once the writes stop.
func TestCompactionsDrivenByWrites(t *testing.T) {
	q := openT(t, Options{})
	waitDisarmed(t, q)
	c0 := q.compact.checks.Load()
	time.Sleep(2 * compactQuiet * compactEvery)
	if got := q.compact.checks.Load(); got != c0 {
		t.Fatalf("idle queue: %d level-0 checks while nothing was written; want 0", got-c0)
	}

	// Payloads of 3/4 of valueThreshold (at most 24 KiB) stay in the LSM
	// tree, and enough of them to flush more than a dozen memtables: 4,800
	// of 24 KiB on 64-bit, about 4,900 of 6 KiB on 32-bit (its 8 KiB threshold).
	const writers = 8
	size := min(24<<10, valueThreshold*3/4)
	per := max(600, 12*int(memTableSize)/(writers*size)*6/5)
	if size >= valueThreshold || writers*per*size < 12*int(memTableSize) {
		t.Fatalf("test sizes no longer flush a dozen memtables through the LSM tree (memtable %d, threshold %d)", memTableSize, valueThreshold)
	}
	write := func(round int) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := make([]byte, size)
				for i := range per {
					copy(p, fmt.Sprintf("r%d w%d %d ", round, w, i))
					if _, err := q.Enqueue(ctx, Message{Route: fmt.Sprintf("w%d", w), Topic: "t", Payload: p, QoS: 1}); err != nil {
						errs <- fmt.Errorf("round %d writer %d message %d: %w (a stalled flush?)", round, w, i, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	write(0)
	waitDisarmed(t, q) // and done compacting
	if q.compact.flattens.Load() == 0 {
		t.Fatalf("%d checks, no compaction after %d MiB written; want level 0 compacted", q.compact.checks.Load(), writers*per*size>>20)
	}
	if lv := q.db.Levels(); dueL0(lv, q.badgerOptions().NumLevelZeroTables) {
		t.Fatalf("level 0 holds %d tables, %d bytes (the levels below %+v) after the driver went idle; want it compacted", lv[0].NumTables, lv[0].Size, lv[1:])
	}
	// Writes after an idle spell arm it again (the flushes left over from
	// the first round are in level 0 now).
	f := q.compact.flattens.Load()
	write(1)
	waitDisarmed(t, q)
	if q.compact.flattens.Load() == f {
		t.Fatal("no compaction in the second round of writes; want the driver armed again")
	}
	c1 := q.compact.checks.Load()
	time.Sleep(2 * compactQuiet * compactEvery)
	if got := q.compact.checks.Load(); got != c1 {
		t.Fatalf("idle again: %d level-0 checks; want 0", got-c1)
	}
	// Every message is there, in order per route.
	last := map[string]string{}
	for range 2 * writers * per {
		m := next(t, q)
		var r, w, i int
		if _, err := fmt.Sscanf(string(m.Payload), "r%d w%d %d ", &r, &w, &i); err != nil {
			t.Fatalf("payload %.20q: %v", m.Payload, err)
		}
		key := fmt.Sprintf("%08d", r*per+i)
		if key <= last[m.Route] {
			t.Fatalf("route %s: message %s after %s; want FIFO", m.Route, key, last[m.Route])
		}
		last[m.Route] = key
		if err := q.Ack(m.Seq); err != nil {
			t.Fatal(err)
		}
	}
	nextNone(t, q)
}

func TestDueL0(t *testing.T) {
	lv := func(l0Tables int, l0, l6 int64) []badger.LevelInfo {
		out := make([]badger.LevelInfo, 7)
		out[0] = badger.LevelInfo{NumTables: l0Tables, Size: l0}
		out[6] = badger.LevelInfo{Level: 6, Size: l6}
		return out
	}
	for _, tc := range []struct {
		name string
		lv   []badger.LevelInfo
		want bool
	}{
		{"empty", lv(0, 0, 0), false},
		{"one flush", lv(1, 8<<20, 0), false},
		{"two flushes, nothing below: Flatten would leave them", lv(2, 16<<20, 0), false},
		{"three flushes, nothing below", lv(3, 24<<20, 0), true},
		{"two flushes over a small last level", lv(2, 16<<20, 4<<20), true},
		{"one flush over a small last level", lv(1, 8<<20, 1<<20), false},
		{"two flushes over a big last level", lv(2, 16<<20, 200<<20), false},
		{"level 0 half the last level", lv(13, 100<<20, 200<<20), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := dueL0(tc.lv, 2); got != tc.want {
				t.Errorf("dueL0 = %v; want %v", got, tc.want)
			}
		})
	}
}
