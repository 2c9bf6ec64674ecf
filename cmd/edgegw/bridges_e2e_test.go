package main

// End-to-end tests of several bridges (issue 22 acceptance): the real
// `edgegw run` binary with a bridges list, each bridge to its own Debian
// Mosquitto upstream with its own CA and client certificate, routes split
// between them and one route to both; an outage of one upstream; the queue
// of a single-bridge site kept when its config becomes a bridges list.

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
	"github.com/edgegw/edgegw/store"
)

// newGW is `edgegw run` with the site of newBridgeGW and the given bridge
// section(s) (YAML at the top level: "bridge:" or "bridges:").
func newGW(t testing.TB, bridges string) *bridgeGW {
	t.Helper()
	g := &bridgeGW{t: t, bin: gatewaytest.Edgegw(t), dir: t.TempDir(), site: gatewaytest.NewPKI(t, "site"), log: new(gatewaytest.Buffer)}
	g.addr = gatewaytest.FreeAddr(t)
	g.conf = filepath.Join(g.dir, "edgegw.yaml")
	g.writeConfig(bridges)
	gatewaytest.WriteSiteFiles(t, g.dir, bridgeRegistry, map[string]string{"sensor": bridgeSensorPolicy, "light": bridgeLightPolicy})
	g.launch(t, 6144)
	return g
}

// writeConfig (re)writes the gateway's config with the given bridges.
func (g *bridgeGW) writeConfig(bridges string) {
	state := filepath.Join(g.dir, "state")
	cfg := fmt.Sprintf(`version: 1
site: plant-7
state_dir: %[1]s
listeners:
  - name: lan
    address: %[2]q
    tls: {ca: %[3]s, cert: %[4]s, key: "file:%[5]s", crl: %[6]s}
devices: devices.yaml
policies: policies/
store: {dir: %[1]s/queue, min_free: 16MiB}
metrics: {address: ""}
admin: {socket: %[7]s/admin.sock}
audit: {file: %[7]s/audit.log}
%[8]s`, state, g.addr, g.site.CAFile, g.site.ServerCert, g.site.ServerKey, g.site.CRLFile, g.dir, bridges)
	gatewaytest.WriteFile(g.t, g.conf, []byte(cfg), 0o644)
}

// bridgeYAML is one item of a bridges list to up, with its own client ID
// and the gateway certificate up's CA issued.
func bridgeYAML(name, clientID string, up *gatewaytest.Upstream, routes string) string {
	return fmt.Sprintf(`  - name: %s
    upstreams: [{url: "mqtts://%s", server_name: localhost}]
    client_id: %s
    tls: {ca: %s, cert: %s, key: "file:%s"}
    keepalive: 5s
    connect_timeout: 3s
    backoff: {min: 100ms, max: 500ms}
    inflight: 128
    routes:%s
`, name, up.Addr, clientID, up.PKI.CAFile, up.Gateway.CertFile, up.Gateway.KeyFile, routes)
}

// checkArrivals checks what cloud got from sensor: seqs 0..n-1 each at
// least once, the first arrival of each in order, and none from the
// sensors in absent.
func checkArrivals(t testing.TB, where string, cloud *cloudSub, sensor string, n int, absent ...string) {
	t.Helper()
	cloud.mu.Lock()
	defer cloud.mu.Unlock()
	seen := map[int]bool{}
	next := 0
	for _, s := range cloud.arrivals[sensor] {
		if seen[s] {
			continue // a resend after a reconnect may repeat an earlier one
		}
		seen[s] = true
		if s != next {
			t.Errorf("%s: %s message %d arrived where %d was next (order per route)", where, sensor, s, next)
			return
		}
		next++
	}
	if next != n {
		t.Errorf("%s: %d distinct messages of %s; want %d (lost: %d)", where, next, sensor, n, n-next)
	}
	for _, a := range absent {
		if k := len(cloud.arrivals[a]); k > 0 {
			t.Errorf("%s: %d messages of %s; want none (its route is another bridge's)", where, k, a)
		}
	}
}

