package observe

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/edgegw/edgegw/bridge"
	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/gateway/broker"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/store"
)

// fakeBroker is a Broker with set counters and no listeners bound.
type fakeBroker struct {
	m                  broker.Metrics
	listeners, clients int
	devs               []broker.ConnectedDevice
}

func (f *fakeBroker) Metrics() *broker.Metrics          { return &f.m }
func (f *fakeBroker) Clients() int                      { return f.clients }
func (f *fakeBroker) Listeners() int                    { return f.listeners }
func (f *fakeBroker) Devices() []broker.ConnectedDevice { return f.devs }
func (f *fakeBroker) Addr(string) net.Addr              { return nil }

type fakeQueue struct{ s store.Stats }

func (f *fakeQueue) Stats() store.Stats { return f.s }

type fakeBridge struct{ s bridge.State }

func (f *fakeBridge) State() bridge.State { return f.s }

// gather collects the observer's metrics as "name{l=v,...}" -> value.
func gather(t *testing.T, o *Observer) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := reg.Register(&collector{o: o}); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, lp := range m.GetLabel() {
				ls = append(ls, lp.GetName()+"="+lp.GetValue())
			}
			key := mf.GetName()
			if len(ls) > 0 {
				key += "{" + strings.Join(ls, ",") + "}"
			}
			out[key] = value(m)
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	}
	return -1
}

func testObserver(t *testing.T, cfg *config.Config) *Observer {
	t.Helper()
	return New(cfg, nil)
}

func TestCollectorFromSources(t *testing.T) {
	o := testObserver(t, &config.Config{Site: "t"})
	fb := &fakeBroker{listeners: 2, clients: 3}
	for _, c := range []struct {
		n *atomic.Int64
		v int64
	}{{&fb.m.ConnectsAccepted, 7}, {&fb.m.DeniedPublish, 4}, {&fb.m.DeniedReceive, 1}, {&fb.m.DroppedQoS0, 9}, {&fb.m.Enqueued, 5},
		{&fb.m.DroppedQoS1, 2}, {&fb.m.InflightDropped, 1}, {&fb.m.EnqueueFailures, 3}, {&fb.m.PendingRejected, 4},
		{&fb.m.ConnectsRefused, 11}, {&fb.m.PendingHandshakes, 2}, {&fb.m.PipelineFull, 13}, {&fb.m.RetainedRejected, 14},
		{&fb.m.PolicyDisconnects, 15}, {&fb.m.SubscriptionsDropped, 16}, {&fb.m.Reloads, 17}} {
		c.n.Store(c.v)
	}
	o.broker = fb
	o.queue = &fakeQueue{s: store.Stats{RejectedFull: 2, Routes: []store.RouteStats{{
		Name: "telemetry", Depth: 12, Bytes: 3400, OldestAge: 90 * time.Second, Enqueued: 20, Acked: 8,
		Rejected: 1, Drops: map[string]uint64{store.ReasonMaxAge: 3}, DeadLetters: 0, DeadLettered: 1,
	}}}}
	o.bridge = &fakeBridge{s: bridge.State{Connected: true, Reconnects: 2, InboundDelivered: 6}}
	o.Record(audit.Event{Event: audit.EventHandshakeFailed, Reason: "tls: certificate signed by unknown authority", Cause: audit.CauseUnknownCA})
	o.Record(audit.Event{Event: audit.EventConnectRefused, Reason: "iot:Connect client/x not allowed: default deny", Cause: audit.CauseNotAuthorized})
	o.Record(audit.Event{Event: audit.EventConnectRefused, Reason: "a refusal with no cause"})
	o.Record(audit.Event{Event: audit.EventReloadFailed, Reason: "SIGHUP: policy.json:3: bad"})

	got := gather(t, o)
	for key, want := range map[string]float64{
		"edgegw_connections":                                                  3,
		"edgegw_connects_total":                                               7,
		"edgegw_denials_total{action=publish}":                                4,
		"edgegw_denials_total{action=receive}":                                1,
		"edgegw_denials_total{action=connect}":                                0,
		"edgegw_qos0_drops_total":                                             9,
		"edgegw_qos1_drops_total":                                             3,
		"edgegw_enqueue_failures_total":                                       3,
		"edgegw_handshakes_rejected_total":                                    4,
		"edgegw_connects_refused_total":                                       11,
		"edgegw_handshakes_pending":                                           2,
		"edgegw_pipeline_full_total":                                          13,
		"edgegw_retained_rejected_total":                                      14,
		"edgegw_policy_disconnects_total":                                     15,
		"edgegw_subscriptions_dropped_total":                                  16,
		"edgegw_reloads_total":                                                17,
		"edgegw_auth_failures_total{reason=unknown_thing}":                    1,
		"edgegw_auth_failures_total{reason=unknown_ca}":                       1,
		"edgegw_auth_failures_total{reason=not_authorized}":                   1,
		"edgegw_auth_failures_total{reason=revoked}":                          0,
		"edgegw_messages_in_total{route=telemetry}":                           20,
		"edgegw_messages_out_total{route=telemetry}":                          8,
		"edgegw_queue_depth{route=telemetry}":                                 12,
		"edgegw_queue_bytes{route=telemetry}":                                 3400,
		"edgegw_queue_oldest_age_seconds{route=telemetry}":                    90,
		"edgegw_drops_total{reason=max-age,route=telemetry}":                  3,
		"edgegw_drops_total{reason=rejected,route=telemetry}":                 1,
		"edgegw_dead_letters_total{route=telemetry}":                          1,
		"edgegw_queue_rejected_full_total":                                    2,
		"edgegw_upstream_connected":                                           1,
		"edgegw_upstream_reconnects_total":                                    2,
		"edgegw_inbound_messages_total{result=delivered}":                     6,
		"edgegw_reload_success":                                               0,
		"edgegw_tpm_in_use":                                                   0,
		"edgegw_clock_sane":                                                   1,
		"edgegw_build_info{commit=dev,goversion=" + goVer() + ",version=dev}": 1,
	} {
		if v, ok := got[key]; !ok {
			t.Errorf("%s missing", key)
		} else if v != want {
			t.Errorf("%s = %v; want %v", key, v, want)
		}
	}
	if got["edgegw_reload_last_timestamp_seconds"] <= 0 {
		t.Errorf("reload_last_timestamp_seconds = %v; want the time of the failed reload", got["edgegw_reload_last_timestamp_seconds"])
	}
}

