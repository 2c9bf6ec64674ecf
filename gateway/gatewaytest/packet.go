package gatewaytest

import "github.com/edgegw/edgegw/bridge/wire"

// Raw MQTT packet builders, for tests that feed malformed or hand-made
// packets to the broker or its packet scanner.

// Str is an MQTT UTF-8 string: two bytes of length, then s.
func Str(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }

// Varint is n as an MQTT variable byte integer.
func Varint(n int) []byte { return wire.AppendVBI(nil, n) }

// Pkt is a packet: first byte, remaining length, body.
func Pkt(first byte, body ...[]byte) []byte {
	var all []byte
	for _, b := range body {
		all = append(all, b...)
	}
	return append(append([]byte{first}, Varint(len(all))...), all...)
}

// Props is an MQTT 5 property block: its length, then p.
func Props(p ...byte) []byte { return append(Varint(len(p)), p...) }