// pacedSensor publishes sensors/<name>/t at rate messages/s (QoS 1, one at a
// time) from seq first until stop is closed, counting each PUBACK in acked;
// it returns the next seq.
func (g *bridgeGW) pacedSensor(t testing.TB, name string, first int, rate float64, acked *atomic.Int64, stop <-chan struct{}) (int, error) {
	s, err := g.sensor(t, name, nil)
	if err != nil {
		return first, err
	}
	defer s.close()
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	seq := first
	for {
		select {
		case <-stop:
			return seq, nil
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		pr, err := s.c.Publish(ctx, &paho.Publish{Topic: "sensors/" + name + "/t", QoS: 1, Payload: []byte(msgID{name, seq}.payload())})
		cancel()
		if err != nil || pr == nil || pr.ReasonCode >= 0x80 {
			return seq, fmt.Errorf("%s: publish %d: %v", name, seq, err)
		}
		acked.Add(1)
		seq++
	}
}

// rateSampler records, once a second, a cloud subscriber's total arrivals
// and the publishers' acknowledged messages.
type rateSampler struct {
	mu           sync.Mutex
	at           []time.Time
	counts, pubs []int64
	stop         chan struct{}
	done         chan struct{}
}

func sampleRate(c *cloudSub, published *atomic.Int64) *rateSampler {
	r := &rateSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			c.mu.Lock()
			n := c.total
			c.mu.Unlock()
			r.mu.Lock()
			r.at, r.counts, r.pubs = append(r.at, time.Now()), append(r.counts, int64(n)), append(r.pubs, published.Load())
			r.mu.Unlock()
			select {
			case <-r.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return r
}

func (r *rateSampler) close() { close(r.stop); <-r.done }

// rate is the arrivals and the publishes per second between from and to
// (the samples nearest inside).
func (r *rateSampler) rate(from, to time.Time) (arrived, published float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	i, j := -1, -1
	for k, at := range r.at {
		if i < 0 && !at.Before(from) {
			i = k
		}
		if !at.After(to) {
			j = k
		}
	}
	if i < 0 || j <= i {
		return 0, 0
	}
	d := r.at[j].Sub(r.at[i]).Seconds()
	return float64(r.counts[j]-r.counts[i]) / d, float64(r.pubs[j]-r.pubs[i]) / d
}

// TestBridgesE2ETwoClouds: two bridges to two Mosquitto upstreams with
// different CAs and gateway certificates. sensor-a's route is bridge one's,
// sensor-b's bridge two's, and sensor-c has a route in each. Every message
// arrives where its routes say, in order per route, none lost. Then bridge
// two's upstream is stopped for 60 s while sensor-a and sensor-c publish at
// a steady rate: bridge one keeps delivering (its rate before, during and
// after the outage is logged; the test asserts counts and order, not
// times), and after the outage bridge two delivers every sensor-c message it
// queued meanwhile.
func TestBridgesE2ETwoClouds(t *testing.T) {
	up1 := gatewaytest.NewUpstream(t, cmdUpstream)
	up2 := gatewaytest.NewUpstream(t, cmdUpstream)
	cloud1 := startCloudSub(t, up1, "sites/#")
	cloud2 := startCloudSub(t, up2, "sites/#")
	g := newGW(t, "bridges:\n"+
		bridgeYAML("one", "plant-7-gw-one", up1, `
      - {name: one-a, topic: "sensors/sensor-a/#", remote_prefix: "sites/plant-7/"}
      - {name: one-c, topic: "sensors/sensor-c/#", remote_prefix: "sites/plant-7/"}`)+
		bridgeYAML("two", "plant-7-gw-two", up2, `
      - {name: two-b, topic: "sensors/sensor-b/#", remote_prefix: "sites/plant-7/"}
      - {name: two-c, topic: "sensors/sensor-c/#", remote_prefix: "sites/plant-7/"}`))

	// Phase 1: both upstreams up.
	const per = 500
	var todo []msgID
	for _, s := range []string{"sensor-a", "sensor-b", "sensor-c"} {
		for i := range per {
			todo = append(todo, msgID{s, i})
		}
	}
	if _, failed := g.publishAll(t, todo, 1, nil); len(failed) > 0 { // one at a time: order per sensor is defined
		t.Fatalf("%d publishes failed", len(failed))
	}
	cloud1.waitDistinct(t, 2*per, 20*time.Second, 60*time.Second)
	cloud2.waitDistinct(t, 2*per, 20*time.Second, 60*time.Second)
	checkArrivals(t, "upstream one", cloud1, "sensor-a", per, "sensor-b")
	checkArrivals(t, "upstream one", cloud1, "sensor-c", per)
	checkArrivals(t, "upstream two", cloud2, "sensor-b", per, "sensor-a")
	checkArrivals(t, "upstream two", cloud2, "sensor-c", per)
	if t.Failed() {
		t.FailNow()
	}

	// Phase 2: upstream two down for 60 s in the middle of a steady stream.
	const rate, before, outage, after = 100.0, 15 * time.Second, 60 * time.Second, 15 * time.Second
	var published atomic.Int64 // PUBACKs of sensor-a and sensor-c: both go to bridge one
	rs := sampleRate(cloud1, &published)
	stop := make(chan struct{})
	type result struct {
		next int
		err  error
	}
	results := map[string]chan result{"sensor-a": make(chan result, 1), "sensor-c": make(chan result, 1)}
	for name, ch := range results {
		go func() {
			n, err := g.pacedSensor(t, name, per, rate, &published, stop)
			ch <- result{n, err}
		}()
	}
	start := time.Now()
	time.Sleep(before)
	downAt := time.Now()
	up2.Stop()
	time.Sleep(outage)
	upAt := time.Now()
	up2.Start()
	time.Sleep(after)
	close(stop)
	end := time.Now()
	next := map[string]int{}
	for name, ch := range results {
		r := <-ch
		if r.err != nil {
			t.Fatal(r.err)
		}
		next[name] = r.next
	}
	total1 := next["sensor-a"] + next["sensor-c"]
	cloud1.waitDistinct(t, total1, 20*time.Second, 60*time.Second)
	rs.close()
	margin := 3 * time.Second // skip the seconds around each switch
	aBefore, pBefore := rs.rate(start.Add(margin), downAt)
	aDuring, pDuring := rs.rate(downAt.Add(margin), upAt)
	aAfter, pAfter := rs.rate(upAt.Add(margin), end)
	t.Logf("bridge one, arrivals at upstream one / PUBACKs to the publishers (sensor-a and sensor-c paced at %.0f msg/s each): before %.1f / %.1f msg/s; during the %v outage of upstream two %.1f / %.1f msg/s; after %.1f / %.1f msg/s",
		rate, aBefore, pBefore, outage, aDuring, pDuring, aAfter, pAfter)
	cloud2.waitDistinct(t, per+next["sensor-c"], 30*time.Second, 120*time.Second)
	checkArrivals(t, "upstream one", cloud1, "sensor-a", next["sensor-a"], "sensor-b")
	checkArrivals(t, "upstream one", cloud1, "sensor-c", next["sensor-c"])
	checkArrivals(t, "upstream two", cloud2, "sensor-b", per, "sensor-a")
	checkArrivals(t, "upstream two", cloud2, "sensor-c", next["sensor-c"])
	_, _, dups1 := cloud1.check(nil)
	_, _, dups2 := cloud2.check(nil)
	t.Logf("upstream one: %d distinct, %d duplicates; upstream two: %d distinct, %d duplicates (after its outage)", cloud1.distinct(), dups1, cloud2.distinct(), dups2)

	// Status per bridge, through the admin socket.
	out, stderr, code := runEdgegw(t, "status", "--socket", filepath.Join(g.dir, "admin.sock"))
	if code != 0 {
		t.Fatalf("status: exit %d: %s", code, stderr)
	}
	for _, want := range []string{"bridge one (MQTT 5):", "bridge two (MQTT 5):", "one-a", "two-c"} {
		if !strings.Contains(out, want) {
			t.Errorf("status:\n%s\nwant %q", out, want)
		}
	}
}

// TestBridgesE2EUpgradeKeepsQueue: a site with a bridge section queues
// messages while its upstream is down and is stopped; its config becomes a
// bridges list (the same bridge, named default, beside a new one): the
// queued messages are the default bridge's (its queue stays store.dir) and
// all arrive, in order, when the upstream is back. Then each bridge brings a
// command down from its own cloud (inbound per bridge).
func TestBridgesE2EUpgradeKeepsQueue(t *testing.T) {
	up1 := gatewaytest.NewUpstream(t, cmdUpstream)
	up2 := gatewaytest.NewUpstream(t, cmdUpstream)
	cloud1 := startCloudSub(t, up1, "sites/#")
	cloud2 := startCloudSub(t, up2, "sites/#")
	routes := `
      - {name: telemetry, topic: "sensors/sensor-a/#", remote_prefix: "sites/plant-7/"}`
	// The same bridge as a bridge section: the list item's keys, two
	// spaces less indented, without its name.
	item := strings.TrimPrefix(bridgeYAML("default", "plant-7-gw", up1, routes), "  - name: default")
	g := newGW(t, "bridge:"+strings.ReplaceAll(item, "\n    ", "\n  "))
	up1.Stop()
	const n = 300
	var todo []msgID
	for i := range n {
		todo = append(todo, msgID{"sensor-a", i})
	}
	if _, failed := g.publishAll(t, todo, 1, nil); len(failed) > 0 {
		t.Fatalf("%d publishes failed", len(failed))
	}
	g.stop()
	st, _ := g.queueStats() // store.dir, as the single-bridge layout has it
	if st.Depth != n {
		t.Fatalf("queue in store.dir holds %d messages before the upgrade; want %d", st.Depth, n)
	}

	g.writeConfig("bridges:\n" + bridgeYAML("default", "plant-7-gw", up1, routes+`
      - {name: one-cmd, topic: "cmd/#", direction: in, remote_prefix: "sites/plant-7/"}`) +
		bridgeYAML("two", "plant-7-gw-two", up2, `
      - {name: two-b, topic: "sensors/sensor-b/#", remote_prefix: "sites/plant-7/"}
      - {name: two-cmd, topic: "cmd/#", direction: in, remote_prefix: "sites/plant-7/"}`))
	g.start()
	up1.Start()
	cloud1.waitDistinct(t, n, 20*time.Second, 60*time.Second)
	checkArrivals(t, "upstream one", cloud1, "sensor-a", n, "sensor-b")
	if _, failed := g.publishAll(t, []msgID{{"sensor-b", 0}}, 1, nil); len(failed) > 0 {
		t.Fatalf("publish to the new bridge failed")
	}
	cloud2.waitDistinct(t, 1, 20*time.Second, 30*time.Second)
	checkArrivals(t, "upstream two", cloud2, "sensor-b", 1, "sensor-a")

	// Inbound, per bridge: a command from each cloud reaches light-1.
	light := g.subscribedSensor(t, "light-1", "cmd/light-1")
	defer light.close()
	for i, up := range []*gatewaytest.Upstream{up1, up2} {
		conn, err := tls.Dial("tcp", up.Addr, up.PKI.ClientTLS(up.Cloud))
		if err != nil {
			t.Fatal(err)
		}
		c, err := gatewaytest.ConnectV5(t, conn, "cloud-cmd")
		if err != nil {
			t.Fatal(err)
		}
		payload := fmt.Sprintf("from cloud %d", i+1)
		// The bridge subscribed upstream when it connected; retry until the
		// command comes down (bounded).
		got := false
		for try := 0; try < 20 && !got; try++ {
			if _, err := c.Publish(t, "sites/plant-7/cmd/light-1", 1, false, payload); err != nil {
				t.Fatal(err)
			}
			select {
			case m := <-light.msgs:
				got = string(m.Payload) == payload
			case <-time.After(500 * time.Millisecond):
			}
		}
		if !got {
			t.Errorf("command from upstream %d never reached light-1", i+1)
		}
	}

	// edgegw queue stats --bridge: the daemon answers for one bridge's
	// queue while it runs; the queue itself when it is stopped.
	routesOf := func(out string) []string {
		var st store.Stats
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("queue stats --json: %v: %q", err, out)
		}
		var names []string
		for _, r := range st.Routes {
			names = append(names, r.Name)
		}
		return names
	}
	for _, running := range []bool{true, false} {
		if !running {
			g.stop()
		}
		out, stderr, code := runEdgegw(t, "queue", "stats", "-c", g.conf, "--bridge", "two", "--json")
		if got := routesOf(out); code != 0 || !slices.Equal(got, []string{"two-b"}) {
			t.Errorf("queue stats --bridge two (daemon running %v): exit %d, routes %q, stderr %q; want 0 and [two-b]", running, code, got, stderr)
		}
	}
	if _, stderr, code := runEdgegw(t, "queue", "stats", "-c", g.conf, "--bridge", "three"); code != 1 || !strings.Contains(stderr, "no such bridge in") || !strings.Contains(stderr, "its bridges: default, two") {
		t.Errorf("queue stats --bridge three: exit %d, stderr %q; want 1 and the bridges there are", code, stderr)
	}
}
