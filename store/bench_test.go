package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// BenchmarkEnqueue: 100-byte payloads, every Enqueue returns after the fsync
// of its batch; writers concurrent callers share the syncs.
func BenchmarkEnqueue(b *testing.B) {
	if s := os.Getenv("EDGEGW_LINGER_SPINS"); s != "" { // experiments: 0 = no yielding
		fmt.Sscan(s, &lingerSpins)
	}
	for _, writers := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			q := openT(b, Options{Dir: filepath.Join(b.TempDir(), "q"), Routes: []RouteLimits{{Name: "telemetry"}}})
			payload := make([]byte, 100)
			b.ReportAllocs()
			b.SetBytes(100)
			c := startCost(b)
			b.ResetTimer()
			enqueueFrom(b, q, writers, b.N, Message{Route: "telemetry", Topic: "building/f1/temp", Payload: payload, QoS: 1, Device: "temp-f01-001"})()
			b.StopTimer()
			c.report(b)
			enq := float64(b.N) / b.Elapsed().Seconds()
			syncs := fdatasyncRate(b, q.dir)
			b.ReportMetric(enq, "enq/s")
			b.ReportMetric(syncs, "syncs/s")
			b.ReportMetric(enq/syncs, "enq/sync")
		})
	}
}

// BenchmarkDrain: Next+Ack throughput over a pre-filled queue.
func BenchmarkDrain(b *testing.B) {
	q := openT(b, Options{Dir: filepath.Join(b.TempDir(), "q")})
	payload := make([]byte, 100)
	enqueueFrom(b, q, 64, b.N, Message{Route: "telemetry", Topic: "building/f1/temp", Payload: payload, QoS: 1})()
	b.ReportAllocs()
	c := startCost(b)
	b.ResetTimer()
	drain(b, q, b.N)
	if err := q.sync(); err != nil { // the acks written
		b.Fatal(err)
	}
	b.StopTimer()
	c.report(b)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
}

// enqueueFrom enqueues m n times from writers goroutines and returns at
// once; the function it returns waits for them. An Enqueue error fails the
// benchmark.
func enqueueFrom(b *testing.B, q *Queue, writers, n int, m Message) (wait func()) {
	var left atomic.Int64
	left.Store(int64(n))
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				if _, err := q.Enqueue(context.Background(), m); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	return wg.Wait
}

