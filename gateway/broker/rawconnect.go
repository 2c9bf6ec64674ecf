package broker

import "fmt"

// What mochi's decoded CONNECT cannot tell: an MQTT 5 property given twice
// (only User Property may repeat; for every other one "it is a Protocol
// Error to include it more than once", MQTT 5 section 3.1.2.11) and Receive Maximum or Maximum Packet Size given as 0
// (a Protocol Error, MQTT 5 sections 3.1.2.11.3 and 3.1.2.11.4). mochi
// keeps the last value and no presence flag for these, so guardConn keeps
// the bytes read before CONNECT (at most maxConnectCapture) and the hook
// reads the CONNECT's property block from them.

// maxConnectCapture bounds the bytes guardConn keeps until CONNECT is read;
// a larger CONNECT is not checked here.
const maxConnectCapture = 4096

// connectPropsProblem says what is wrong with the properties of the MQTT 5
// CONNECT at the start of raw ("" if nothing, or if raw does not hold a
// whole CONNECT property block).
func connectPropsProblem(raw []byte) string {
	r := rawReader{b: raw}
	if r.byte() != 0x10 {
		return ""
	}
	r.varint() // remaining length
	r.skip(int(r.uint16()))
	if r.byte() != 5 {
		return ""
	}
	r.skip(3) // flags, keepalive
	n := r.varint()
	if r.bad || n > len(r.b)-r.i {
		return ""
	}
	p := rawReader{b: r.b[r.i : r.i+n]}
	var seen [256]bool
	for p.i < len(p.b) && !p.bad {
		id := p.byte()
		if id != 0x26 && seen[id] {
			return fmt.Sprintf("property 0x%02x given more than once", id)
		}
		seen[id] = true
		switch id {
		case 0x11, 0x27: // Session Expiry Interval, Maximum Packet Size
			v := p.uint32()
			if id == 0x27 && v == 0 && !p.bad {
				return "Maximum Packet Size 0"
			}
		case 0x21, 0x22: // Receive Maximum, Topic Alias Maximum
			v := p.uint16()
			if id == 0x21 && v == 0 && !p.bad {
				return "Receive Maximum 0"
			}
		case 0x17, 0x19: // Request Problem / Response Information
			p.skip(1)
		case 0x15, 0x16: // Authentication Method, Authentication Data
			p.skip(int(p.uint16()))
		case 0x26: // User Property
			p.skip(int(p.uint16()))
			p.skip(int(p.uint16()))
		default:
			return "" // mochi decoded it: leave anything else to mochi
		}
	}
	return ""
}

// rawReader reads MQTT's encodings; past the end it sets bad and returns 0.
type rawReader struct {
	b   []byte
	i   int
	bad bool
}

func (r *rawReader) skip(n int) {
	if n < 0 || n > len(r.b)-r.i {
		r.bad, r.i = true, len(r.b)
		return
	}
	r.i += n
}

func (r *rawReader) byte() byte {
	if r.i >= len(r.b) {
		r.bad = true
		return 0
	}
	r.i++
	return r.b[r.i-1]
}

func (r *rawReader) uint16() uint16 { return uint16(r.byte())<<8 | uint16(r.byte()) }

func (r *rawReader) uint32() uint32 { return uint32(r.uint16())<<16 | uint32(r.uint16()) }

func (r *rawReader) varint() int {
	n, mult := 0, 1
	for range 4 {
		b := r.byte()
		n += int(b&0x7f) * mult
		if b&0x80 == 0 {
			return n
		}
		mult *= 128
	}
	r.bad = true
	return 0
}
