package store

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkEnqueue: 100-byte payloads, every Enqueue returns after the fsync
// of its batch; writers concurrent callers share the syncs.
func BenchmarkEnqueue(b *testing.B) {
	for _, writers := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			q := openT(b, Options{Dir: filepath.Join(b.TempDir(), "q"), Routes: []RouteLimits{{Name: "telemetry"}}})
			payload := make([]byte, 100)
			var left atomic.Int64
			left.Store(int64(b.N))
			b.ReportAllocs()
			b.SetBytes(100)
			b.ResetTimer()
			var wg sync.WaitGroup
			for range writers {
				wg.Go(func() {
					m := Message{Route: "telemetry", Topic: "building/f1/temp", Payload: payload, QoS: 1, Device: "temp-f01-001"}
					for left.Add(-1) >= 0 {
						if _, err := q.Enqueue(context.Background(), m); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "enq/s")
		})
	}
}

// BenchmarkDrain: Next+Ack throughput over a pre-filled queue.
func BenchmarkDrain(b *testing.B) {
	q := openT(b, Options{Dir: filepath.Join(b.TempDir(), "q")})
	payload := make([]byte, 100)
	var wg sync.WaitGroup
	var left atomic.Int64
	left.Store(int64(b.N))
	for range 64 {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				if _, err := q.Enqueue(context.Background(), Message{Route: "telemetry", Topic: "building/f1/temp", Payload: payload, QoS: 1}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		m, err := q.Next(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if err := q.Ack(m.Seq); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
}