// drain takes and acks n messages.
func drain(b *testing.B, q *Queue, n int) {
	for range n {
		m, err := q.Next(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if err := q.Ack(m.Seq); err != nil {
			b.Fatal(err)
		}
	}
}

// fdatasyncRate is the peer measured in the same run, on the same
// filesystem: how many write+fdatasync of 128 bytes it does per second (the
// machine is shared; enq/sync says what batching achieves).
func fdatasyncRate(b *testing.B, dir string) float64 {
	f, err := os.CreateTemp(dir, "fsync-peer")
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 128)
	n := 0
	start := time.Now()
	for time.Since(start) < 500*time.Millisecond {
		if _, err := f.WriteAt(buf, int64(n%1024)*128); err != nil {
			b.Fatal(err)
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			b.Fatal(err)
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds()
}

// BenchmarkStorageCost: what one 100-byte message costs the storage and the
// CPU over its whole life in the queue. 64 writers enqueue b.N messages while
// a reader takes them with Next and acks them (as the bridge does); the
// queue is then closed, so badger's flush of what its memtable still holds
// is counted too. wbytes/msg is this process's write_bytes
// (/proc/self/io: bytes sent towards the storage, the write-ahead log, value
// log, tables and compactions) per message; cpu-us/msg is the process's user
// plus system time per message; peak-go-MiB the most memory the Go runtime
// held resident during the run (peakGoMemory: heap, stacks, runtime
// structures; badger's memtables and table builders are Go heap here), the
// part of the daemon's peak RSS that badgerOptions decides. Plain and
// encrypted (the packaged config encrypts the queue). Run with
// -benchtime=100000x or more: below a memtable of messages the final flush
// dominates.
func BenchmarkStorageCost(b *testing.B) {
	for _, tc := range []struct {
		name string
		key  []byte
	}{{"plain", nil}, {"encrypted", make([]byte, 32)}} {
		b.Run(tc.name, func(b *testing.B) { storageCost(b, tc.key) })
	}
}

func storageCost(b *testing.B, key []byte) {
	dir := filepath.Join(b.TempDir(), "q")
	q, err := Open(Options{Dir: dir, Routes: []RouteLimits{{Name: "telemetry"}}, EncryptionKey: key})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	payload := make([]byte, 100)
	w0, err := writeBytes()
	if err != nil {
		b.Fatal(err)
	}
	cpu0 := cpuTime(b)
	peak := peakGoMemory()
	b.ResetTimer()
	wait := enqueueFrom(b, q, 64, b.N, Message{Route: "telemetry", Topic: "building/f1/temp", Payload: payload, QoS: 1, Device: "temp-f01-001"})
	drain(b, q, b.N)
	wait()
	if err := q.Close(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(peak())/(1<<20), "peak-go-MiB")
	w1, err := writeBytes()
	if err != nil {
		b.Fatal(err)
	}
	cpu1 := cpuTime(b)
	b.ReportMetric(float64(w1-w0)/float64(b.N), "wbytes/msg")
	b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(b.N), "cpu-us/msg")
}

// peakGoMemory samples, every 5 ms until the returned function is called,
// the memory the Go runtime holds from the OS and has not returned to it
// (runtime/metrics: all memory classes minus the heap's released pages),
// and the function returns the highest sample. File pages (the binary,
// badger's mmapped tables and logs) are not in it.
func peakGoMemory() (stop func() uint64) {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	done, res := make(chan struct{}), make(chan uint64)
	go func() {
		var peak uint64
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			peak = max(peak, s[0].Value.Uint64()-s[1].Value.Uint64())
			select {
			case <-done:
				res <- peak
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 { close(done); return <-res }
}

// BenchmarkBacklogMemory: what a backlog costs in memory. 64 writers
// enqueue b.N 100-byte messages into an encrypted queue with no reader (the
// upstream is down), then they are drained and acked; peak-go-MiB is the
// most the Go runtime held during both (peakGoMemory): the flattens of a
// growing tree, whose table builders run several at once. Run with
// -benchtime=200000x or more.
func BenchmarkBacklogMemory(b *testing.B) {
	q, err := Open(Options{Dir: filepath.Join(b.TempDir(), "q"), Routes: []RouteLimits{{Name: "telemetry"}}, EncryptionKey: make([]byte, 32)})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	c, peak := startCost(b), peakGoMemory()
	b.ResetTimer()
	enqueueFrom(b, q, 64, b.N, Message{Route: "telemetry", Topic: "building/f1/temp", Payload: make([]byte, 100), QoS: 1, Device: "temp-f01-001"})()
	drain(b, q, b.N)
	b.StopTimer()
	b.ReportMetric(float64(peak())/(1<<20), "peak-go-MiB")
	c.report(b)
}

// cost is what the process wrote to storage and spent in CPU since
// startCost: reported per operation as wbytes/msg and cpu-us/msg (what
// happens in the background, a memtable flush or a compaction, counts
// when it falls inside the run).
type cost struct {
	w   uint64
	cpu time.Duration
}

func startCost(b *testing.B) cost {
	w, err := writeBytes()
	if err != nil {
		b.Fatal(err)
	}
	return cost{w, cpuTime(b)}
}

func (c cost) report(b *testing.B) {
	w, err := writeBytes()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(w-c.w)/float64(b.N), "wbytes/msg")
	b.ReportMetric(float64((cpuTime(b)-c.cpu).Microseconds())/float64(b.N), "cpu-us/msg")
}

// writeBytes is write_bytes of /proc/self/io.
func writeBytes() (uint64, error) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "write_bytes: "); ok {
			return strconv.ParseUint(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/self/io has no write_bytes line")
}

// cpuTime is the process's user plus system time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPipeline: one publisher as the broker drives the queue, a window
// of 50 Submits in flight (each Waited in order, the next one submitted as
// one returns), while a reader takes the messages with Next and acks them
// (the bridge), into an encrypted queue (the packaged config). It is the
// store's share of the harness's one-publisher run: commits of a few tens
// of messages, so per-commit costs show. Run with -benchtime=100000x or more.
func BenchmarkPipeline(b *testing.B) {
	var syncs atomic.Int64
	q := openT(b, Options{Dir: filepath.Join(b.TempDir(), "q"), Routes: []RouteLimits{{Name: "telemetry"}}, EncryptionKey: make([]byte, 32),
		OnSync: func(time.Duration) { syncs.Add(1) }})
	m := Message{Route: "telemetry", Topic: "building/f1/temp", Payload: make([]byte, 100), QoS: 1, Device: "temp-f01-001"}
	b.ReportAllocs()
	c := startCost(b)
	b.ResetTimer()
	done := make(chan struct{})
	go func() {
		defer close(done)
		var win [50]Ticket
		for i := 0; i < b.N; i++ {
			if i >= len(win) {
				if _, err := win[i%len(win)].Wait(context.Background()); err != nil {
					b.Error(err)
					return
				}
			}
			t, err := q.Submit(context.Background(), m)
			if err != nil {
				b.Error(err)
				return
			}
			win[i%len(win)] = t
		}
		for i := max(b.N-len(win), 0); i < b.N; i++ {
			if _, err := win[i%len(win)].Wait(context.Background()); err != nil {
				b.Error(err)
			}
		}
	}()
	drain(b, q, b.N)
	<-done
	b.StopTimer()
	c.report(b)
	b.ReportMetric(float64(b.N)/float64(syncs.Load()), "msgs/sync")
}
