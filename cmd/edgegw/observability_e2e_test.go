package main

// The shipped Grafana dashboard and Prometheus alert rules against a live
// daemon (issue 20): the real `edgegw run` bridged to Debian's mosquitto
// with a sensor connected; its /metrics passes `promtool check metrics`,
// the rules pass `promtool check rules`, and every metric the dashboard and
// the rules name is in the scrape. Then logrotate's move and SIGHUP: the
// audit file is reopened (0640), and the sensor's disconnect line, with its
// reason, duration and the site, is in the new file.

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

const (
	dashboardFile = "../../packaging/grafana/edgegw.json"
	alertsFile    = "../../packaging/prometheus/edgegw-alerts.yml"
)

// metricNames are the metric families an expression names (histogram
// series such as _bucket named as exported; "up" is Prometheus's own).
var metricName = regexp.MustCompile(`\b(?:edgegw|process|go)_[a-z0-9_]+\b`)

func metricNames(expr string) []string {
	return metricName.FindAllString(expr, -1)
}

func dashboardExprs(t *testing.T) (titles, exprs []string) {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	for _, p := range d.Panels {
		titles = append(titles, p.Title)
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	return titles, exprs
}

func alertExprs(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if e, ok := strings.CutPrefix(strings.TrimSpace(l), "expr: "); ok {
			out = append(out, e)
		}
	}
	return out
}

