package gateway

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/edgegw/edgegw/bridge"
	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/gateway/broker"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/gatewaytest"
	"github.com/edgegw/edgegw/store"
)

type fakeBroker struct {
	s    broker.Stats
	devs []broker.ConnectedDevice
}

func (f *fakeBroker) Stats() broker.Stats               { return f.s }
func (f *fakeBroker) Devices() []broker.ConnectedDevice { return f.devs }

type fakeQueue struct{ s store.Stats }

func (f *fakeQueue) Stats() store.Stats { return f.s }

type fakeBridge struct{ s bridge.State }

func (f *fakeBridge) State() bridge.State { return f.s }

// gather collects the observer's metrics as "name{l=v,...}" -> value.
func gather(t *testing.T, o *observer) map[string]float64 {
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

func testObserver(t *testing.T, cfg *config.Config) *observer {
	g, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return g.newObserver()
}

func TestCollectorFromSources(t *testing.T) {
	o := testObserver(t, &config.Config{Site: "t"})
	o.broker = &fakeBroker{s: broker.Stats{Listeners: 2, Connections: 3, ConnectsAccepted: 7, DeniedPublish: 4, DeniedReceive: 1, DroppedQoS0: 9, Enqueued: 5}}
	o.queue = &fakeQueue{s: store.Stats{RejectedFull: 2, Routes: []store.RouteStats{{
		Name: "telemetry", Depth: 12, Bytes: 3400, OldestAge: 90 * time.Second, Enqueued: 20, Acked: 8,
		Rejected: 1, Drops: map[string]uint64{store.ReasonMaxAge: 3}, DeadLetters: 0, DeadLettered: 1,
	}}}}
	o.bridge = &fakeBridge{s: bridge.State{Connected: true, Reconnects: 2, InboundDelivered: 6}}
	o.record(audit.Event{Event: audit.EventHandshakeFailed, Reason: "tls: certificate signed by unknown authority"})
	o.record(audit.Event{Event: audit.EventConnectRefused, Reason: "iot:Connect client/x not allowed: default deny"})
	o.record(audit.Event{Event: audit.EventReloadFailed, Reason: "SIGHUP: policy.json:3: bad"})

	got := gather(t, o)
	for key, want := range map[string]float64{
		"edgegw_connections":                                                  3,
		"edgegw_connects_total":                                               7,
		"edgegw_denials_total{action=publish}":                                4,
		"edgegw_denials_total{action=receive}":                                1,
		"edgegw_denials_total{action=connect}":                                0,
		"edgegw_qos0_drops_total":                                             9,
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
	o.broker = &fakeBroker{s: broker.Stats{Listeners: 1}}
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

func TestClassifyAuthFailure(t *testing.T) {
	for _, tc := range []struct {
		event, reason, want string
	}{
		{audit.EventHandshakeFailed, "tls: client didn't provide a certificate", "no_certificate"},
		{audit.EventHandshakeFailed, "tls: failed to verify certificate: x509: certificate signed by unknown authority", "unknown_ca"},
		{audit.EventHandshakeFailed, "tls: failed to verify certificate: x509: certificate has expired or is not yet valid", "expired"},
		{audit.EventHandshakeFailed, "client certificate serial 5: certificate revoked", "revoked"},
		{audit.EventHandshakeFailed, "read tcp 127.0.0.1:8883->127.0.0.1:5: i/o timeout", "handshake_timeout"},
		{audit.EventHandshakeFailed, "tls: first record does not look like a TLS handshake", "tls"},
		{audit.EventConnectRefused, "bad user name or password", "bad_password"},
		{audit.EventConnectRefused, "iot:Connect client/x not allowed: default deny", "not_authorized"},
		{audit.EventConnectRefused, "no longer trusted: x509: certificate signed by unknown authority", "unknown_ca"},
		{audit.EventConnectRefused, `thing "ghost" is not in the registry`, "unknown_thing"},
	} {
		if got := classifyAuthFailure(audit.Event{Event: tc.event, Reason: tc.reason}); got != tc.want {
			t.Errorf("%s %q: got %s; want %s", tc.event, tc.reason, got, tc.want)
		}
	}
}

func TestRecentDenialsRing(t *testing.T) {
	o := testObserver(t, &config.Config{})
	for i := range maxRecentDenials + 7 {
		o.record(audit.Event{Event: audit.EventDeny, Device: fmt.Sprint("d", i), Action: "publish"})
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
	o.broker = &fakeBroker{s: broker.Stats{Listeners: 1}}
	o.queue = &fakeQueue{}
	o.bridge = &fakeBridge{}
	if h := o.health(); h != (Health{Status: "ok", Listeners: 1, Queue: "open", Upstream: "down"}) {
		t.Errorf("running, upstream down: %+v", h)
	}
	o.stop()
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
		queue      queueSource
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
			o.broker = &fakeBroker{s: broker.Stats{Listeners: 1}}
			o.queue = tc.queue
			o.queueFailed(tc.bridgeErr)
			rec := httptest.NewRecorder()
			o.serveHealth(rec, httptest.NewRequest("GET", "/healthz", nil))
			var h Health
			if err := json.Unmarshal(rec.Body.Bytes(), &h); err != nil {
				t.Fatalf("body %q: %v", rec.Body.String(), err)
			}
			if rec.Code != tc.wantCode || h.Queue != tc.wantQueue || h.Error != tc.wantError {
				t.Errorf("got %d %+v; want %d, queue %q, error %q", rec.Code, h, tc.wantCode, tc.wantQueue, tc.wantError)
			}
			if err := o.healthy(); (err == nil) != tc.wantHealth {
				t.Errorf("healthy() = %v; want healthy %v", err, tc.wantHealth)
			}
		})
	}
}

// obsEnv is a Gateway run from a config file with metrics and the admin socket.
type obsEnv struct {
	pki     *gatewaytest.PKI
	dir     string
	lan     string
	metrics string
	socket  string
	done    chan error
	cancel  context.CancelFunc
}

func startObsGateway(t *testing.T) *obsEnv {
	t.Helper()
	e := &obsEnv{pki: gatewaytest.NewPKI(t, "site"), dir: t.TempDir(), done: make(chan error, 1)}
	gatewaytest.WriteSite(t, e.dir)
	e.lan, e.metrics = gatewaytest.FreeAddr(t), gatewaytest.FreeAddr(t)
	sockDir, err := os.MkdirTemp("", "egw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	e.socket = filepath.Join(sockDir, "admin.sock")
	cfgFile := filepath.Join(e.dir, "edgegw.yaml")
	gatewaytest.WriteFile(t, cfgFile, fmt.Appendf(nil, `version: 1
site: obs-test
state_dir: %[1]s/state
listeners:
  - name: lan
    address: "%[2]s"
    tls: {ca: %[3]s, cert: %[4]s, key: "file:%[5]s", crl: %[6]s}
devices: devices.yaml
policies: policies
store: {dir: %[1]s/queue}
metrics: {address: "%[7]s"}
admin: {socket: %[8]s}
audit: {file: ""}
`, e.dir, e.lan, e.pki.CAFile, e.pki.ServerCert, e.pki.ServerKey, e.pki.CRLFile, e.metrics, e.socket), 0o644)
	g := newFromFile(t, cfgFile)
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go func() { e.done <- g.Run(ctx) }()
	t.Cleanup(func() { e.stop(t) })
	for i := 0; ; i++ {
		var h Health
		err := AdminGet(context.Background(), e.socket, "/healthz", &h)
		if err == nil && h.Status == "ok" {
			break
		}
		select {
		case err := <-e.done:
			e.cancel, e.done = nil, nil
			cancel()
			t.Fatalf("gateway stopped: %v", err)
		default:
		}
		if i > 500 {
			t.Fatalf("gateway not healthy after 500 tries: %v %+v", err, h)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return e
}

func (e *obsEnv) stop(t *testing.T) {
	if e.cancel == nil {
		return
	}
	e.cancel()
	e.cancel = nil
	select {
	case err := <-e.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("gateway did not stop within 30s")
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metricValue finds one sample line "name{labels} value" in a scrape.
func metricValue(scrape, series string) (string, bool) {
	for _, l := range strings.Split(scrape, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			return v, true
		}
	}
	return "", false
}

func TestObservabilityEndToEnd(t *testing.T) {
	e := startObsGateway(t)

	code, body := httpGet(t, "http://"+e.metrics+"/healthz")
	var h Health
	if err := json.Unmarshal([]byte(body), &h); err != nil || code != 200 {
		t.Fatalf("/healthz: %d %q (%v)", code, body, err)
	}
	if h != (Health{Status: "ok", Listeners: 1, Queue: "none", Upstream: "none"}) {
		t.Errorf("/healthz = %+v", h)
	}

	// A sensor connects and publishes to its neighbour's topic: denied.
	sensor := e.pki.Issue(t, "sensor-a")
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", e.lan, e.pki.ClientTLS(sensor))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c, err := gatewaytest.ConnectV5(t, conn, "sensor-a")
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	if rc, _ := c.Publish(t, "sensors/sensor-b/temp", 1, false, "21.5"); rc != 0x87 {
		t.Errorf("publish to the neighbour's topic: reason 0x%02x; want 0x87", rc)
	}
	// A device of another CA fails the handshake (Go's client sends no
	// certificate when none matches the server's acceptable CAs).
	other := gatewaytest.NewPKI(t, "elsewhere")
	if c2, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", e.lan, e.pki.ClientTLS(other.Issue(t, "sensor-b"))); err == nil {
		_ = c2.Handshake()
		_, _ = c2.Read(make([]byte, 1)) // TLS 1.3: the alert arrives after the handshake
		c2.Close()
	}

	// /metrics shows all of it. Audit taps are synchronous with the refusal,
	// but the handshake failure is recorded on the server side after the
	// client saw the alert: poll the scrape (bounded) until it shows up.
	var scrape string
	for i := 0; i < 200; i++ {
		_, scrape = httpGet(t, "http://"+e.metrics+"/metrics")
		if v, _ := metricValue(scrape, `edgegw_auth_failures_total{reason="no_certificate"}`); v == "1" {
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	for series, want := range map[string]string{
		`edgegw_connections`:                                  "1",
		`edgegw_connects_total`:                               "1",
		`edgegw_denials_total{action="publish"}`:              "1",
		`edgegw_auth_failures_total{reason="no_certificate"}`: "1",
		`edgegw_reload_success`:                               "1",
		`edgegw_tpm_in_use`:                                   "0",
	} {
		if got, ok := metricValue(scrape, series); !ok || got != want {
			t.Errorf("%s = %q (present %v); want %s\n%s", series, got, ok, want, grepLines(scrape, "auth_failures"))
		}
	}
	for _, series := range []string{`edgegw_cert_expiry_days{cert="server"}`, `edgegw_cert_expiry_days{cert="ca"}`} {
		v, ok := metricValue(scrape, series)
		var days float64
		if _, err := fmt.Sscan(v, &days); !ok || err != nil || days < 0.9 || days > 1.01 {
			t.Errorf("%s = %q; want about 1 day (test certificates live 24h)", series, v)
		}
	}
	if !strings.Contains(scrape, `edgegw_build_info{commit=`) {
		t.Errorf("no build_info in the scrape")
	}
	if strings.Contains(scrape, "go_goroutines") {
		t.Errorf("scrape has the global registry's go_* metrics; want a private registry")
	}

	// The admin socket: 0660, /status with the device and the denial.
	fi, err := os.Stat(e.socket)
	if err != nil || fi.Mode().Perm() != 0o660 || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("admin socket: %v mode %v; want a socket with mode 0660", err, fi.Mode())
	}
	var st Status
	if err := AdminGet(context.Background(), e.socket, "/status", &st); err != nil {
		t.Fatalf("GET /status: %v", err)
	}
	if st.Site != "obs-test" || st.Devices.Count != 1 || st.Devices.Connected[0].Thing != "sensor-a" ||
		st.Devices.Connected[0].Since.IsZero() || st.Devices.Connected[0].Remote == "" {
		t.Errorf("status devices: site %q %+v", st.Site, st.Devices)
	}
	if len(st.Denials) != 1 || st.Denials[0].Resource != "topic/sensors/sensor-b/temp" || st.Denials[0].Device != "sensor-a" || st.Denials[0].Action != "iot:Publish" {
		t.Errorf("status denials: %+v", st.Denials)
	}
	if len(st.Listeners) != 1 || st.Listeners[0].Address != e.lan || !st.Listeners[0].TLS {
		t.Errorf("status listeners: %+v", st.Listeners)
	}
	if len(st.Certs) != 2 || st.Upstream != nil || st.Queue != nil || !st.Reload.OK {
		t.Errorf("status certs %+v upstream %+v queue %+v reload %+v", st.Certs, st.Upstream, st.Queue, st.Reload)
	}
	var qs store.Stats
	if err := AdminGet(context.Background(), e.socket, "/queue/stats", &qs); err == nil || !strings.Contains(err.Error(), "no queue") {
		t.Errorf("/queue/stats without a queue: %v; want a 404 saying there is no queue", err)
	}

	// A second daemon on the same socket is refused.
	if _, err := listenAdmin(e.socket); err == nil || !strings.Contains(err.Error(), "another edgegw answers") {
		t.Errorf("second listenAdmin: %v; want ErrDaemonRunning", err)
	}

	_ = c.C.Disconnect(&paho.Disconnect{})
	e.stop(t)
	if _, err := os.Lstat(e.socket); !os.IsNotExist(err) {
		t.Errorf("admin socket left after stop: %v", err)
	}
	if err := AdminGet(context.Background(), e.socket, "/status", &st); err == nil || !strings.Contains(err.Error(), "edgegw is not running") {
		t.Errorf("AdminGet after stop: %v; want ErrNotRunning", err)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
