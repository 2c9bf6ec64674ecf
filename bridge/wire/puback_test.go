package wire

import (
	"bufio"
	"bytes"
	"testing"

	"github.com/eclipse/paho.golang/packets"
)

// TestReadShortPuback: the fast PUBACK reader takes exactly the PUBACKs
// without properties, with the packet ID and reason code paho would decode,
// and leaves every other packet (and a PUBACK with properties) unread for
// the general reader.
func TestReadShortPuback(t *testing.T) {
	cases := []struct {
		name   string
		in     []byte
		ok     bool
		id     uint16
		code   byte
		remain int // bytes left in the reader afterwards
	}{
		{"success, reason omitted", []byte{0x40, 2, 0x12, 0x34}, true, 0x1234, 0, 0},
		{"refused, reason only", []byte{0x40, 3, 0, 7, 0x87}, true, 7, 0x87, 0},
		{"no subscribers, empty properties", []byte{0x40, 4, 0, 9, 0x10, 0}, true, 9, 0x10, 0},
		{"reason string property", []byte{0x40, 8, 0, 9, 0x87, 4, 0x1f, 0, 1, 'x'}, false, 0, 0, 10},
		{"PUBLISH", []byte{0x30, 6, 0, 1, 't', 0, 'h', 'i'}, false, 0, 0, 8},
		{"PINGRESP", []byte{0xd0, 0}, false, 0, 0, 2},
		{"MQTT 3.1.1 style PUBACK then PINGRESP", []byte{0x40, 2, 0, 1, 0xd0, 0}, true, 1, 0, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			br := bufio.NewReader(bytes.NewReader(c.in))
			id, code, ok, err := ReadShortPuback(br)
			if err != nil {
				t.Fatal(err)
			}
			if ok != c.ok || id != c.id || code != c.code {
				t.Errorf("got ok %v id %d code 0x%02x; want ok %v id %d code 0x%02x", ok, id, code, c.ok, c.id, c.code)
			}
			if br.Buffered() != c.remain {
				t.Errorf("left %d bytes; want %d", br.Buffered(), c.remain)
			}
			if !c.ok {
				// The general reader still sees the whole packet.
				if _, err := packets.ReadPacket(br); err != nil {
					t.Errorf("paho ReadPacket after a refusal: %v", err)
				}
			}
		})
	}
}

// TestReadShortPubackMatchesPaho: every PUBACK paho encodes without
// properties decodes to the same packet ID and reason code.
func TestReadShortPubackMatchesPaho(t *testing.T) {
	for _, code := range []byte{0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99} {
		for _, id := range []uint16{1, 2, 255, 256, 0x7fff, 0xffff} {
			var buf bytes.Buffer
			p := &packets.Puback{PacketID: id, ReasonCode: code, Properties: &packets.Properties{}}
			if _, err := p.WriteTo(&buf); err != nil {
				t.Fatal(err)
			}
			gotID, gotCode, ok, err := ReadShortPuback(bufio.NewReader(&buf))
			if err != nil || !ok || gotID != id || gotCode != code {
				t.Fatalf("paho PUBACK id %d code 0x%02x (% x): got ok %v id %d code 0x%02x err %v", id, code, buf.Bytes(), ok, gotID, gotCode, err)
			}
		}
	}
}
