package wire

import "fmt"

// Reason codes the Scanner gives (MQTT 5 section 2.4).
const (
	ProtocolError  byte = 0x82
	PacketTooLarge byte = 0x95
)

// A Problem is why a packet is refused: the MQTT 5 reason code and what
// is wrong.
type Problem struct {
	Code byte
	Why  string
}

// reader reads MQTT's encodings; past the end it sets short and returns 0.
type reader struct {
	b     []byte
	i     int
	short bool
}

func (r *reader) skip(n int) {
	if n < 0 || n > len(r.b)-r.i {
		r.short, r.i = true, len(r.b)
		return
	}
	r.i += n
}

func (r *reader) byte() byte {
	if r.i >= len(r.b) {
		r.short = true
		return 0
	}
	r.i++
	return r.b[r.i-1]
}

func (r *reader) uint16() uint16 { return uint16(r.byte())<<8 | uint16(r.byte()) }

func (r *reader) uint32() uint32 { return uint32(r.uint16())<<16 | uint32(r.uint16()) }

// varint reads a Variable Byte Integer; ok false: malformed (five bytes).
func (r *reader) varint() (n int, ok bool) {
	mult := 1
	for range 4 {
		b := r.byte()
		n += int(b&0x7f) * mult
		if b&0x80 == 0 {
			return n, true
		}
		mult *= 128
	}
	return 0, false
}

// propKind is how a property's value is encoded.
type propKind byte

const (
	unknown propKind = iota
	oneByte
	twoBytes
	fourBytes
	varInt
	lenPrefixed // UTF-8 string or binary data
	stringPair
)

// kinds maps each MQTT 5 property identifier to its encoding (MQTT 5
// section 2.2.2.2).
var kinds = [256]propKind{
	0x01: oneByte, 0x17: oneByte, 0x19: oneByte, 0x24: oneByte, 0x25: oneByte, 0x28: oneByte, 0x29: oneByte, 0x2A: oneByte,
	0x13: twoBytes, 0x21: twoBytes, 0x22: twoBytes, 0x23: twoBytes,
	0x02: fourBytes, 0x11: fourBytes, 0x18: fourBytes, 0x27: fourBytes,
	0x0B: varInt,
	0x03: lenPrefixed, 0x08: lenPrefixed, 0x09: lenPrefixed, 0x12: lenPrefixed, 0x15: lenPrefixed,
	0x16: lenPrefixed, 0x1A: lenPrefixed, 0x1C: lenPrefixed, 0x1F: lenPrefixed,
	0x26: stringPair,
}

// propNames names the properties a Problem may mention.
var propNames = map[byte]string{
	0x01: "Payload Format Indicator", 0x02: "Message Expiry Interval", 0x03: "Content Type",
	0x08: "Response Topic", 0x09: "Correlation Data", 0x0B: "Subscription Identifier",
	0x11: "Session Expiry Interval", 0x15: "Authentication Method", 0x16: "Authentication Data",
	0x17: "Request Problem Information", 0x18: "Will Delay Interval", 0x19: "Request Response Information",
	0x1F: "Reason String", 0x21: "Receive Maximum", 0x22: "Topic Alias Maximum", 0x23: "Topic Alias",
	0x27: "Maximum Packet Size",
}

func propName(id byte) string {
	if n, ok := propNames[id]; ok {
		return n
	}
	return fmt.Sprintf("property 0x%02x", id)
}

// properties reads a property section at r (its length first). It returns
// a problem, or complete false when r ran out before the section's end
// (more bytes may follow) or the section is not readable (left to the
// decoder). connect adds CONNECT's zero checks.
func (r *reader) properties(connect bool) (p *Problem, complete bool) {
	n, ok := r.varint()
	if !ok {
		return nil, true // malformed length: the decoder refuses it
	}
	if r.short {
		return nil, false
	}
	end := r.i + n
	if end > len(r.b) {
		r.short = true
		return nil, false
	}
	pr := reader{b: r.b[r.i:end]}
	r.i = end
	// seen: one bit per identifier; a section rarely holds more than a few.
	var seen [4]uint64
	for pr.i < len(pr.b) {
		id := pr.byte()
		k := kinds[id]
		if k == unknown {
			return nil, true // not a property: the decoder refuses it
		}
		if k != stringPair {
			if seen[id>>6]&(1<<(id&63)) != 0 {
				return &Problem{ProtocolError, propName(id) + " given more than once"}, true
			}
			seen[id>>6] |= 1 << (id & 63)
		}
		switch k {
		case oneByte:
			pr.skip(1)
		case twoBytes:
			if v := pr.uint16(); connect && id == 0x21 && v == 0 && !pr.short {
				return &Problem{ProtocolError, "Receive Maximum 0"}, true
			}
		case fourBytes:
			if v := pr.uint32(); connect && id == 0x27 && v == 0 && !pr.short {
				return &Problem{ProtocolError, "Maximum Packet Size 0"}, true
			}
		case varInt:
			if _, ok := pr.varint(); !ok {
				return nil, true
			}
		case lenPrefixed:
			pr.skip(int(pr.uint16()))
		case stringPair:
			pr.skip(int(pr.uint16()))
			pr.skip(int(pr.uint16()))
		}
		if pr.short {
			return nil, true // a value past its section: malformed, the decoder's
		}
	}
	return nil, true
}