func TestObservabilityE2EDashboardAndRules(t *testing.T) {
	promtool := gatewaytest.Need(t, "promtool", "prometheus")
	if out, err := gatewaytest.Run(t, 30*time.Second, promtool, "check", "rules", alertsFile); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	} else {
		t.Logf("promtool check rules %s:\n%s", filepath.Base(alertsFile), out)
	}

	up := gatewaytest.NewUpstream(t, cmdUpstream)
	site, dir, lan, metrics, conf := oneSensorSite(t)
	gatewaytest.WriteFile(t, conf, fmt.Appendf(nil, `version: 1
site: plant-7
state_dir: %[1]s/state
listeners:
  - name: lan
    address: %[2]q
    tls: {ca: %[3]s, cert: %[4]s, key: "file:%[5]s", crl: %[6]s}
devices: devices.yaml
policies: policies/
store: {dir: %[1]s/state/queue, min_free: 16MiB, max_bytes: 64MiB}
metrics: {address: %[7]q}
admin: {socket: ""}
audit: {file: %[1]s/audit.log}
bridge:
  upstreams: [{url: "mqtts://%[8]s"}]
  client_id: plant-7-gw
  tls: {ca: %[9]s, cert: %[10]s, key: "file:%[11]s"}
  keepalive: 5s
  connect_timeout: 3s
  backoff: {min: 100ms, max: 500ms}
  routes:
    - {name: telemetry, topic: "sensors/#", direction: out, qos: 1, remote_prefix: "sites/plant-7/", max_bytes: 8MiB, max_messages: 10000}
    - {name: commands, topic: "cmd/#", direction: in, qos: 1, remote_prefix: "sites/plant-7/"}
`, dir, lan, site.CAFile, site.ServerCert, site.ServerKey, site.CRLFile, metrics,
		up.Addr, up.PKI.CAFile, up.Gateway.CertFile, up.Gateway.KeyFile), 0o644)

	daemon, exited, log := runDaemon(t, conf)
	for i := 0; ; i++ {
		code, h := health(metrics)
		if code == 200 && h.Upstream == "connected" {
			break
		}
		select {
		case <-exited:
			t.Fatalf("edgegw run exited at start")
		default:
		}
		if i == 1500 {
			t.Fatalf("no healthy gateway with the upstream connected after 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A sensor stays connected (device certificate series) and publishes once.
	sconn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", lan, site.ClientTLS(site.Issue(t, "sensor-1")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sconn.Close() })
	sensor := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(sconn)})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := sensor.Connect(ctx, &paho.Connect{ClientID: "sensor-1", KeepAlive: 30, CleanStart: true}); err != nil {
		t.Fatalf("sensor connect: %v", err)
	}
	if _, err := sensor.Publish(ctx, &paho.Publish{Topic: "sensors/sensor-1/t", QoS: 1, Payload: []byte("21.5")}); err != nil {
		t.Fatalf("publish: %v", err)
	}

	body := scrape(t, metrics)
	check := exec.Command(promtool, "check", "metrics")
	check.Stdin = strings.NewReader(body)
	out, err := check.CombinedOutput()
	if err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	} else {
		t.Logf("promtool check metrics: OK %s", out)
	}

	present := map[string]bool{}
	for _, l := range strings.Split(body, "\n") {
		if l == "" || l[0] == '#' {
			continue
		}
		name, _, _ := strings.Cut(l, " ")
		name, _, _ = strings.Cut(name, "{")
		present[name] = true
	}
	titles, exprs := dashboardExprs(t)
	t.Logf("dashboard panels: %s", strings.Join(titles, "; "))
	for _, src := range []struct {
		what  string
		exprs []string
	}{{"dashboard", exprs}, {"alert rules", alertExprs(t)}} {
		var missing []string
		for _, e := range src.exprs {
			for _, m := range metricNames(e) {
				if !present[m] && !slices.Contains(missing, m) {
					missing = append(missing, m)
				}
			}
		}
		if len(missing) > 0 {
			t.Errorf("%s name metrics the live daemon does not export: %v", src.what, missing)
		}
	}
	// What the issue found missing, by name.
	for _, name := range []string{"process_resident_memory_bytes", "go_goroutines", "edgegw_mqtt_messages_received_total",
		"edgegw_mqtt_sent_bytes_total", "edgegw_store_free_bytes", "edgegw_store_capacity_bytes", "edgegw_route_capacity_bytes",
		"edgegw_upstream_active", "edgegw_crl_next_update_timestamp_seconds", "edgegw_store_fsync_duration_seconds_bucket",
		"edgegw_device_cert_earliest_not_after_timestamp_seconds", "edgegw_device_certs_expiring", "edgegw_cert_not_after_timestamp_seconds"} {
		if !present[name] {
			t.Errorf("no %s in the scrape", name)
		}
	}
	now := float64(time.Now().Unix())
	if v := sample(body, "edgegw_device_certs_expiring"); v != 1 {
		t.Errorf("edgegw_device_certs_expiring = %v; want 1 (the sensor's test certificate lives 24h)", v)
	}
	if v := sample(body, "edgegw_device_cert_earliest_not_after_timestamp_seconds"); v < now || v > now+1.1*86400 {
		t.Errorf("edgegw_device_cert_earliest_not_after_timestamp_seconds = %v; want within a day from now (%v)", v, now)
	}
	if v := sample(body, `edgegw_crl_next_update_timestamp_seconds{listener="lan"}`); v < now {
		t.Errorf("edgegw_crl_next_update_timestamp_seconds = %v; want after now (%v)", v, now)
	}
	if v := sample(body, "edgegw_store_capacity_bytes"); v != 64<<20 {
		t.Errorf("edgegw_store_capacity_bytes = %v; want %d (store.max_bytes)", v, 64<<20)
	}
	if v := sample(body, `edgegw_route_capacity_messages{route="telemetry"}`); v != 10000 {
		t.Errorf(`edgegw_route_capacity_messages{route="telemetry"} = %v; want 10000`, v)
	}
	if present["edgegw_cert_expiry_days"] {
		t.Errorf("edgegw_cert_expiry_days still exported; want seconds (promtool)")
	}
	// The series operators alert on exist before the first event.
	for _, series := range []string{
		`edgegw_drops_total{reason="overflow-bytes",route="telemetry"}`,
		`edgegw_drops_total{reason="max-age",route="telemetry"}`,
		`edgegw_reload_failures_total`,
		`edgegw_config_restart_required`,
		`edgegw_mqtt_messages_received_total{listener="lan",qos="1"}`,
		`edgegw_listener_connections{listener="lan"}`,
		`edgegw_route_inbound_messages_total{result="delivered",route="commands"}`,
		`edgegw_route_inbound_messages_total{result="dropped",route="commands"}`,
	} {
		if sample(body, series) < 0 {
			t.Errorf("no %s in the scrape", series)
		}
	}
	// The sensor's QoS 1 publish was acknowledged after its commit's fsync:
	// the latency histogram the dashboard and the alert read has a sample.
	if v := sample(body, "edgegw_store_fsync_duration_seconds_count"); v < 1 {
		t.Errorf("edgegw_store_fsync_duration_seconds_count = %v after a QoS 1 publish; want >= 1", v)
	}
	if v := sample(body, `edgegw_store_fsync_duration_seconds_bucket{le="+Inf"}`); v < 1 {
		t.Errorf(`edgegw_store_fsync_duration_seconds_bucket{le="+Inf"} = %v after a QoS 1 publish; want >= 1`, v)
	}
	if v := sample(body, `edgegw_mqtt_messages_received_total{listener="lan",qos="1"}`); v != 1 {
		t.Errorf(`edgegw_mqtt_messages_received_total{listener="lan",qos="1"} = %v; want 1`, v)
	}

	// logrotate: the audit file is moved away and the daemon gets SIGHUP;
	// the next lines (the sensor's disconnect) go to a new 0640 file.
	audit := filepath.Join(dir, "audit.log")
	if err := os.Rename(audit, audit+".1"); err != nil {
		t.Fatal(err)
	}
	if err := daemon.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for i := 0; sample(scrape(t, metrics), "edgegw_reloads_total") < 1; i++ {
		if i == 500 {
			t.Fatal("no reload 10s after SIGHUP")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if v := sample(scrape(t, metrics), "edgegw_reload_success"); v != 1 {
		t.Errorf("edgegw_reload_success = %v after a good SIGHUP; want 1", v)
	}
	_ = sensor.Disconnect(&paho.Disconnect{})
	var lines string
	for i := 0; !strings.Contains(lines, `"event":"disconnect"`); i++ {
		if i == 500 {
			t.Fatalf("no disconnect line in the new audit file after 10s: %q", lines)
		}
		time.Sleep(20 * time.Millisecond)
		b, _ := os.ReadFile(audit)
		lines = string(b)
	}
	for _, f := range []string{audit, audit + ".1"} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o640 {
			t.Errorf("%s: mode %v; want 0640", filepath.Base(f), fi.Mode().Perm())
		}
	}
	old, _ := os.ReadFile(audit + ".1")
	for _, c := range []struct{ file, text, want string }{
		{"audit.log.1", string(old), `"event":"connect","device":"sensor-1"`},
		{"audit.log", lines, `"event":"disconnect","device":"sensor-1"`},
		{"audit.log", lines, `"reason":"client disconnected"`},
		{"audit.log", lines, `"duration_seconds":`},
		{"audit.log", lines, `"site":"plant-7"`},
	} {
		if !strings.Contains(c.text, c.want) {
			t.Errorf("%s lacks %s:\n%s", c.file, c.want, c.text)
		}
	}
	if strings.Contains(log.String(), "msg=audit") {
		t.Errorf("audit lines in the daemon's log too; want them once, in the file (audit.journal is false)")
	}
}
