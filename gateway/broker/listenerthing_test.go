package broker

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// nodeRedSite: the thing node-red may connect with any client ID and use
// nodered/#, nothing else.
func nodeRedSite(t testing.TB) func(*Options) {
	return func(o *Options) {
		gatewaytest.WriteSiteFiles(t, filepath.Dir(o.Registry), `version: 1
default: {policies: []}
things:
  - name: node-red
    policies: [nodered]
groups: []
`, map[string]string{"nodered": `{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Action": "iot:Connect", "Resource": "client/*"},
 {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": "topic/nodered/*"},
 {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "topicfilter/nodered/*"}]}`})
		o.Listeners = append(o.Listeners, ListenerOptions{Name: "nodered", Address: "127.0.0.1:0", Thing: "node-red"})
	}
}

// TestListenerThing: a loopback listener with `thing: node-red` accepts the
// client ID forms MQTT allows, as Debian's Mosquitto does: an empty ID with
// clean start (MQTT 5: an Assigned Client Identifier in CONNACK; 3.1.1: a
// generated one), an empty ID with clean session 0 refused in 3.1.1 with
// return code 2 [MQTT-3.1.3-8], any UTF-8 ID; on edgegw every such client is
// node-red, authorized by node-red's policy.
func TestListenerThing(t *testing.T) {
	e := newEnv(t, nodeRedSite(t))
	brokers := []struct{ name, addr string }{
		{"mosquitto", gatewaytest.PlainMosquitto(t, "")},
		{"edgegw", e.b.Addr("nodered").String()},
	}
	for _, br := range brokers {
		t.Run(br.name, func(t *testing.T) {
			w := dialWire(t, br.addr)
			w.send(t, connectPacket(5, "", 30))
			b, err := w.next(5 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if ack := connackV5(t, b); ack.ReasonCode != 0 || ack.Properties.AssignedClientID == "" {
				t.Errorf("MQTT 5, empty client ID: CONNACK 0x%02x, assigned %q; want 0 with an Assigned Client Identifier", ack.ReasonCode, ack.Properties.AssignedClientID)
			}

			w = dialWire(t, br.addr)
			w.send(t, connectPacket(4, "", 30))
			if b, err := w.next(5 * time.Second); err != nil || len(b) != 4 || b[3] != 0 {
				t.Errorf("MQTT 3.1.1, empty client ID, clean session: got % x (%v); want CONNACK 0", b, err)
			}

			w = dialWire(t, br.addr)
			c := connectPacket(4, "", 30)
			c.Connect.Clean = false
			w.send(t, c)
			if b, err := w.next(5 * time.Second); err != nil || len(b) != 4 || b[3] != 2 {
				t.Errorf("MQTT 3.1.1, empty client ID, clean session 0: got % x (%v); want CONNACK 2 identifier rejected", b, err)
			}

			// Any UTF-8 client ID, with mosquitto_sub and mosquitto_pub.
			hp := hostPort(br.addr)
			done := make(chan string, 1)
			go func() {
				done <- mosq(t, "", "mosquitto_sub", append(hp, "-i", "Küche 1", "-q", "1", "-t", "nodered/x", "-C", "1", "-W", "10")...)
			}()
			for range 100 { // until the subscription is in place
				mosq(t, "", "mosquitto_pub", append(hp, "-i", "nodered_3f2a", "-q", "1", "-t", "nodered/x", "-m", "hi")...)
				select {
				case got := <-done:
					if got != "hi\n" {
						t.Errorf("subscriber got %q; want hi", got)
					}
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
			t.Fatal("the UTF-8 client ID subscriber got nothing")
		})
	}
	t.Run("edgegw policy", func(t *testing.T) {
		w := dialWire(t, e.b.Addr("nodered").String())
		w.send(t, connectPacket(5, "", 30))
		if _, err := w.next(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		pub := publishV5("other/x", 9)
		w.send(t, pub)
		if b, err := w.next(5 * time.Second); err != nil || len(b) < 5 || b[0] != 0x40 || b[4] != 0x87 {
			t.Errorf("publish outside node-red's policy: got % x (%v); want PUBACK 0x87", b, err)
		}
		if !auditHas(t, e.audit, `"device":"node-red"`) {
			t.Errorf("audit log names no device node-red")
		}
	})
}
