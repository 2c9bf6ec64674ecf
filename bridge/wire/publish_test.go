package wire

import (
	"bufio"
	"bytes"
	"testing"

	"github.com/eclipse/paho.golang/packets"
)

// TestAppendPublish5DecodesWithPaho: what AppendPublish writes in MQTT 5 is
// read back by paho as the same PUBLISH, with the user properties named and
// no others, across the remaining-length sizes (1 to 3 VBI bytes).
func TestAppendPublish5DecodesWithPaho(t *testing.T) {
	for _, tc := range []struct {
		name      string
		p         Publish
		wantProps []packets.User
	}{
		{"QoS 1 with device and seq", Publish{Topic: "a/b", QoS: 1, ID: 4242, Retain: true, DeviceKey: "device", Device: "temp-01", SeqKey: "seq", Seq: 1234567890123},
			[]packets.User{{Key: "device", Value: "temp-01"}, {Key: "seq", Value: "1234567890123"}}},
		{"seq only", Publish{Topic: "a", QoS: 1, ID: 1, SeqKey: "n", Seq: 0}, []packets.User{{Key: "n", Value: "0"}}},
		{"QoS 0 without properties", Publish{Topic: "t"}, nil},
		{"topic prefix", Publish{TopicPrefix: "sites/plant-7/", Topic: "building/f1", QoS: 1, ID: 9, SeqKey: "seq", Seq: 5}, []packets.User{{Key: "seq", Value: "5"}}},
	} {
		for _, size := range []int{0, 200, 20000, 3 << 20} {
			p := tc.p
			p.Payload = bytes.Repeat([]byte{0xab}, size)
			pk, err := packets.ReadPacket(bytes.NewReader(AppendPublish(nil, p)))
			if err != nil {
				t.Fatalf("%s, %d bytes: paho cannot decode: %v", tc.name, size, err)
			}
			got := pk.Content.(*packets.Publish)
			if got.Topic != p.TopicPrefix+p.Topic || got.QoS != p.QoS || got.Retain != p.Retain || !bytes.Equal(got.Payload, p.Payload) {
				t.Fatalf("%s, %d bytes: got topic %q qos %d retain %v payload %d bytes; want %q %d %v %d",
					tc.name, size, got.Topic, got.QoS, got.Retain, len(got.Payload), p.TopicPrefix+p.Topic, p.QoS, p.Retain, size)
			}
			if p.QoS > 0 && got.PacketID != p.ID {
				t.Fatalf("%s: got packet ID %d; want %d", tc.name, got.PacketID, p.ID)
			}
			if len(got.Properties.User) != len(tc.wantProps) {
				t.Fatalf("%s: got user properties %v; want %v", tc.name, got.Properties.User, tc.wantProps)
			}
			for i := range tc.wantProps {
				if got.Properties.User[i] != tc.wantProps[i] {
					t.Fatalf("%s: got user properties %v; want %v", tc.name, got.Properties.User, tc.wantProps)
				}
			}
		}
	}
}

// TestAppendPublish311RoundTrip: in 3.1.1 there is no property section
// (user properties named are not written), and Read311 reads the packet
// back as written.
func TestAppendPublish311RoundTrip(t *testing.T) {
	for _, p := range []Publish{
		{Topic: "a/b", Payload: []byte("on"), QoS: 1, ID: 7, Retain: true, V311: true, DeviceKey: "device", Device: "d", SeqKey: "seq", Seq: 9},
		{Topic: "t", Payload: bytes.Repeat([]byte{1}, 20000), V311: true},
		{TopicPrefix: "sites/plant-7/", Topic: "building/f1", Payload: []byte("21.5"), QoS: 1, ID: 8, V311: true},
	} {
		raw := AppendPublish(nil, p)
		pk, err := Read311(bufio.NewReader(bytes.NewReader(raw)))
		if err != nil {
			t.Fatalf("%q: %v", p.Topic, err)
		}
		got, err := pk.Publish()
		if err != nil {
			t.Fatalf("%q: %v", p.Topic, err)
		}
		if got.Topic != p.TopicPrefix+p.Topic || got.QoS != p.QoS || got.Retain != p.Retain || !bytes.Equal(got.Payload, p.Payload) || (p.QoS > 0 && got.PacketID != p.ID) {
			t.Fatalf("got topic %q qos %d retain %v id %d payload %d bytes; want %q %d %v %d %d",
				got.Topic, got.QoS, got.Retain, got.PacketID, len(got.Payload), p.TopicPrefix+p.Topic, p.QoS, p.Retain, p.ID, len(p.Payload))
		}
	}
}

// TestAppendPublishAllocs: with room in dst, encoding allocates nothing
// (the write path encodes every upstream message into one scratch buffer).
func TestAppendPublishAllocs(t *testing.T) {
	p := Publish{Topic: "sites/plant-7/f1", Payload: make([]byte, 512), QoS: 1, ID: 1, DeviceKey: "device", Device: "temp-01", SeqKey: "seq", Seq: 1 << 40}
	dst := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(100, func() { dst = AppendPublish(dst[:0], p) }); n != 0 {
		t.Errorf("got %v allocations per PUBLISH; want 0", n)
	}
}
