package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
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
				p := incompressible(size, uint64(w)) // a compressed segment of zeros would flush no memtable
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

// BenchmarkBytesPerSource: where the bytes a message costs the storage go,
// per source, under the load of the third-party harness (cmd/edgegw
// bench_paho_test.go): pubs publishers, each keeping pahoWindow 100-byte
// messages submitted and not yet synced, a reader taking and acking them
// as they come (an upstream that keeps up), the encrypted queue of the
// packaged config. Reported per message: wbytes (the process's
// write_bytes, /proc/self/io), of which l0 (memtable flushes: the SSTs
// badger lists at level 0 when first seen), lsm (compaction outputs: the
// SSTs first seen below level 0, Flatten's rewrites), manifest, and wal
// (the rest: the memtables' mmapped write-ahead logs, whose every synced
// commit dirties at least one page again: wal-pages/sync). payload=harness
// is the harness's ("<prefix> <sensor> <seq> 0" and spaces: it
// compresses), payload=random is incompressible. Run with -benchtime
// 100000x (a burst of the harness's size).
//
// upstream=offline takes and acks only after the whole burst is queued (a
// backlog: what compactions rewrite of live messages).
func BenchmarkBytesPerSource(b *testing.B) {
	for _, up := range []string{"keeping-up", "offline"} {
		for _, pubs := range []int{1, 4, 16} {
			for _, payload := range []string{"harness", "random"} {
				b.Run(fmt.Sprintf("upstream=%s/pubs=%d/payload=%s", up, pubs, payload), func(b *testing.B) { bytesPerSource(b, pubs, payload, up == "offline") })
			}
		}
	}
}

func bytesPerSource(b *testing.B, pubs int, payload string, offline bool) {
	const window = 50 // the harness's publishers' QoS 1 window
	var syncs atomic.Int64
	dir := filepath.Join(b.TempDir(), "q")
	q := openT(b, Options{Dir: dir, Routes: []RouteLimits{{Name: "telemetry"}}, EncryptionKey: make([]byte, 32),
		OnSync: func(time.Duration) { syncs.Add(1) }})
	msgs := make([][]Message, pubs)
	rng := rand.New(rand.NewPCG(1, 2))
	for p := range pubs {
		sensor := fmt.Sprintf("sensor-%02d", p)
		for i := range b.N/pubs + 1 {
			pl := []byte(fmt.Sprintf("bench-p%d %s %d 0", pubs, sensor, i))
			for len(pl) < 100 {
				if payload == "random" {
					pl = append(pl, byte(rng.Uint32()))
				} else {
					pl = append(pl, ' ')
				}
			}
			msgs[p] = append(msgs[p], Message{Route: "telemetry", Topic: "sensors/" + sensor + "/t", Device: sensor, Payload: pl, QoS: 1})
		}
	}
	w := newFileWatch(q)
	syncs.Store(0)
	c := startCost(b)
	b.ResetTimer()
	var wg sync.WaitGroup
	for p := range pubs {
		n := b.N / pubs
		if p < b.N%pubs {
			n++
		}
		wg.Go(func() {
			ctx := context.Background()
			var ring []Ticket
			for i := range n {
				t, err := q.Submit(ctx, msgs[p][i])
				if err != nil {
					b.Error(err)
					return
				}
				if ring = append(ring, t); len(ring) == window {
					if _, err := ring[0].Wait(ctx); err != nil {
						b.Error(err)
						return
					}
					ring = ring[1:]
				}
			}
			for _, t := range ring {
				if _, err := t.Wait(ctx); err != nil {
					b.Error(err)
				}
			}
		})
	}
	if offline {
		wg.Wait()
	}
	drain(b, q, b.N)
	wg.Wait()
	if err := q.sync(); err != nil { // the acks written
		b.Fatal(err)
	}
	b.StopTimer()
	c.report(b)
	src := w.stop()
	total, _ := writeBytes()
	n := float64(b.N)
	b.ReportMetric(float64(src.l0)/n, "l0-B/msg")
	b.ReportMetric(float64(src.lsm)/n, "lsm-B/msg")
	b.ReportMetric(float64(src.manifest)/n, "manifest-B/msg")
	wal := float64(total-c.w) - float64(src.l0+src.lsm+src.manifest+src.unseen)
	b.ReportMetric(wal/n, "wal-B/msg")
	b.ReportMetric(float64(src.unseen), "sst-missed")
	if s := syncs.Load(); s > 0 {
		b.ReportMetric(n/float64(s), "msg/sync")
		b.ReportMetric(wal/4096/float64(s), "wal-pages/sync")
	}
}

// fileWatch polls a queue's directory and badger's table list: the size of
// every SST created (written whole at creation) and the level badger first
// lists it at, and what MANIFEST grew by.
type fileWatch struct {
	q        *Queue
	done     chan struct{}
	res      chan watched
	seenSST  map[string]int64
	level    map[uint64]int
	manifest int64
}

type watched struct{ l0, lsm, manifest, unseen int64 }

func newFileWatch(q *Queue) *fileWatch {
	w := &fileWatch{q: q, done: make(chan struct{}), res: make(chan watched, 1), seenSST: map[string]int64{}, level: map[uint64]int{}}
	w.poll() // what is there already is not counted
	for k := range w.seenSST {
		w.seenSST[k] = -1
	}
	base := w.manifest
	go func() {
		var grown int64
		last := base
		for {
			select {
			case <-w.done:
				w.poll()
				grown += max(0, w.manifest-last)
				var r watched
				r.manifest = grown
				for name, size := range w.seenSST {
					if size < 0 {
						continue
					}
					var id uint64
					fmt.Sscanf(name, "%06d.sst", &id)
					switch l, ok := w.level[id]; {
					case !ok:
						r.unseen += size
					case l == 0:
						r.l0 += size
					default:
						r.lsm += size
					}
				}
				w.res <- r
				return
			case <-time.After(2 * time.Millisecond):
			}
			w.poll()
			if w.manifest < last { // rewritten whole
				grown += w.manifest
			} else {
				grown += w.manifest - last
			}
			last = w.manifest
		}
	}()
	return w
}

func (w *fileWatch) poll() {
	for _, t := range w.q.db.Tables() {
		if _, ok := w.level[t.ID]; !ok {
			w.level[t.ID] = t.Level
		}
	}
	ents, _ := os.ReadDir(w.q.dir)
	for _, e := range ents {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, ".sst"):
			if _, ok := w.seenSST[name]; !ok {
				if fi, err := e.Info(); err == nil {
					w.seenSST[name] = fi.Size()
				}
			}
		case name == "MANIFEST":
			if fi, err := e.Info(); err == nil {
				w.manifest = fi.Size()
			}
		}
	}
}

func (w *fileWatch) stop() watched {
	close(w.done)
	return <-w.res
}
