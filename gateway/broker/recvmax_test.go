package broker

import (
	"bufio"
	"bytes"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// TestReceiveMaximumExceeded: an MQTT 5 client that has more QoS 2
// PUBLISHes unacknowledged than the Receive Maximum the server announced
// gets DISCONNECT 0x93 Receive Maximum exceeded (MQTT 5 section 4.9), read
// by the client before the connection closes. Debian's Mosquitto 2.0.11
// (also Receive Maximum 4) answers each PUBLISH over the quota with PUBREC
// 0x97 Quota exceeded instead and stays connected; the test accepts that from
// Mosquitto only.
// burstN QoS 2 PUBLISHes in one write, against a Receive Maximum of 4.
const burstN = 50

func TestReceiveMaximumExceeded(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		offlineSite(t)(o)
		o.Limits.ReceiveMaximum = 4
	})
	mosqAddr := gatewaytest.PlainMosquitto(t, "max_inflight_messages 4\n")
	brokers := []struct {
		name     string
		dial     func(t *testing.T) *wire
		quotaAck bool // a PUBREC 0x97 is accepted instead of the DISCONNECT
	}{
		{"mosquitto", func(t *testing.T) *wire { return dialWire(t, mosqAddr) }, true},
		{"edgegw", func(t *testing.T) *wire { return dialWire(t, e.plain) }, false},
		{"edgegw-mTLS", func(t *testing.T) *wire {
			c := e.dialThing(t, "off-rm")
			return &wire{conn: c, r: bufio.NewReader(c)}
		}, false},
	}
	for _, br := range brokers {
		t.Run(br.name, func(t *testing.T) {
			w := br.dial(t)
			w.send(t, connectPacket(5, "off-rm", 30))
			b, err := w.next(5 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if rm := connackV5(t, b).Properties.ReceiveMaximum; rm != 4 {
				t.Fatalf("CONNACK Receive Maximum %d; want 4", rm)
			}
			var burst bytes.Buffer
			for i := range burstN {
				pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 2}, ProtocolVersion: 5,
					TopicName: "off/rm", PacketID: uint16(i + 1), Payload: []byte("x")}
				if err := pk.PublishEncode(&burst); err != nil {
					t.Fatal(err)
				}
			}
			w.write(t, burst.Bytes())
			var last []byte
			quota := false
			for range burstN + 1 {
				got, err := w.next(2 * time.Second)
				if err != nil {
					break
				}
				last = got
				quota = quota || len(got) == 5 && got[0] == 0x50 && got[4] == 0x97
				if got[0] == 0xe0 {
					break
				}
			}
			if br.quotaAck && quota {
				return
			}
			if len(last) < 3 || last[0] != 0xe0 || last[2] != 0x93 {
				t.Fatalf("last packet % x; want DISCONNECT 0x93 Receive Maximum exceeded", last)
			}
		})
	}
}
