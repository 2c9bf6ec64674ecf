package gateway

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// TestGatewayBridgesReload runs a whole Gateway with two bridges whose
// upstreams are unreachable: a publish matching a route of each is queued
// in both bridges' queues before its PUBACK; SIGHUP's Reload adds a route to
// one bridge live, and refuses (changing nothing) a reload whose route name
// is used in both bridges.
func TestGatewayBridgesReload(t *testing.T) {
	site := newSiteDir(t)
	pki, dir, addr, conf := site.pki, site.dir, site.addr, site.conf
	write := func(twoRoutes string) {
		site.write(t, `bridges:
  - name: one
    upstreams: [{url: "mqtt://127.0.0.1:1"}]
    client_id: gw-one
    backoff: {min: 1s, max: 1s}
    routes:
      - {name: one-a, topic: "sensors/sensor-a/#"}
  - name: two
    upstreams: [{url: "mqtt://127.0.0.1:2"}]
    client_id: gw-two
    backoff: {min: 1s, max: 1s}
    routes:
%s
`, twoRoutes)
	}
	write(`      - {name: two-a, topic: "sensors/sensor-a/c/#"}`)
	g := startFromFile(t, conf)
	a := connectSensorA(t, addr, pki)
	pub := func(topic string) { t.Helper(); mustPublish(t, a, topic) }
	depths := func() map[string]int64 {
		out := map[string]int64{}
		for _, l := range g.run.up.Sources() {
			for _, r := range l.Queue.Stats().Routes {
				out[l.Name+"/"+r.Name] = r.Depth
			}
		}
		return out
	}
	pub("sensors/sensor-a/t")
	pub("sensors/sensor-a/c/1")
	if d := depths(); d["one/one-a"] != 2 || d["two/two-a"] != 1 || len(d) != 2 {
		t.Fatalf("depths %v; want one/one-a 2 (both), two/two-a 1 (the shared one)", d)
	}
	if dirs := []string{filepath.Join(dir, "state", "queue-one"), filepath.Join(dir, "state", "queue-two")}; !dirExists(dirs[0]) || !dirExists(dirs[1]) {
		t.Errorf("queue directories %v: want both", dirs)
	}

	write(`      - {name: two-a, topic: "sensors/sensor-a/c/#"}
      - {name: two-d, topic: "sensors/sensor-a/d/#"}`)
	if err := g.Reload(); err != nil {
		t.Fatalf("Reload adding a route to bridge two: %v", err)
	}
	pub("sensors/sensor-a/d/1")
	if d := depths(); d["one/one-a"] != 3 || d["two/two-d"] != 1 {
		t.Fatalf("depths after the reload %v; want one/one-a 3, two/two-d 1", d)
	}

	write(`      - {name: one-a, topic: "sensors/sensor-a/e/#"}`)
	if err := g.Reload(); err == nil || !strings.Contains(err.Error(), `"one-a" is also the name of bridges[0].routes[0]`) {
		t.Fatalf("Reload with one route name in both bridges: %v; want it refused", err)
	}
	if rs := g.Bridges()[1].Routes().All(); len(rs) != 2 {
		t.Fatalf("bridge two's routes after a refused reload: %+v; want the 2 running ones", rs)
	}

	// A change beside the routes (here bridge two's upstream) needs a
	// restart: neither it nor the routes are applied.
	write(`      - {name: two-a, topic: "sensors/sensor-a/c/#"}`)
	data, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	gatewaytest.WriteFile(t, conf, []byte(strings.Replace(string(data), "mqtt://127.0.0.1:2", "mqtt://127.0.0.1:3", 1)), 0o644)
	if err := g.Reload(); !errors.Is(err, ErrRestartRequired) || !strings.Contains(err.Error(), "bridges changed") {
		t.Fatalf("Reload with a new upstream for bridge two: %v; want ErrRestartRequired naming bridges", err)
	}
	if rs := g.Bridges()[1].Routes().All(); len(rs) != 2 {
		t.Fatalf("bridge two's routes after a restart-only change: %+v; want the 2 running ones", rs)
	}
}

func dirExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
