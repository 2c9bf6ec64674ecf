package gateway

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// TestGatewayRoutesAndReload runs a whole Gateway with a bridge section whose
// upstream is unreachable: out-route messages are queued before the PUBACK,
// in routes are not, and SIGHUP's Reload swaps routes live (store, bridge,
// matcher) while a change elsewhere in the bridge section needs a restart.
func TestGatewayRoutesAndReload(t *testing.T) {
	site := newSiteDir(t)
	pki, addr := site.pki, site.addr
	write := func(routes, keepalive string) {
		site.write(t, `bridge:
  upstreams: [{url: "mqtt://127.0.0.1:1"}]
  client_id: test-gw
  keepalive: %s
  backoff: {min: 1s, max: 1s}
  routes:
%s
`, keepalive, routes)
	}
	write(`    - {name: a, topic: "sensors/sensor-a/#", remote_prefix: "sites/t/"}
    - {name: cmd, topic: "cmd/#", direction: in}`, "30s")
	g := startFromFile(t, site.conf)
	a := connectSensorA(t, addr, pki)
	depth := func() map[string]int64 {
		out := map[string]int64{}
		for _, r := range g.Queue().Stats().Routes {
			out[r.Name] = r.Depth
		}
		return out
	}
	pub := func(topic string) { t.Helper(); mustPublish(t, a, topic) }
	pub("sensors/sensor-a/t")
	pub("sensors/sensor-a/u")
	if d := depth(); d["a"] != 2 || d["b"] != 0 {
		t.Fatalf("depth after 2 publishes on route a: %v", d)
	}
	if g.Bridge() == nil || g.Bridge().State().Connected {
		t.Fatalf("bridge state %+v; want a bridge, not connected", g.Bridge())
	}

	// Add route b live.
	write(`    - {name: a, topic: "sensors/sensor-a/#", remote_prefix: "sites/t/"}
    - {name: b, topic: "sensors/sensor-a/b/#", priority: 5, max_messages: 1}
    - {name: cmd, topic: "cmd/#", direction: in}`, "30s")
	if err := g.Reload(); err != nil {
		t.Fatalf("Reload with new routes: %v", err)
	}
	pub("sensors/sensor-a/b/1")
	if d := depth(); d["a"] != 3 || d["b"] != 1 {
		t.Fatalf("depth after the reload: %v; want a:3 b:1", d)
	}
	if rs := g.Bridge().Routes().All(); len(rs) != 3 {
		t.Fatalf("bridge routes after reload: %+v", rs)
	}

	// A non-route change in the bridge section is not applied, routes neither.
	write(`    - {name: a, topic: "sensors/sensor-a/#", remote_prefix: "sites/t/"}`, "20s")
	if err := g.Reload(); !errors.Is(err, ErrRestartRequired) {
		t.Fatalf("Reload with a new keepalive: %v; want ErrRestartRequired", err)
	}
	if rs := g.Bridge().Routes().All(); len(rs) != 3 {
		t.Fatalf("routes changed by a refused reload: %+v", rs)
	}
}

// siteDir is a gateway's directory for the tests that run a whole Gateway
// from a file: the site files, a PKI, a free listener address and the
// config's path.
type siteDir struct {
	pki       *gatewaytest.PKI
	dir, addr string
	conf      string
}

func newSiteDir(t *testing.T) *siteDir {
	t.Helper()
	s := &siteDir{pki: gatewaytest.NewPKI(t, "site"), dir: t.TempDir(), addr: gatewaytest.FreeAddr(t)}
	gatewaytest.WriteSite(t, s.dir)
	s.conf = filepath.Join(s.dir, "edgegw.yaml")
	return s
}

// write writes the config: one TLS listener at s.addr, the site's devices
// and policies, the store under state/, no metrics, admin socket or audit
// file, then the section(s) tail (a format for args).
func (s *siteDir) write(t *testing.T, tail string, args ...any) {
	t.Helper()
	gatewaytest.WriteFile(t, s.conf, fmt.Appendf(nil, `version: 1
site: test
state_dir: state
listeners:
  - {name: lan, address: %q, tls: {ca: %s, cert: %s, key: "file:%s"}}
devices: devices.yaml
policies: policies/
store: {dir: state/queue, min_free: 16MiB}
metrics: {address: ""}
admin: {socket: ""}
audit: {file: ""}
%s`, s.addr, s.pki.CAFile, s.pki.ServerCert, s.pki.ServerKey, fmt.Sprintf(tail, args...)), 0o644)
}

// mustPublish publishes "v" to topic at QoS 1 and fails the test unless
// the PUBACK is a success.
func mustPublish(t *testing.T, a *gatewaytest.V5, topic string) {
	t.Helper()
	if rc, err := a.Publish(t, topic, 1, false, "v"); err != nil || rc != 0 {
		t.Fatalf("publish %s: 0x%02x %v", topic, rc, err)
	}
}

// startFromFile checks conf, runs its gateway until the test ends and waits
// for "gateway started" (g.run is written by Run; the log line after start
// orders it before the test's reads, through the writer's mutex).
func startFromFile(t *testing.T, conf string) *Gateway {
	t.Helper()
	cfg, err := config.Check(conf)
	if err != nil {
		t.Fatal(err)
	}
	lw := &gatewaytest.Buffer{}
	g, err := New(cfg, slog.New(slog.NewTextHandler(lw, nil)))
	if err != nil {
		t.Fatal(err)
	}
	runGateway(t, g, 20*time.Second)
	for i := 0; !strings.Contains(lw.String(), "gateway started"); i++ {
		if i == 1000 {
			t.Fatalf("no 'gateway started' within 10s:\n%s", lw.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return g
}

// connectSensorA connects sensor-a (MQTT 5, a certificate from pki) to the
// TLS listener at addr.
func connectSensorA(t *testing.T, addr string, pki *gatewaytest.PKI) *gatewaytest.V5 {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, pki.ClientTLS(pki.Issue(t, "sensor-a")))
	if err != nil {
		t.Fatal(err)
	}
	a, err := gatewaytest.ConnectV5(t, conn, "sensor-a")
	if err != nil {
		t.Fatal(err)
	}
	return a
}
