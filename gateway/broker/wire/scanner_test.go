package wire

import (
	"strings"
	"testing"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// Short names for gatewaytest's raw packet builders (the broker's
// conformance tests use the same ones).
var (
	str, varint = gatewaytest.Str, gatewaytest.Varint
	pkt, props  = gatewaytest.Pkt, gatewaytest.Props
)

func connect(level, flags byte, p5 []byte, rest ...[]byte) []byte {
	body := [][]byte{str("MQTT"), {level, flags, 0, 30}}
	if p5 != nil {
		body = append(body, p5)
	}
	return pkt(0x10, append(append(body, str("c")), rest...)...)
}

var connect5 = connect(5, 0x02, props())

func publish(p ...byte) []byte {
	return pkt(0x32, str("a/b"), []byte{0, 1}, props(p...), []byte("payload"))
}

// TestScannerVerdicts: each stream's packets get the verdicts listed, in
// order, however the stream is cut into reads.
func TestScannerVerdicts(t *testing.T) {
	for _, c := range []struct {
		name   string
		stream [][]byte
		want   []string // per packet: "" or a substring of the problem
	}{
		{"v5 clean publishes", [][]byte{connect5, publish(), publish(0x23, 0, 1), publish(0x26, 0, 1, 'a', 0, 1, 'b', 0x26, 0, 1, 'a', 0, 1, 'b')}, []string{"", "", "", ""}},
		{"v5 topic alias twice [MQTT-3.3.2-9]", [][]byte{connect5, publish(0x23, 0, 1, 0x23, 0, 2), publish()}, []string{"", "Topic Alias given more than once", ""}},
		{"v5 payload format twice", [][]byte{connect5, publish(0x01, 1, 0x01, 1)}, []string{"", "Payload Format Indicator"}},
		{"v5 message expiry twice", [][]byte{connect5, publish(0x02, 0, 0, 0, 9, 0x02, 0, 0, 0, 9)}, []string{"", "Message Expiry Interval"}},
		{"v5 response topic twice", [][]byte{connect5, publish(0x08, 0, 1, 'r', 0x08, 0, 1, 'r')}, []string{"", "Response Topic"}},
		{"v5 correlation data twice", [][]byte{connect5, publish(0x09, 0, 1, 'r', 0x09, 0, 0)}, []string{"", "Correlation Data"}},
		{"v5 content type twice", [][]byte{connect5, publish(0x03, 0, 1, 't', 0x03, 0, 1, 't')}, []string{"", "Content Type"}},
		{"v5 QoS 0 publish, no packet ID", [][]byte{connect5, pkt(0x30, str("a"), props(0x23, 0, 1, 0x23, 0, 1), []byte("x"))}, []string{"", "Topic Alias"}},
		{"v5 PUBACK reason string twice", [][]byte{connect5, pkt(0x40, []byte{0, 1, 0x10}, props(0x1F, 0, 1, 'a', 0x1F, 0, 1, 'b'))}, []string{"", "Reason String"}},
		{"v5 short PUBACK, PUBREL", [][]byte{connect5, pkt(0x40, []byte{0, 1}), pkt(0x62, []byte{0, 1, 0})}, []string{"", "", ""}},
		{"v5 SUBSCRIBE subscription identifier twice", [][]byte{connect5, pkt(0x82, []byte{0, 1}, props(0x0B, 1, 0x0B, 2), str("a"), []byte{1})}, []string{"", "Subscription Identifier"}},
		{"v5 UNSUBSCRIBE user properties", [][]byte{connect5, pkt(0xA2, []byte{0, 1}, props(0x26, 0, 0, 0, 0, 0x26, 0, 0, 0, 0), str("a"))}, []string{"", ""}},
		{"v5 DISCONNECT session expiry twice", [][]byte{connect5, pkt(0xE0, []byte{0}, props(0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 1))}, []string{"", "Session Expiry"}},
		{"v5 AUTH method twice", [][]byte{connect5, pkt(0xF0, []byte{0x18}, props(0x15, 0, 1, 'x', 0x15, 0, 1, 'x'))}, []string{"", "Authentication Method"}},
		{"v5 PINGREQ, bare DISCONNECT", [][]byte{connect5, {0xC0, 0}, {0xE0, 0}}, []string{"", "", ""}},
		{"v5 CONNECT session expiry twice", [][]byte{connect(5, 0x02, props(0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 1))}, []string{"Session Expiry"}},
		{"v5 CONNECT receive maximum 0", [][]byte{connect(5, 0x02, props(0x21, 0, 0))}, []string{"Receive Maximum 0"}},
		{"v5 CONNECT maximum packet size 0", [][]byte{connect(5, 0x02, props(0x27, 0, 0, 0, 0))}, []string{"Maximum Packet Size 0"}},
		{"v5 CONNECT will delay twice", [][]byte{connect(5, 0x06, props(), props(0x18, 0, 0, 0, 1, 0x18, 0, 0, 0, 1), str("w"), str("m"))}, []string{"will Will Delay"}},
		{"v5 CONNECT unknown property: the decoder's", [][]byte{connect(5, 0x02, props(0x7F, 0x7F, 0x7F)), publish(0x23, 0, 1, 0x23, 0, 1)}, []string{"", "Topic Alias"}},
		{"v3 nothing judged", [][]byte{connect(4, 0x02, nil), pkt(0x32, str("a"), []byte{0, 1, 3, 0x23, 0, 1, 0x23})}, []string{"", ""}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var all []byte
			for _, p := range c.stream {
				all = append(all, p...)
			}
			for cut := 0; cut <= len(all); cut++ { // every way of cutting it in two, and byte by byte
				for _, pieces := range [][][]byte{{all[:cut], all[cut:]}, bytewise(all)} {
					s := NewScanner(0)
					for _, p := range pieces {
						s.Feed(p)
					}
					for i, want := range c.want {
						p := s.Next()
						switch {
						case want == "" && p != nil:
							t.Fatalf("cut %d: packet %d: got %q; want no problem", cut, i, p.Why)
						case want != "" && (p == nil || !strings.Contains(p.Why, want) || p.Code != ProtocolError):
							t.Fatalf("cut %d: packet %d: got %+v; want 0x82 %q", cut, i, p, want)
						}
					}
				}
			}
		})
	}
}

