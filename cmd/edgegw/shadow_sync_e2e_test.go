package main

// Shadow sync end to end: the real `edgegw run`, Debian's mosquitto as the
// upstream, and a test responder playing the cloud's Device Shadow service
// (shadow.Service over a persistent paho session: TLS, MQTT and broker are
// real, the service is a double).

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
	"github.com/edgegw/edgegw/gateway/shadow"
)

// cloudShadow answers shadow requests on the upstream like the cloud's
// Device Shadow service, and lets the test change shadows as a cloud
// application would.
type cloudShadow struct {
	svc  *shadow.Service
	mu   sync.Mutex
	cl   *paho.Client // nil while disconnected
	reqs chan *paho.Publish
}

func startCloudShadow(t testing.TB, up *gatewaytest.Upstream) *cloudShadow {
	t.Helper()
	c := &cloudShadow{svc: shadow.New(shadow.NewMemStore(), shadow.Options{}), reqs: make(chan *paho.Publish, 1000)}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	ready := make(chan struct{})
	var once sync.Once
	wg.Add(2)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			_ = c.session(ctx, up, func() { once.Do(func() { close(ready) }) })
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	go func() { // answers outside paho's callback, which must not block on a PUBACK
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case p := <-c.reqs:
				c.publish(c.svc.Handle(ctx, shadow.Request{Topic: p.Topic, Payload: p.Payload}))
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(15 * time.Second):
		t.Fatal("cloud shadow service not connected within 15s")
	}
	return c
}

func (c *cloudShadow) session(ctx context.Context, up *gatewaytest.Upstream, subscribed func()) error {
	// A persistent session: requests sent while we reconnect wait for us.
	cl, conn, gone, err := cloudSession(ctx, up, "cloud-shadow", func(p *paho.Publish) { c.reqs <- p })
	if err != nil {
		return err
	}
	defer conn.Close()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var subs []paho.SubscribeOptions
	for _, f := range []string{"$aws/things/+/shadow/get", "$aws/things/+/shadow/update", "$aws/things/+/shadow/delete", "$aws/things/+/shadow/name/+/+"} {
		subs = append(subs, paho.SubscribeOptions{Topic: f, QoS: 1, NoLocal: true})
	}
	if _, err := cl.Subscribe(cctx, &paho.Subscribe{Subscriptions: subs}); err != nil {
		_ = cl.Disconnect(&paho.Disconnect{})
		return err
	}
	c.mu.Lock()
	c.cl = cl
	c.mu.Unlock()
	subscribed()
	select {
	case <-ctx.Done():
		_ = cl.Disconnect(&paho.Disconnect{})
	case <-gone:
	case <-cl.Done():
	}
	c.mu.Lock()
	c.cl = nil
	c.mu.Unlock()
	return nil
}

// publish sends the service's responses; while disconnected they are lost,
// as a real cloud's notifications to a gateway that is away.
func (c *cloudShadow) publish(rs []shadow.Response) {
	c.mu.Lock()
	cl := c.cl
	c.mu.Unlock()
	for _, r := range rs {
		if cl == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _ = cl.Publish(ctx, &paho.Publish{Topic: r.Topic, QoS: 1, Payload: r.Payload})
		cancel()
	}
}

// update changes a shadow as a cloud application would.
func (c *cloudShadow) update(t testing.TB, thing, payload string) {
	t.Helper()
	rs := c.svc.Handle(context.Background(), shadow.Request{Topic: "$aws/things/" + thing + "/shadow/update", Payload: []byte(payload)})
	if len(rs) == 0 || !strings.HasSuffix(rs[0].Topic, "/accepted") {
		t.Fatalf("cloud update %s: %v; want accepted", payload, rs)
	}
	c.publish(rs)
}

// get returns the cloud's shadow document (nil when there is none).
func (c *cloudShadow) get(thing string) map[string]any {
	rs := c.svc.Handle(context.Background(), shadow.Request{Topic: "$aws/things/" + thing + "/shadow/get", Payload: []byte(`{}`)})
	if len(rs) == 0 || !strings.HasSuffix(rs[0].Topic, "/accepted") {
		return nil
	}
	var m map[string]any
	_ = json.Unmarshal(rs[0].Payload, &m)
	return m
}

// eventually polls cond every 100ms for at most within.
func eventually(t testing.TB, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last state: %s", what, within, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// shadowDevice is a device (paho over mTLS) subscribed to its shadow's answers.
func shadowDevice(t testing.TB, g *bridgeGW, thing string) *sensor {
	t.Helper()
	s, err := g.sensor(t, thing, nil)
	if err != nil {
		t.Fatalf("%s connect: %v", thing, err)
	}
	t.Cleanup(s.close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sa, err := s.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "$aws/things/" + thing + "/shadow/+/+", QoS: 1}}})
	if err != nil || sa.Reasons[0] != 1 {
		t.Fatalf("%s subscribe: %v %v", thing, sa, err)
	}
	return s
}

// request publishes a shadow request and returns the answer on topic+"/"+kind.
func (s *sensor) request(t testing.TB, op, payload, kind string) map[string]any {
	t.Helper()
	topic := "$aws/things/" + s.name + "/shadow/" + op
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(payload)}); err != nil {
		t.Fatalf("%s publish %s: %v", s.name, topic, err)
	}
	return s.await(t, topic+"/"+kind, nil)
}

