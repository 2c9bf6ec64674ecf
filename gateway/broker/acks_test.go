package broker

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// wire is a raw MQTT client that keeps what the broker sends as bytes.
type wireConn struct {
	conn net.Conn
	r    *bufio.Reader
}

func dialWire(t *testing.T, addr string) *wireConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &wireConn{conn: c, r: bufio.NewReader(c)}
}

// send encodes pk with mochi's encoder and writes it.
func (w *wireConn) send(t *testing.T, pk packets.Packet) {
	t.Helper()
	w.write(t, encode(t, pk))
}

func (w *wireConn) write(t *testing.T, b []byte) {
	t.Helper()
	_ = w.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := w.conn.Write(b); err != nil {
		t.Fatalf("writing: %v", err)
	}
}

// next reads one packet: its whole bytes, or an error (io.EOF: closed).
func (w *wireConn) next(within time.Duration) ([]byte, error) {
	_ = w.conn.SetReadDeadline(time.Now().Add(within))
	first, err := w.r.ReadByte()
	if err != nil {
		return nil, err
	}
	out := []byte{first}
	n, mult := 0, 1
	for i := 0; i < 4; i++ {
		b, err := w.r.ReadByte()
		if err != nil {
			return nil, err
		}
		out = append(out, b)
		n += int(b&0x7f) * mult
		mult *= 128
		if b&0x80 == 0 {
			break
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(w.r, body); err != nil {
		return nil, err
	}
	return append(out, body...), nil
}

// connackV5 decodes an MQTT 5 CONNACK's bytes.
func connackV5(t *testing.T, b []byte) packets.Packet {
	t.Helper()
	var pk packets.Packet
	if len(b) < 2 || b[0] != 0x20 {
		t.Fatalf("got % x; want a CONNACK", b)
	}
	pk.ProtocolVersion = 5
	pk.FixedHeader.Type = packets.Connack
	hdr := 2
	for b[hdr-1]&0x80 != 0 {
		hdr++
	}
	if err := pk.ConnackDecode(b[hdr:]); err != nil {
		t.Fatalf("decoding CONNACK % x: %v", b, err)
	}
	return pk
}

func connectPacket(v byte, id string, keepalive uint16) packets.Packet {
	return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: v,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: keepalive, ClientIdentifier: id}}
}

// TestCleanAcks: a QoS 1/2 PUBLISH with user properties gets a PUBACK/PUBREC
// with no properties (none echoed) and no reason code 0x01/0x02, its PUBREL
// a four-byte PUBCOMP, from Debian's Mosquitto and from edgegw alike.
func TestCleanAcks(t *testing.T) {
	e := newEnv(t, offlineSite(t))
	brokers := []struct{ name, addr string }{
		{"mosquitto", gatewaytest.PlainMosquitto(t, "")},
		{"edgegw", e.plain},
	}
	user := packets.Properties{User: []packets.UserProperty{{Key: "a", Val: "2"}, {Key: "c", Val: "3"}}}
	for _, br := range brokers {
		t.Run(br.name, func(t *testing.T) {
			w := dialWire(t, br.addr)
			w.send(t, connectPacket(5, "off-acks", 30))
			if b, err := w.next(5 * time.Second); err != nil || connackV5(t, b).ReasonCode != 0 {
				t.Fatalf("CONNACK % x, %v; want success", b, err)
			}
			cases := []struct {
				name string
				pk   packets.Packet
				want []byte
			}{
				{"QoS 1 PUBACK", packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, TopicName: "off/acks", PacketID: 7, Payload: []byte("x"), Properties: user},
					[]byte{0x40, 0x02, 0x00, 0x07}},
				{"QoS 2 PUBREC", packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 2}, TopicName: "off/acks", PacketID: 8, Payload: []byte("x"), Properties: user},
					[]byte{0x50, 0x02, 0x00, 0x08}},
				{"PUBCOMP", packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, PacketID: 8},
					[]byte{0x70, 0x02, 0x00, 0x08}},
			}
			for _, c := range cases {
				c.pk.ProtocolVersion = 5
				w.send(t, c.pk)
				got, err := w.next(5 * time.Second)
				if err != nil || !cleanAck(got, c.want) {
					t.Errorf("%s: got % x (%v); want % x (or with reason 0x10 No matching subscribers)", c.name, got, err, c.want)
				}
			}
		})
	}
}

// cleanAck reports whether got is the success acknowledgement want (four
// bytes) or the same with reason code 0x10 No matching subscribers (what
// Mosquitto sends for a PUBACK/PUBREC nobody receives) and no properties.
func cleanAck(got, want []byte) bool {
	if bytes.Equal(got, want) {
		return true
	}
	withCode := append([]byte{want[0], 0x03}, want[2], want[3], 0x10)
	return want[0] != 0x70 && bytes.Equal(got, withCode)
}

// TestConnackAnnounces: edgegw's MQTT 5 CONNACK announces the limits it
// enforces (Maximum Packet Size, Topic Alias Maximum, Receive Maximum) and
// Server Keep Alive when it overrides the client's keepalive (0 or above
// max_keepalive) [MQTT-3.2.2-21].
func TestConnackAnnounces(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		offlineSite(t)(o)
		o.Limits.MaxKeepalive = 120 * time.Second
	})
	cases := []struct {
		name      string
		keepalive uint16
		wantKA    uint16 // 0: no Server Keep Alive
	}{
		{"keepalive kept", 60, 0},
		{"keepalive 0 overridden", 0, 120},
		{"keepalive above max overridden", 600, 120},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := dialWire(t, e.plain)
			w.send(t, connectPacket(5, "off-ka", c.keepalive))
			b, err := w.next(5 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			ack := connackV5(t, b)
			p := ack.Properties
			if ack.ReasonCode != 0 {
				t.Fatalf("CONNACK reason 0x%02x; want 0", ack.ReasonCode)
			}
			if p.MaximumPacketSize != e.b.limits.MaxPacketSize || p.TopicAliasMaximum != e.b.limits.TopicAliasMaximum || p.ReceiveMaximum != e.b.limits.ReceiveMaximum {
				t.Errorf("got Maximum Packet Size %d, Topic Alias Maximum %d, Receive Maximum %d; want %d, %d, %d",
					p.MaximumPacketSize, p.TopicAliasMaximum, p.ReceiveMaximum, e.b.limits.MaxPacketSize, e.b.limits.TopicAliasMaximum, e.b.limits.ReceiveMaximum)
			}
			if p.ServerKeepAliveFlag != (c.wantKA != 0) || p.ServerKeepAlive != c.wantKA {
				t.Errorf("got Server Keep Alive %v %d; want %v %d", p.ServerKeepAliveFlag, p.ServerKeepAlive, c.wantKA != 0, c.wantKA)
			}
		})
	}
}

// publishV5 is an MQTT 5 QoS 1 PUBLISH of "x" to topic.
func publishV5(topic string, id uint16) packets.Packet {
	return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, ProtocolVersion: 5,
		TopicName: topic, PacketID: id, Payload: []byte("x")}
}