func bytewise(b []byte) [][]byte {
	var out [][]byte
	for i := range b {
		out = append(out, b[i:i+1])
	}
	return out
}

// TestScannerTooLarge: a packet announcing more than the Maximum Packet
// Size is flagged for MQTT 5 only, before its body arrives.
func TestScannerTooLarge(t *testing.T) {
	for _, c := range []struct {
		name    string
		connect []byte
		want    bool
	}{{"v5", connect5, true}, {"v3", connect(4, 0x02, nil), false}} {
		s := NewScanner(1024)
		s.Feed(c.connect)
		s.Feed(pkt(0x30, str("a"), props(), make([]byte, 1010))) // 1,018 + 2 bytes: fits
		if s.TooLarge() {
			t.Fatalf("%s: a 1,020-byte packet is too large for 1,024", c.name)
		}
		s.Feed(append([]byte{0x30}, varint(1024)...)) // 1,025 bytes announced
		if s.TooLarge() != c.want {
			t.Errorf("%s: TooLarge = %v; want %v", c.name, s.TooLarge(), c.want)
		}
	}
}

// FuzzScanner: any stream, cut anywhere, gives the same verdicts as whole
// and never panics.
func FuzzScanner(f *testing.F) {
	f.Add(append(append([]byte{}, connect5...), publish(0x23, 0, 1, 0x23, 0, 1)...), 7)
	f.Add(connect(5, 0x06, props(), props(0x18, 0, 0, 0, 1), str("w"), str("m")), 3)
	f.Add(connect(4, 0x02, nil), 1)
	f.Fuzz(func(t *testing.T, b []byte, cut int) {
		if cut < 0 || cut > len(b) {
			cut = len(b) / 2
		}
		whole, split := NewScanner(300), NewScanner(300)
		whole.Feed(b)
		split.Feed(b[:cut])
		split.Feed(b[cut:])
		for i := range 20 {
			w, s := whole.Next(), split.Next()
			if (w == nil) != (s == nil) || w != nil && *w != *s {
				t.Fatalf("packet %d: whole %+v, split at %d %+v", i, w, cut, s)
			}
		}
		if whole.TooLarge() != split.TooLarge() {
			t.Fatal("TooLarge differs")
		}
	})
}

// BenchmarkScannerPublish: the scan's cost per MQTT 5 QoS 1 PUBLISH (64-byte
// payload, no properties; then with three properties), 32 packets per read
// as a busy connection's reads bring them.
func BenchmarkScannerPublish(b *testing.B) {
	for _, c := range []struct {
		name string
		p    []byte
	}{{"no properties", nil}, {"three properties", []byte{0x01, 1, 0x02, 0, 0, 0, 60, 0x26, 0, 1, 'k', 0, 1, 'v'}}} {
		b.Run(c.name, func(b *testing.B) {
			one := pkt(0x32, str("sensors/plant-7/temp"), []byte{0, 1}, props(c.p...), make([]byte, 64))
			var batch []byte
			for range 32 {
				batch = append(batch, one...)
			}
			s := NewScanner(256 << 10)
			s.Feed(connect5)
			s.Next()
			b.SetBytes(int64(len(one)))
			b.ResetTimer()
			for range b.N / 32 {
				s.Feed(batch)
				for range 32 {
					if s.Next() != nil {
						b.Fatal("a problem in a clean PUBLISH")
					}
				}
			}
		})
	}
}
