package broker

import (
	"fmt"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
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
