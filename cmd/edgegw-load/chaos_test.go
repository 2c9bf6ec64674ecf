package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync/atomic"
	"testing"
	"time"
)

// TestChaosHarness checks the chaos run's own parts against a real
// mosquitto, without a gateway: the proxy forwards, holds a path silent and
// resets it; the upstream keeps the sink's queued messages across a graceful
// restart; the sink counts them by (device, seq).
func TestChaosHarness(t *testing.T) {
	up, err := StartUpstream(t.TempDir())
	if err != nil {
		t.Fatalf("StartUpstream: %v", err)
	}
	t.Cleanup(func() { _ = up.Stop() })
	px, err := NewProxy(up.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	ledger := NewLedger()
	sink := &Sink{ledger: ledger}
	sctx, stopSink := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { sink.run(sctx, up.Addr, "sites/#"); close(done) }()
	if !waitFor(ctx, 10*time.Second, sink.up.Load) {
		t.Fatal("sink did not connect")
	}
	pub := func(seq uint64) (byte, error) {
		c, err := DialPlain(ctx, px.Addr(), ClientOptions{ClientID: fmt.Sprintf("pub-%d", seq), Version: 5, Clean: true})
		if err != nil {
			return 0, err
		}
		defer c.Close()
		now := time.Now().UnixNano()
		ledger.Sent("dev", seq, now)
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		code, err := c.Publish(pctx, "sites/hq/x", encodePayload("dev", seq, now, 0), 1, false)
		if err == nil {
			ledger.Acked("dev", seq, code)
		}
		return code, err
	}
	if _, err := pub(1); err != nil {
		t.Fatalf("publish through the proxy: %v", err)
	}
	if !waitFor(ctx, 5*time.Second, func() bool { return ledger.Report(0).Delivered == 1 }) {
		t.Fatalf("sink did not receive: %+v", ledger.Report(0))
	}

	// Sink away; a message is queued for its persistent session; the
	// upstream restarts gracefully; the sink comes back and receives it.
	stopSink()
	<-done
	if _, err := pub(2); err != nil {
		t.Fatalf("publish while the sink is away: %v", err)
	}
	time.Sleep(1500 * time.Millisecond) // autosave_interval 1
	if err := up.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	sctx, stopSink = context.WithCancel(ctx)
	defer stopSink()
	go sink.run(sctx, up.Addr, "sites/#")
	if !waitFor(ctx, 10*time.Second, func() bool { return ledger.Report(0).Delivered == 2 }) {
		t.Fatalf("message queued before the restart not delivered: %+v\n%s", ledger.Report(0), up.proc.Tail(2000))
	}

	// Silent path: connected, nothing forwarded; Resume resets it.
	c, err := DialPlain(ctx, px.Addr(), ClientOptions{ClientID: "held", Version: 5, Clean: true})
	if err != nil {
		t.Fatal(err)
	}
	px.Silence()
	pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
	_, err = c.Publish(pctx, "sites/hq/y", []byte("x 1 1"), 1, false)
	pcancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("publish on a silent path: %v; want no PUBACK (deadline exceeded)", err)
	}
	px.Resume()
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("held connection not reset by Resume")
	}
	if r := ledger.Report(0); !r.OK() || r.Lost != 0 {
		t.Errorf("ledger: %+v", r)
	}
}

// TestDropCounter: in-memory counters are banked before each kill (they
// restart at 0); persisted ones (the HELP line says so) are the total as
// read, and a reading below the one before a kill is a regression.
func TestDropCounter(t *testing.T) {
	for _, tc := range []struct {
		name      string
		help      string
		readings  []int64 // value served: before kill 1, after restart, ...
		wantTotal int64
		wantRegr  int
	}{
		{"in memory", "Messages dropped, by reason.", []int64{5, 3}, 8, 0},
		{"persisted", "Messages dropped, over the queue's lifetime (persisted: kept across restarts and kill -9).", []int64{5, 8}, 8, 0},
		{"persisted but reset", "Messages dropped (persisted).", []int64{5, 2}, 2, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				fmt.Fprintf(w, "# HELP edgegw_drops_total %s\n# TYPE edgegw_drops_total counter\n", tc.help)
				fmt.Fprintf(w, "edgegw_drops_total{reason=\"overflow-count\",route=\"telemetry\"} %d\n", v.Load())
				fmt.Fprintf(w, "edgegw_drops_total{reason=\"rejected\",route=\"telemetry\"} 100\n")
				fmt.Fprintf(w, "edgegw_queue_depth{route=\"telemetry\"} 7\n")
			}))
			defer srv.Close()
			d := &DropCounter{URL: srv.URL, Metric: regexp.MustCompile(`^edgegw_drops_total\{.*reason="overflow-count".*route="telemetry"`),
				Depth: regexp.MustCompile(`^edgegw_queue_depth\{.*route="telemetry"`)}
			v.Store(tc.readings[0])
			d.EndLifetime()
			v.Store(tc.readings[1])
			if got := d.Total(); got != tc.wantTotal {
				t.Errorf("total %d; want %d", got, tc.wantTotal)
			}
			if d.Regressed != tc.wantRegr {
				t.Errorf("regressions %d; want %d", d.Regressed, tc.wantRegr)
			}
			if d.depth != 7 {
				t.Errorf("depth %d; want 7", d.depth)
			}
		})
	}
}
