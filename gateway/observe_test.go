package gateway

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/gatewaytest"
	"github.com/edgegw/edgegw/gateway/observe"
	"github.com/edgegw/edgegw/store"
)

// obsEnv is a Gateway run from a config file with metrics and the admin socket.
type obsEnv struct {
	pki     *gatewaytest.PKI
	dir     string
	lan     string
	metrics string
	socket  string
	conf    string
	g       *Gateway
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
	e.g, e.conf = g, cfgFile
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go func() { e.done <- g.Run(ctx) }()
	t.Cleanup(func() { e.stop(t) })
	for i := 0; ; i++ {
		var h observe.Health
		err := observe.AdminGet(context.Background(), e.socket, "/healthz", &h)
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
	var h observe.Health
	if err := json.Unmarshal([]byte(body), &h); err != nil || code != 200 {
		t.Fatalf("/healthz: %d %q (%v)", code, body, err)
	}
	if h != (observe.Health{Status: "ok", Listeners: 1, Queue: "none", Upstream: "none"}) {
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
	for _, series := range []string{`edgegw_cert_not_after_timestamp_seconds{cert="server"}`, `edgegw_cert_not_after_timestamp_seconds{cert="ca"}`} {
		v, ok := metricValue(scrape, series)
		var ts float64
		_, err := fmt.Sscan(v, &ts)
		days := (ts - float64(time.Now().Unix())) / 86400
		if !ok || err != nil || days < 0.9 || days > 1.01 {
			t.Errorf("%s = %q (%.2f days from now); want about 1 day (test certificates live 24h)", series, v, days)
		}
	}
	if !strings.Contains(scrape, `edgegw_build_info{commit=`) {
		t.Errorf("no build_info in the scrape")
	}
	for _, series := range []string{"go_goroutines", "process_resident_memory_bytes", "go_gc_duration_seconds_count"} {
		if !strings.Contains(scrape, "\n"+series+" ") {
			t.Errorf("scrape has no %s; want the Go and process collectors", series)
		}
	}

	// The admin socket: 0660, /status with the device and the denial.
	fi, err := os.Stat(e.socket)
	if err != nil || fi.Mode().Perm() != 0o660 || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("admin socket: %v mode %v; want a socket with mode 0660", err, fi.Mode())
	}
	var st observe.Status
	if err := observe.AdminGet(context.Background(), e.socket, "/status", &st); err != nil {
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
	if err := observe.AdminGet(context.Background(), e.socket, "/queue/stats", &qs); err == nil || !strings.Contains(err.Error(), "no queue") {
		t.Errorf("/queue/stats without a queue: %v; want a 404 saying there is no queue", err)
	}

	// A second daemon on the same socket is refused.
	second := observe.New(&config.Config{Admin: config.AdminConfig{Socket: e.socket}}, nil)
	if err := second.Start(observe.Sources{}); err == nil || !strings.Contains(err.Error(), "another edgegw answers") {
		second.Stop()
		t.Errorf("second admin socket: %v; want ErrDaemonRunning", err)
	}

	_ = c.C.Disconnect(&paho.Disconnect{})
	e.stop(t)
	if _, err := os.Lstat(e.socket); !os.IsNotExist(err) {
		t.Errorf("admin socket left after stop: %v", err)
	}
	if err := observe.AdminGet(context.Background(), e.socket, "/status", &st); err == nil || !strings.Contains(err.Error(), "edgegw is not running") {
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