func goVer() string { return runtime.Version() }

func TestCollectorWithoutQueueOrBridge(t *testing.T) {
	o := testObserver(t, &config.Config{Site: "t"})
	o.broker = &fakeBroker{listeners: 1}
	got := gather(t, o)
	for key := range got {
		if strings.Contains(key, "upstream_") || strings.Contains(key, "queue_depth") {
			t.Errorf("%s exported without a bridge/queue", key)
		}
	}
	if got["edgegw_reload_success"] != 1 {
		t.Errorf("reload_success before any reload = %v; want 1", got["edgegw_reload_success"])
	}
}

func TestRecentDenialsRing(t *testing.T) {
	o := testObserver(t, &config.Config{})
	for i := range maxRecentDenials + 7 {
		o.Record(audit.Event{Event: audit.EventDeny, Device: fmt.Sprint("d", i), Action: "publish"})
	}
	got := o.recentDenials()
	if len(got) != maxRecentDenials {
		t.Fatalf("got %d denials; want %d", len(got), maxRecentDenials)
	}
	if got[0].Device != fmt.Sprint("d", maxRecentDenials+6) || got[len(got)-1].Device != "d7" {
		t.Errorf("ring order: newest %s, oldest %s; want d%d, d7", got[0].Device, got[len(got)-1].Device, maxRecentDenials+6)
	}
}

func TestHealthStates(t *testing.T) {
	o := testObserver(t, &config.Config{})
	if h := o.health(); h.Status != "unavailable" {
		t.Errorf("no broker: %+v; want unavailable", h)
	}
	o.broker = &fakeBroker{listeners: 1}
	o.queue = &fakeQueue{}
	o.bridge = &fakeBridge{}
	if h := o.health(); h != (Health{Status: "ok", Listeners: 1, Queue: "open", Upstream: "down"}) {
		t.Errorf("running, upstream down: %+v", h)
	}
	o.Stop()
	if h := o.health(); h.Status != "unavailable" || h.Queue != "closed" {
		t.Errorf("stopped: %+v; want unavailable, queue closed", h)
	}
}

// failingQueue is a queue that reports a runtime failure (queueFailer).
type failingQueue struct {
	fakeQueue
	err error
}

func (f *failingQueue) Err() error { return f.err }

// TestHealthQueueFailure: a queue that fails while the gateway runs makes
// /healthz answer 503 with queue "failed" and the reason, and the watchdog
// probe (healthy) return an error; a queue that works stays 200.
func TestHealthQueueFailure(t *testing.T) {
	writeErr := errors.New("writing to queue: input/output error")
	for _, tc := range []struct {
		name       string
		queue      Queue
		bridgeErr  error // recorded as the bridge stopping on a queue error
		wantCode   int
		wantQueue  string
		wantError  string
		wantHealth bool
	}{
		{"open", &failingQueue{}, nil, http.StatusOK, "open", "", true},
		{"store reports failure", &failingQueue{err: writeErr}, nil, http.StatusServiceUnavailable, "failed", writeErr.Error(), false},
		{"bridge stopped on queue error", &fakeQueue{}, fmt.Errorf("bridge: reading the queue: %w", store.ErrClosed), http.StatusServiceUnavailable, "failed", "bridge: reading the queue: queue closed", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testObserver(t, &config.Config{})
			o.broker = &fakeBroker{listeners: 1}
			o.queue = tc.queue
			o.QueueFailed(tc.bridgeErr)
			rec := httptest.NewRecorder()
			o.serveHealth(rec, httptest.NewRequest("GET", "/healthz", nil))
			var h Health
			if err := json.Unmarshal(rec.Body.Bytes(), &h); err != nil {
				t.Fatalf("body %q: %v", rec.Body.String(), err)
			}
			if rec.Code != tc.wantCode || h.Queue != tc.wantQueue || h.Error != tc.wantError {
				t.Errorf("got %d %+v; want %d, queue %q, error %q", rec.Code, h, tc.wantCode, tc.wantQueue, tc.wantError)
			}
			if err := o.Healthy(); (err == nil) != tc.wantHealth {
				t.Errorf("healthy() = %v; want healthy %v", err, tc.wantHealth)
			}
		})
	}
}
