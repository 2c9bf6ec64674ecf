package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// withThing adds a thing with its own policy to the test registry.
func withThing(thing, policy string) func(*Options) {
	return func(o *Options) {
		reg := strings.Replace(gatewaytest.Registry, "groups:", "  - name: "+thing+"\n    policies: ["+thing+"]\ngroups:", 1)
		if err := os.WriteFile(o.Registry, []byte(reg), 0o644); err != nil {
			panic(err)
		}
		if err := os.WriteFile(filepath.Join(o.Policies, thing+".json"), []byte(policy), 0o644); err != nil {
			panic(err)
		}
	}
}

func auditHas(t *testing.T, path, want string) bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Contains(b, []byte(want))
}

// TestSysTopicPublish: mochi drops a PUBLISH to a $SYS topic without any
// acknowledgement. It must be a clean, audited refusal: MQTT 5 PUBACK 0x87
// with the session kept, MQTT 3.1.1 disconnect (paho, raw 3.1.1 client and
// Debian's mosquitto_pub).
func TestSysTopicPublish(t *testing.T) {
	e := newEnv(t, nil)
	mon, err := e.connectV5(t, e.pki.Issue(t, "monitor"), "monitor")
	if err != nil {
		t.Fatal(err)
	}
	mon.Subscribe(t, "sensors/#", 1)
	aCert := e.pki.Issue(t, "sensor-a")
	a, err := e.connectV5(t, aCert, "sensor-a")
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{"$SYS/broker/clients", "$sys/x"} {
		if rc, _ := a.Publish(t, topic, 1, false, "x"); rc != 0x87 {
			t.Fatalf("v5 QoS 1 publish to %q: PUBACK 0x%02x; want 0x87", topic, rc)
		}
	}
	// The session is still up.
	if rc, err := a.Publish(t, "sensors/sensor-a/t", 1, false, "after"); rc != 0 || err != nil {
		t.Fatalf("publish after the refusal: 0x%02x %v", rc, err)
	}
	mon.ExpectOnly(t, "sensors/sensor-a/t")
	if !auditHas(t, e.audit, `"resource":"topic/$SYS/broker/clients"`) {
		t.Errorf("no audit line for the $SYS publish")
	}

	// MQTT 3.1.1, QoS 1: disconnected, never acknowledged.
	b3, rc := e.rawV3(t, e.pki.Issue(t, "sensor-b"), "sensor-b")
	if rc != 0 {
		t.Fatalf("v3 connect rc %d", rc)
	}
	b3.send(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: 3, TopicName: "$SYS/x", Payload: []byte("q1")})
	for {
		pk, err := b3.read(t)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("v3 QoS 1 publish to $SYS: no answer; want the connection closed")
			}
			break
		}
		if pk.FixedHeader.Type == packets.Puback {
			t.Fatalf("v3 publish to $SYS got a PUBACK")
		}
	}

	// mosquitto_pub 3.1.1: the connection is lost instead of a hang.
	pub := gatewaytest.Need(t, "mosquitto_pub", "mosquitto-clients")
	out, err := gatewaytest.Run(t, 30*time.Second, pub, append(e.pki.MosqTLSArgs(e.addr, aCert),
		"-V", "mqttv311", "-i", "sensor-a", "-q", "1", "-t", "$SYS/x", "-m", "x")...)
	if err == nil || strings.Contains(out, "timed out") || strings.Contains(err.Error(), "killed") {
		t.Fatalf("mosquitto_pub 3.1.1 to $SYS: %v; want the connection lost\n%s", err, out)
	}
	// mosquitto_pub 5: PUBACK 0x87, printed.
	out, _ = gatewaytest.Run(t, 30*time.Second, pub, append(e.pki.MosqTLSArgs(e.addr, aCert),
		"-V", "mqttv5", "-i", "sensor-a", "-q", "1", "-t", "$SYS/x", "-m", "x")...)
	if !strings.Contains(out, "Not authorized") {
		t.Fatalf("mosquitto_pub 5 to $SYS: output %q; want Not authorized", out)
	}
	if got := e.metrics.DeniedPublish.Load(); got != 5 {
		t.Errorf("DeniedPublish = %d; want 5", got)
	}
}

