package wire

// maxHold bounds the bytes a Scanner keeps of a packet that arrives in
// pieces, until its property sections are whole; a packet whose checked
// prefix is longer is left unchecked (see the package doc).
const maxHold = 64 << 10

// Scanner states.
const (
	atFirst  = iota // the next byte is a packet's first byte
	atLength        // reading the remaining length
	inBody          // reading the packet's remaining bytes
)

// A Scanner judges one connection's packets from its bytes. Feed and Next
// are called by one goroutine, the connection's reader (no locking).
type Scanner struct {
	max      uint32 // Maximum Packet Size the broker enforces (0: none)
	v5       bool   // the CONNECT said MQTT 5
	stopped  bool   // nothing more to judge (see Feed)
	tooLarge bool
	state    int
	first    byte
	length   int // remaining length read so far
	mult     int
	lenBytes int
	total    int // the current packet's remaining length
	remain   int // its bytes still to come
	checking bool
	hold     []byte
	seq      uint64 // packets whose fixed header was read
	taken    uint64 // packets Next has judged
	verdicts []verdict
}

type verdict struct {
	seq uint64
	p   Problem
}

// NewScanner returns a Scanner for a connection on which packets over
// maxPacketSize bytes (0: no limit) are refused.
func NewScanner(maxPacketSize uint32) *Scanner {
	return &Scanner{max: maxPacketSize, mult: 1}
}

// TooLarge reports whether an MQTT 5 client announced a packet over the
// Maximum Packet Size. The decoder refuses it; the caller owes the client
// DISCONNECT 0x95 before closing. After it, Feed reads nothing more.
func (s *Scanner) TooLarge() bool { return s.tooLarge }

// Feed reads the next bytes of the stream. It stops for good at a packet
// over the Maximum Packet Size, at a remaining length the decoder will
// refuse anyway, and after an MQTT 3.1.1 CONNECT (nothing to judge).
func (s *Scanner) Feed(p []byte) {
	for len(p) > 0 && !s.stopped {
		switch s.state {
		case atFirst:
			s.first, p = p[0], p[1:]
			s.length, s.mult, s.lenBytes, s.state = 0, 1, 0, atLength
		case atLength:
			d := p[0]
			p = p[1:]
			s.length += int(d&0x7f) * s.mult
			s.mult *= 128
			s.lenBytes++
			if d&0x80 != 0 {
				s.stopped = s.lenBytes == 4 // five length bytes: malformed
				continue
			}
			s.startBody()
		case inBody:
			k := min(s.remain, len(p))
			if s.checking {
				s.check(p[:k], k == s.remain)
			}
			s.remain -= k
			p = p[k:]
			if s.remain == 0 {
				s.endPacket()
			}
		}
	}
}

func (s *Scanner) startBody() {
	s.seq++
	s.total, s.remain = s.length, s.length
	if s.max > 0 && uint32(s.total+1) > s.max {
		s.tooLarge, s.stopped = s.v5, true // DISCONNECT 0x95 is MQTT 5's
		return
	}
	typ := s.first >> 4
	s.checking = s.seq == 1 && typ == 1 || s.v5 && s.seq > 1 && hasProperties(typ)
	s.state = inBody
	if s.remain == 0 {
		if s.checking {
			s.judge(nil, true)
		}
		s.endPacket()
	}
}

func (s *Scanner) endPacket() {
	s.state, s.checking = atFirst, false
	if cap(s.hold) > 4096 {
		s.hold = nil
	}
	s.hold = s.hold[:0]
	if s.seq == 1 && !s.v5 {
		s.stopped = true // MQTT 3.1.1 (or not MQTT): no property sections
	}
}

// check judges the packet with b, the next piece of its body; last: b
// ends the packet.
func (s *Scanner) check(b []byte, last bool) {
	first := len(s.hold) == 0
	if first && s.judge(b, last) {
		return // judged in place, the common case
	}
	if len(s.hold)+len(b) > maxHold {
		s.checking, s.hold = false, s.hold[:0]
		return
	}
	s.hold = append(s.hold, b...)
	if !first {
		s.judge(s.hold, last)
	}
}

// judge checks body (the packet's body so far; whole: all of it) and
// reports whether the verdict is in (checking then stops).
func (s *Scanner) judge(body []byte, whole bool) bool {
	p, done := s.inspect(body, whole)
	if !done && !whole {
		return false
	}
	s.checking = false
	if p != nil {
		s.verdicts = append(s.verdicts, verdict{s.seq, *p})
	}
	return true
}

// Next returns the verdict on the next packet the caller decoded, in
// order (nil: nothing wrong that the Scanner can see).
func (s *Scanner) Next() *Problem {
	s.taken++
	if len(s.verdicts) > 0 && s.verdicts[0].seq == s.taken {
		p := s.verdicts[0].p
		s.verdicts = s.verdicts[1:]
		return &p
	}
	return nil
}

// hasProperties: the MQTT 5 packet types a client sends that carry a
// property section (CONNECT aside).
func hasProperties(typ byte) bool {
	switch typ {
	case 3, 4, 5, 6, 7, 8, 10, 14, 15:
		return true
	}
	return false
}

// inspect reads the property sections of the current packet from body.
// done false: body ends before them.
func (s *Scanner) inspect(body []byte, whole bool) (p *Problem, done bool) {
	r := reader{b: body}
	switch typ := s.first >> 4; typ {
	case 1: // CONNECT
		return s.inspectConnect(&r)
	case 3: // PUBLISH: topic, packet ID when QoS > 0
		r.skip(int(r.uint16()))
		if s.first&0x06 != 0 {
			r.skip(2)
		}
	case 4, 5, 6, 7: // PUBACK, PUBREC, PUBREL, PUBCOMP: properties only after a reason code
		if s.total < 4 {
			return nil, true
		}
		r.skip(3)
	case 8, 10: // SUBSCRIBE, UNSUBSCRIBE
		r.skip(2)
	case 14, 15: // DISCONNECT, AUTH
		if s.total < 2 {
			return nil, true
		}
		r.skip(1)
	default:
		return nil, true
	}
	if r.short {
		return nil, false
	}
	p, complete := r.properties(false)
	return p, complete || whole
}

// inspectConnect reads CONNECT: the level (MQTT 5 or not), the properties
// and the will properties.
func (s *Scanner) inspectConnect(r *reader) (*Problem, bool) {
	r.skip(int(r.uint16())) // protocol name
	level := r.byte()
	flags := r.byte()
	r.skip(2) // keep alive
	if r.short {
		return nil, false
	}
	if s.v5 = level == 5; !s.v5 {
		return nil, true
	}
	p, complete := r.properties(true)
	if p != nil || !complete {
		return p, complete
	}
	if flags&0x04 == 0 {
		return nil, true
	}
	r.skip(int(r.uint16())) // client ID
	if r.short {
		return nil, false
	}
	p, complete = r.properties(false) // will properties
	if p != nil {
		p.Why = "will " + p.Why
	}
	return p, complete
}
