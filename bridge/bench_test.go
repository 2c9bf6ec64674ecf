package bridge

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgegw/edgegw/store"
)

// BenchmarkForward measures queue -> real Mosquitto upstream (mutual TLS on
// loopback), 100-byte QoS 1 messages, until every upstream PUBACK has been
// acknowledged to the queue. Reports msgs/s. Run with `make bench` or
//
//	go test -run '^$' -bench BenchmarkForward -benchtime 50000x ./bridge
func BenchmarkForward(b *testing.B) {
	b.Run("store", func(b *testing.B) { benchForward(b, newTestQueue(b), 1000) })
	// The in-memory queue isolates the bridge's own cost from the store's.
	b.Run("memqueue", func(b *testing.B) { benchForward(b, newMemQueue(b), 1000) })
	// A small Receive Maximum (Mosquitto's default, and near AWS IoT
	// Core's 100): publish/write and puback/read tell how well the window
	// is refilled in batches.
	b.Run("store-rm20", func(b *testing.B) { benchForward(b, newTestQueue(b), 20) })
	// The bridge's own cost at Receive Maximum 20, without the store's.
	b.Run("memqueue-rm20", func(b *testing.B) { benchForward(b, newMemQueue(b), 20) })
}

func benchForward(b *testing.B, q testQueue, window int) {
	br := newWindowBridge(b, q, window)
	fillTelemetry(b, q)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	b.ResetTimer()
	start, u0 := time.Now(), selfUsage(b)
	go func() { done <- br.Run(ctx) }()
	awaitAcked(b, br, "")
	u1 := selfUsage(b)
	stopAndReport(b, br, time.Since(start), cancel, done)
	reportUsage(b, u0, u1)
	b.ReportMetric(float64(br.State().Window), "window")
}

// newWindowBridge makes (does not run) a bridge of the telemetry route over
// q to a Mosquitto upstream announcing Receive Maximum window.
func newWindowBridge(b *testing.B, q testQueue, window int) *Bridge {
	b.Helper()
	m := startMosquitto(b, mosquittoOpts{maxInflight: window})
	cfg := testConfig(m, telemetry)
	cfg.Inflight = window
	br, err := New(cfg, q, newRecPublisher(), nil)
	if err != nil {
		b.Fatal(err)
	}
	return br
}

// stopAndReport stops the timer and br's Run (cancel; done is what Run
// returned) and reports b.N messages over elapsed and the PUBLISHes per
// write and PUBACKs per socket read upstream.
func stopAndReport(b *testing.B, br *Bridge, elapsed time.Duration, cancel context.CancelFunc, done <-chan error) {
	b.Helper()
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	st := br.State()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(st.Sent)/float64(max(st.Writes, 1)), "publish/write")
	b.ReportMetric(float64(st.Acked)/float64(max(st.SlotReleases, 1)), "puback/read")
}

// awaitAcked waits, bounded by 5 minutes, until br has b.N messages acked
// upstream; who names the bridge in the failure ("A ").
func awaitAcked(b *testing.B, br *Bridge, who string) {
	b.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for br.State().Acked < uint64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("%sacked %d of %d within 5 min", who, br.State().Acked, b.N)
		}
		time.Sleep(time.Millisecond)
	}
}

// fillTelemetry enqueues b.N telemetry messages of 100 bytes, from 16
// devices in turn (sensor-a to sensor-p).
func fillTelemetry(b *testing.B, q testQueue) {
	payload := make([]byte, 100)
	for i := range b.N {
		dev := "sensor-" + string(rune('a'+i%16))
		if _, err := q.Enqueue(context.Background(), store.Message{Route: telemetry.Name, Topic: "building/" + dev + "/temp",
			Payload: payload, QoS: 1, Device: dev, Time: time.Now().UnixNano()}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkForwardLive measures the bridge forwarding while the messages
// are being queued (64 writers, each enqueueing in turn and waiting for its
// commit, as sensors with a PUBACK outstanding do), to a Mosquitto upstream
// announcing Receive Maximum 20: msgs/s from the first enqueue to the last
// upstream PUBACK acknowledged to the queue, and how many PUBLISHes left per
// write to the upstream.
//
//	go test -run '^$' -bench BenchmarkForwardLive -benchtime 50000x ./bridge
func BenchmarkForwardLive(b *testing.B) {
	const writers, window = 64, 20
	q := newTestQueue(b)
	br := newWindowBridge(b, q, window)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- br.Run(ctx) }()
	for !br.State().Connected {
		select {
		case err := <-done:
			b.Fatalf("bridge stopped before connecting: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	payload := make([]byte, 100)
	b.ResetTimer()
	start, u0 := time.Now(), selfUsage(b)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dev := fmt.Sprintf("sensor-%02d", w)
			for i := w; i < b.N; i += writers {
				if _, err := q.Enqueue(context.Background(), store.Message{Route: telemetry.Name, Topic: "building/" + dev + "/temp",
					Payload: payload, QoS: 1, Device: dev, Time: time.Now().UnixNano()}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	awaitAcked(b, br, "")
	u1 := selfUsage(b)
	stopAndReport(b, br, time.Since(start), cancel, done)
	reportUsage(b, u0, u1)
}

// selfUsage is this process's resource usage so far (the bridge and its
// queue; the upstream is another process).
func selfUsage(b *testing.B) syscall.Rusage {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		b.Fatal(err)
	}
	return u
}

// reportUsage reports the process's CPU time (user + system) and context
// switches (voluntary + involuntary) per message between u0 and u1.
func reportUsage(b *testing.B, u0, u1 syscall.Rusage) {
	cpu := time.Duration(u1.Utime.Nano() + u1.Stime.Nano() - u0.Utime.Nano() - u0.Stime.Nano())
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/msg")
	b.ReportMetric(float64(u1.Nvcsw+u1.Nivcsw-u0.Nvcsw-u0.Nivcsw)/float64(b.N), "ctxsw/msg")
}
