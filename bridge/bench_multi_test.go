package bridge

import (
	"context"
	"testing"
	"time"
)

// BenchmarkForwardBeside measures bridge A draining b.N queued messages to
// its Mosquitto: alone; beside bridge B draining the same messages (a route
// on both bridges) to a second Mosquitto; and beside B whose upstream is
// down (B reconnecting with backoff). Reports A's msgs/s. The last must
// match "alone": one bridge's outage does not slow another. "beside-up"
// shares the machine's cores with a second broker and bridge.
//
//	go test -run '^$' -bench BenchmarkForwardBeside -benchtime 20000x ./bridge
func BenchmarkForwardBeside(b *testing.B) {
	for _, mode := range []string{"alone", "beside-up", "beside-down"} {
		b.Run(mode, func(b *testing.B) {
			fill := func(q testQueue) { fillTelemetry(b, q) }
			start := func(m *mosquitto, q testQueue, name, clientID string) (*Bridge, func()) {
				cfg := testConfig(m, telemetry)
				cfg.Name, cfg.ClientID, cfg.Inflight = name, clientID, 1000
				br, err := New(cfg, q, newRecPublisher(), nil)
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- br.Run(ctx) }()
				return br, func() {
					cancel()
					if err := <-done; err != nil {
						b.Error(err)
					}
				}
			}
			mA := startMosquitto(b, mosquittoOpts{maxInflight: 1000})
			qA := newTestQueue(b)
			fill(qA)
			if mode != "alone" {
				mB := startMosquitto(b, mosquittoOpts{maxInflight: 1000})
				qB := newTestQueue(b)
				fill(qB)
				if mode == "beside-down" {
					mB.stop()
				}
				_, stopB := start(mB, qB, "b", "plant-7-gw-b")
				defer stopB()
			}
			b.ResetTimer()
			t0 := time.Now()
			brA, stopA := start(mA, qA, "a", "plant-7-gw-a")
			awaitAcked(b, brA, "A ")
			elapsed := time.Since(t0)
			b.StopTimer()
			stopA()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
		})
	}
}