const watcherPolicy = `{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Action": "iot:Connect", "Resource": "client/watcher"},
 {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "topicfilter/sensors/*"},
 {"Effect": "Deny", "Action": "iot:Subscribe", "Resource": "topicfilter/sensors/sensor-a/temp"},
 {"Effect": "Allow", "Action": "iot:Receive", "Resource": "topic/sensors/*"},
 {"Effect": "Deny", "Action": "iot:Receive", "Resource": "topic/sensors/sensor-a/secret"}
]}`

// TestSubscribeWhileDelivering is the case a subscribe check and a delivery
// check ask mochi's OnACLCheck the same question: the client subscribes to a
// wildcard-free filter while messages on exactly that topic are being
// delivered to it through another subscription. Each must get its own answer:
//   - Subscribe denied, Receive allowed (sensors/sensor-a/temp): SUBACK 0x87
//     every time, every message still delivered through sensors/#;
//   - Subscribe allowed, Receive denied (sensors/sensor-a/secret): SUBACK 0x87
//     (the subscription could never deliver), no message delivered;
//   - both allowed (sensors/sensor-a/other): granted, every message delivered.
func TestSubscribeWhileDelivering(t *testing.T) {
	e := newEnv(t, withThing("watcher", watcherPolicy))
	conn := e.dialThing(t, "watcher")
	// paho writes a packet in several Write calls and locks only a conn that
	// is a sync.Locker: its PUBACKs would interleave with our SUBSCRIBEs.
	w, err := gatewaytest.ConnectV5(t, conn, "watcher")
	if err != nil || w.Ack.ReasonCode != 0 {
		t.Fatalf("watcher connect: %v", err)
	}
	// QoS 0 deliveries: mochi takes the packet ids of its QoS 1 deliveries
	// from the same in-flight map it checks a SUBSCRIBE's packet id against,
	// and answers 0x91 (packet identifier in use) on a collision. The
	// publisher waits for each PUBACK, so nothing is dropped at this rate.
	if rc := w.Subscribe(t, "sensors/#", 0); rc != 0 {
		t.Fatalf("sensors/# SUBACK 0x%02x; want 0", rc)
	}
	a, err := e.connectV5(t, e.pki.Issue(t, "sensor-a"), "sensor-a")
	if err != nil {
		t.Fatal(err)
	}
	per := 300
	if testing.Short() {
		per = 100
	}
	topics := []string{"sensors/sensor-a/temp", "sensors/sensor-a/secret", "sensors/sensor-a/other"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	pubErr := make(chan error, 1)
	go func() {
		defer wg.Done()
		defer cancel()
		for seq := range per {
			for _, tp := range topics {
				pctx, pcancel := context.WithTimeout(context.Background(), 10*time.Second)
				r, err := a.C.Publish(pctx, &paho.Publish{Topic: tp, QoS: 1, Payload: fmt.Appendf(nil, "%s %d", tp, seq)})
				pcancel()
				if err != nil || r.ReasonCode != 0 {
					pubErr <- fmt.Errorf("publish %s %d: %v %+v", tp, seq, err, r)
					return
				}
			}
		}
	}()
	want := map[string]byte{topics[0]: 0x87, topics[1]: 0x87, topics[2]: 0}
	rounds := 0
	for ctx.Err() == nil {
		for _, tp := range topics {
			if rc := w.Subscribe(t, tp, 0); rc != want[tp] {
				t.Fatalf("round %d: SUBACK 0x%02x for %q while it is delivered; want 0x%02x", rounds, rc, tp, want[tp])
			}
		}
		rounds++
	}
	wg.Wait()
	select {
	case err := <-pubErr:
		t.Fatal(err)
	default:
	}
	seen := map[string]bool{}
	deadline := time.After(20 * time.Second)
	for len(seen) < 2*per {
		select {
		case m := <-w.Msgs:
			if m.Topic == topics[1] {
				t.Fatalf("delivered %q although iot:Receive denies it", m.Payload)
			}
			seen[string(m.Payload)] = true
		case <-deadline:
			t.Fatalf("received %d distinct messages; want %d (temp and other, %d each)", len(seen), 2*per, per)
		}
	}
	if rounds == 0 {
		t.Fatal("no subscribe ran while messages were delivered")
	}
	t.Logf("%d subscribe rounds during %d deliveries", rounds, 3*per)
	// Refused filters never reach mochi's subscription store.
	for _, cl := range e.b.srv.Clients.GetAll() {
		if cl.ID != "watcher" {
			continue
		}
		subs := cl.State.Subscriptions.GetAll()
		if len(subs) != 2 {
			t.Errorf("watcher subscriptions %v; want sensors/# and %s", subs, topics[2])
		}
	}
}

const areaPolicy = `{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Action": "iot:Connect", "Resource": "client/area*"},
 {"Effect": "Allow", "Action": ["iot:Publish", "iot:RetainPublish"], "Resource": "topic/a/*"},
 {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "topicfilter/a/*"},
 {"Effect": "Deny", "Action": "iot:Subscribe", "Resource": "topicfilter/a/restricted/*"},
 {"Effect": "Allow", "Action": "iot:Receive", "Resource": "topic/a/*"},
 {"Effect": "Deny", "Action": "iot:Receive", "Resource": "topic/a/restricted/*"}
]}`

// TestSubscribeWildcardReceiveDeny: as in AWS IoT Core, a Deny on a narrower
// topic filter does not refuse a subscription to a wider one: Allow
// topicfilter/a/* with Deny topicfilter/a/restricted/* still lets the client
// subscribe to a/#; only the Receive Deny keeps the restricted messages, live
// and retained, from it.
func TestSubscribeWildcardReceiveDeny(t *testing.T) {
	e := newEnv(t, withThing("area", areaPolicy))
	cert := e.pki.Issue(t, "area")
	pub, err := e.connectV5(t, cert, "area-pub")
	if err != nil || pub.Ack.ReasonCode != 0 {
		t.Fatalf("publisher connect: %v", err)
	}
	for _, tp := range []string{"a/x/r", "a/restricted/r"} {
		if rc, err := pub.Publish(t, tp, 1, true, "retained "+tp); rc != 0 || err != nil {
			t.Fatalf("retained publish %s: 0x%02x %v", tp, rc, err)
		}
	}
	// mochi sends a PUBACK before it delivers the message; the publisher's
	// packets are handled in order, so once a SUBACK after them is back the
	// live delivery attempts of the retained publishes are over (else one
	// could find the subscriber below and count a third denial).
	if rc := pub.Subscribe(t, "a/none", 0); rc != 0 {
		t.Fatalf("publisher's sync subscribe: SUBACK 0x%02x", rc)
	}
	sub, err := e.connectV5(t, cert, "area")
	if err != nil || sub.Ack.ReasonCode != 0 {
		t.Fatalf("subscriber connect: %v", err)
	}
	if rc := sub.Subscribe(t, "a/restricted/#", 1); rc != 0x87 {
		t.Fatalf("a/restricted/# SUBACK 0x%02x; want 0x87", rc)
	}
	if rc := sub.Subscribe(t, "a/#", 1); rc != 1 {
		t.Fatalf("a/# SUBACK 0x%02x; want 1", rc)
	}
	if m := sub.ExpectOnly(t, "a/x/r"); !m.Retain {
		t.Errorf("a/x/r delivered without RETAIN on subscribe")
	}
	for _, tp := range []string{"a/restricted/live", "a/x/live"} {
		if rc, err := pub.Publish(t, tp, 1, false, "live "+tp); rc != 0 || err != nil {
			t.Fatalf("publish %s: 0x%02x %v", tp, rc, err)
		}
	}
	sub.ExpectOnly(t, "a/x/live")
	select {
	case m := <-sub.Msgs:
		t.Fatalf("unexpected delivery %q", m.Topic)
	case <-time.After(200 * time.Millisecond):
	}
	if got := e.metrics.DeniedReceive.Load(); got != 2 {
		t.Errorf("DeniedReceive = %d; want 2 (retained and live restricted message)", got)
	}
}