// await returns the next message on topic whose document satisfies ok
// (any, when nil), skipping others; it fails after 20 s.
func (s *sensor) await(t testing.TB, topic string, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case m := <-s.msgs:
			if m.Topic != topic {
				continue
			}
			var doc map[string]any
			if err := json.Unmarshal(m.Payload, &doc); err != nil {
				t.Fatalf("%s: %q is not JSON", m.Topic, m.Payload)
			}
			if ok == nil || ok(doc) {
				return doc
			}
		case <-deadline:
			t.Fatalf("%s: nothing (matching) on %s within 20s", s.name, topic)
		}
	}
}

func cloudHas(c *cloudShadow, thing string, want map[string]any) func() (bool, string) {
	return func() (bool, string) {
		doc := c.get(thing)
		for p, v := range want {
			if fmt.Sprint(at(doc, p)) != fmt.Sprint(v) {
				return false, fmt.Sprint(doc)
			}
		}
		return true, ""
	}
}

// TestShadowE2ESync: a shadow synced both ways through the bridge. Online,
// changes flow both ways; while the uplink is down the cloud changes desired
// and the device changes reported, both change the same fields (a
// conflict), and the gateway is killed with -9 in between; after the
// reconnect both sides hold the merged state: the cloud's desired change
// reached the device as a delta, the device's reported change reached the
// cloud, and each conflicting field went to its owner (desired: the cloud,
// reported: the device), audited.
func TestShadowE2ESync(t *testing.T) {
	up := gatewaytest.NewUpstream(t, gatewaytest.UpstreamOptions{MaxQueued: 100000, TLSVersion: "tlsv1.2", Topics: []string{"$aws/things/#"}})
	cloud := startCloudShadow(t, up)
	g := newShadowGW(t, up, "  sync:\n    - {thing: lamp-1, direction: both}", nil)
	dev := shadowDevice(t, g, "lamp-1")

	// Online, device to cloud.
	if a := dev.request(t, "update", `{"state":{"reported":{"power":"off"}}}`, "accepted"); at(a, "state.reported.power") != "off" {
		t.Fatalf("local update/accepted = %v", a)
	}
	eventually(t, 30*time.Second, "reported power off reaches the cloud", cloudHas(cloud, "lamp-1", map[string]any{"state.reported.power": "off"}))
	// Online, cloud to device: a delta.
	cloud.update(t, "lamp-1", `{"state":{"desired":{"power":"on"}},"clientToken":"app"}`)
	dev.await(t, "$aws/things/lamp-1/shadow/update/delta", func(d map[string]any) bool { return at(d, "state.power") == "on" })

	// The uplink goes down.
	up.Stop()
	eventually(t, 30*time.Second, "gateway sees the uplink down", func() (bool, string) {
		return strings.Contains(g.log.String(), "shadow sync offline"), ""
	})
	cloud.update(t, "lamp-1", `{"state":{"desired":{"mode":"eco","color":"red"},"reported":{"fan":"low"}},"clientToken":"app"}`)
	dev.request(t, "update", `{"state":{"reported":{"temp":21,"fan":"high"},"desired":{"color":"blue"}}}`, "accepted")

	// edgegw status shows the change waiting for the cloud.
	out, err := g.edgegw(t, "status", "--json")
	var st struct {
		Shadows struct {
			Online bool    `json:"sync_online"`
			Outbox int     `json:"sync_outbox"`
			Lag    float64 `json:"sync_lag_seconds"`
		}
	}
	if err != nil || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("edgegw status --json: %v\n%s", err, out)
	}
	if st.Shadows.Online || st.Shadows.Outbox < 1 {
		t.Errorf("status while offline: shadows %+v; want sync offline with at least 1 change waiting", st.Shadows)
	}

	// kill -9 while offline, restart, then the uplink comes back.
	g.kill()
	g.start()
	dev = shadowDevice(t, g, "lamp-1")
	up.Start()

	eventually(t, 60*time.Second, "the device's offline change reaches the cloud, conflicts resolved", cloudHas(cloud, "lamp-1", map[string]any{
		"state.reported.temp": 21.0, "state.reported.fan": "high", "state.reported.power": "off",
		"state.desired.color": "red", "state.desired.mode": "eco", "state.desired.power": "on",
	}))
	// The cloud's offline change reached the device as a delta.
	dev.await(t, "$aws/things/lamp-1/shadow/update/delta", func(d map[string]any) bool { return at(d, "state.mode") == "eco" })
	local := dev.request(t, "get", `{}`, "accepted")
	for p, want := range map[string]any{"state.desired.color": "red", "state.desired.mode": "eco", "state.reported.fan": "high", "state.reported.temp": 21.0} {
		if got := at(local, p); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("local %s = %v; want %v (document %v)", p, got, want, local)
		}
	}
	// No echo: once converged, neither side's version moves any more.
	cv, lv := at(cloud.get("lamp-1"), "version"), at(local, "version")
	time.Sleep(2 * time.Second)
	if now := at(cloud.get("lamp-1"), "version"); now != cv {
		t.Errorf("cloud version went from %v to %v after convergence; want no more updates (a sync loop)", cv, now)
	}
	if now := at(dev.request(t, "get", `{}`, "accepted"), "version"); now != lv {
		t.Errorf("local version went from %v to %v after convergence; want no more updates (a sync loop)", lv, now)
	}
	audit := readFile(t, g.dir+"/audit.log")
	for _, want := range []string{`"event":"shadow_conflict"`, "desired.color changed on both sides; the cloud's", "reported.fan changed on both sides; the device's"} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit log lacks %s:\n%s", want, audit)
		}
	}
}
