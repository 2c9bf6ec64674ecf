package broker

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// TestDeliveryAfterSubscribe: the pipeline remembers that a topic has no
// local subscriber (subsCache); a SUBSCRIBE after that must be seen by the
// next message on that topic.
func TestDeliveryAfterSubscribe(t *testing.T) {
	e := newEnv(t, nil)
	e.b.SetOutbound(openQueue(t), routeFunc(func(string, byte) []string { return []string{"up"} }))
	a := e.rawConnect(t, "sensor-a", 4)
	publish := func(id uint16) {
		t.Helper()
		a.Publish(t, id, "sensors/sensor-a/t", 1, false, fmt.Sprint("m", id))
		pk, err := a.read(t)
		if err != nil || pk.FixedHeader.Type != packets.Puback || pk.PacketID != id {
			t.Fatalf("message %d: got %+v, %v; want its PUBACK", id, pk.FixedHeader, err)
		}
	}
	publish(1) // nobody subscribed: remembered
	// Its PUBACK goes out before its local delivery (mochi's order): wait
	// for the delivery, or it could find the monitor below.
	eventually(t, "message 1 delivered", func() bool { return !pipelineBusy(e.b, "sensor-a") })
	if e.b.subscribed("sensors/sensor-a/t") {
		t.Fatal("subscribed before any SUBSCRIBE")
	}
	mon, err := e.connectV5(t, e.pki.Issue(t, "monitor"), "monitor")
	if err != nil {
		t.Fatal(err)
	}
	mon.Subscribe(t, "sensors/#", 1)
	publish(2)
	if m := mon.ExpectOnly(t, "sensors/sensor-a/t"); string(m.Payload) != "m2" {
		t.Fatalf("monitor got %q; want m2", m.Payload)
	}
}

// TestSubsCache: an answer is remembered within a generation and asked
// again after changed; past maxSubsCache topics, answers are not kept; a
// worker's memo holds one topic's answer within a generation.
func TestSubsCache(t *testing.T) {
	var c subsCache
	walks := 0
	ask := func(topic string, v bool) bool {
		return c.lookup(topic, func() bool { walks++; return v })
	}
	if ask("a", false) || ask("a", true) || walks != 1 {
		t.Fatalf("first generation: %d walks; want 1, the answer remembered", walks)
	}
	c.changed()
	if !ask("a", true) || !ask("a", false) || walks != 2 {
		t.Fatalf("after changed: %d walks; want 2, the new answer remembered", walks)
	}
	c.changed()
	for i := range maxSubsCache + 10 {
		ask(fmt.Sprint("t/", i), false)
	}
	walks = 0
	ask("t/0", false)
	ask(fmt.Sprint("t/", maxSubsCache+5), false)
	if walks != 1 {
		t.Fatalf("%d walks for one kept and one unkept topic; want 1", walks)
	}

	// A worker's memo: one topic, until the generation changes.
	var m subsMemo
	asks := 0
	memo := func(topic string, v bool) bool {
		return c.memoized(&m, topic, func(string) bool { asks++; return v })
	}
	if memo("x", false) || memo("x", true) || asks != 1 {
		t.Fatalf("memo: %d asks; want 1, the answer remembered", asks)
	}
	if !memo("y", true) || asks != 2 {
		t.Fatalf("memo, another topic: %d asks; want 2", asks)
	}
	c.changed()
	if memo("y", false) || asks != 3 {
		t.Fatalf("memo after changed: %d asks; want 3", asks)
	}
}

// pipelineBusy reports whether clientID's pipeline holds messages not yet
// acknowledged and delivered.
func pipelineBusy(b *Broker, clientID string) bool {
	busy := false
	b.clients.Range(func(_, v any) bool {
		if st := v.(*clientState); st.clientID == clientID {
			busy = st.pipe.busy()
		}
		return true
	})
	return busy
}

// TestPublishDecisionFollowsReload: the client's last allowed topic is
// remembered (publishAllowed); a reload that takes iot:Publish on that
// topic away refuses the next PUBLISH to it (PUBACK 0x87, audited), and
// one that gives it back allows it again.
func TestPublishDecisionFollowsReload(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Watch = -1 })
	a, err := e.connectV5(t, e.pki.Issue(t, "sensor-a"), "sensor-a")
	if err != nil {
		t.Fatal(err)
	}
	publish := func(want byte) {
		t.Helper()
		for i := range 3 {
			if rc, err := a.Publish(t, "sensors/sensor-a/t", 1, false, "x"); rc != want {
				t.Fatalf("PUBLISH %d: PUBACK 0x%02x, %v; want 0x%02x", i, rc, err, want)
			}
		}
	}
	reload := func(policy string) {
		t.Helper()
		gatewaytest.WriteFile(t, filepath.Join(e.dir, "policies", "sensor.json"), []byte(policy), 0o644)
		if err := e.b.Reload("test"); err != nil {
			t.Fatal(err)
		}
	}
	publish(0)
	reload(strings.ReplaceAll(gatewaytest.SensorPolicy, "topic/sensors/${iot:Connection.Thing.ThingName}/*", "topic/sensors/${iot:Connection.Thing.ThingName}/v2/*"))
	publish(0x87)
	if got := e.metrics.DeniedPublish.Load(); got != 3 {
		t.Fatalf("DeniedPublish = %d; want 3", got)
	}
	if !auditHas(t, e.audit, `"resource":"topic/sensors/sensor-a/t"`) {
		t.Fatal("no audit line for the refused PUBLISH")
	}
	reload(gatewaytest.SensorPolicy)
	publish(0)
}
