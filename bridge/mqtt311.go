package bridge

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/eclipse/paho.golang/packets"
)

// MQTT 3.1.1 (protocol level 4) on the wire. paho.golang's packets speak
// MQTT 5 only (every packet it writes or reads has a property section), so
// the 3.1.1 packets the session sends (CONNECT, SUBSCRIBE, UNSUBSCRIBE) are
// encoded here and every packet it reads is decoded here. PUBLISH and
// PUBACK share the session's own fast paths (appendPublish with no property
// section, readShortPuback).

// Protocol is the MQTT version a bridge speaks upstream.
type Protocol byte

// Protocols. The zero value means MQTT 5 after defaults.
const (
	MQTT311 Protocol = 4 // MQTT 3.1.1 (OASIS 2014), CONNECT protocol level 4
	MQTT5   Protocol = 5 // MQTT 5.0 (OASIS 2019)
)

// String returns the config spelling: "3.1.1" or "5".
func (p Protocol) String() string {
	switch p {
	case MQTT311:
		return "3.1.1"
	case MQTT5:
		return "5"
	}
	return fmt.Sprintf("Protocol(%d)", byte(p))
}

// ParseProtocol accepts "5", "5.0", "3.1.1" and "311".
func ParseProtocol(s string) (Protocol, error) {
	switch s {
	case "5", "5.0":
		return MQTT5, nil
	case "3.1.1", "311":
		return MQTT311, nil
	}
	return 0, fmt.Errorf("protocol %q: want 5 or 3.1.1", s)
}

// ConnackError is an upstream's refusal of our CONNECT: a CONNACK with a
// 3.1.1 return code other than 0, or an MQTT 5 reason code >= 0x80.
type ConnackError struct {
	Upstream string   // host:port
	Protocol Protocol // the version the CONNACK was read as
	Code     byte
	Reason   string // the code's meaning, with the server's reason string if any
}

func (e *ConnackError) Error() string {
	return fmt.Sprintf("%s refused the connection: CONNACK 0x%02x %s", e.Upstream, e.Code, e.Reason)
}

// Is lets callers test for the two refusals an operator acts on.
func (e *ConnackError) Is(target error) bool {
	switch target {
	case ErrBadCredentials:
		return (e.Protocol == MQTT311 && e.Code == 4) || (e.Protocol == MQTT5 && e.Code == 0x86)
	case ErrNotAuthorized:
		return (e.Protocol == MQTT311 && e.Code == 5) || (e.Protocol == MQTT5 && e.Code == 0x87)
	}
	return false
}

// Sentinels a *ConnackError matches with errors.Is.
var (
	ErrBadCredentials = errors.New("upstream refused the user name or password")
	ErrNotAuthorized  = errors.New("upstream refused: not authorized")
)

// connack311Reason explains a 3.1.1 CONNACK return code [MQTT-3.2.2.3] and
// what the operator can do about it.
func connack311Reason(code byte) string {
	switch code {
	case 1:
		return "unacceptable protocol version: the upstream does not speak MQTT 3.1.1 (try protocol: 5)"
	case 2:
		return "identifier rejected: the upstream refuses this client_id"
	case 3:
		return "server unavailable: the upstream's MQTT service is down; retrying"
	case 4:
		return "bad user name or password: check username and password_file"
	case 5:
		return "not authorized: the upstream refuses this identity (check the client certificate, or username and password_file, and the upstream's ACL)"
	}
	return "unknown return code (protocol error)"
}

// append311Connect encodes a 3.1.1 CONNECT [MQTT-3.1]. Clean Session 0: the
// upstream keeps our subscriptions and the QoS 1 messages for them while we
// are away [MQTT-3.1.2-4].
func append311Connect(dst []byte, clientID, user string, pass []byte, userSet, passSet bool, keepAlive uint16) []byte {
	flags := byte(0)
	rem := 10 + 2 + len(clientID)
	if userSet {
		flags |= 0x80
		rem += 2 + len(user)
	}
	if passSet {
		flags |= 0x40
		rem += 2 + len(pass)
	}
	dst = append(dst, packets.CONNECT<<4)
	dst = appendVBI(dst, rem)
	dst = appendString(dst, "MQTT")
	dst = append(dst, 4, flags, byte(keepAlive>>8), byte(keepAlive))
	dst = appendString(dst, clientID)
	if userSet {
		dst = appendString(dst, user)
	}
	if passSet {
		dst = append(dst, byte(len(pass)>>8), byte(len(pass)))
		dst = append(dst, pass...)
	}
	return dst
}

// append311Subscribe encodes a 3.1.1 SUBSCRIBE [MQTT-3.8]: no options byte
// beyond the requested QoS (no No Local: see the package doc).
func append311Subscribe(dst []byte, id uint16, subs []packets.SubOptions) []byte {
	rem := 2
	for _, s := range subs {
		rem += 2 + len(s.Topic) + 1
	}
	dst = append(dst, packets.SUBSCRIBE<<4|2)
	dst = appendVBI(dst, rem)
	dst = append(dst, byte(id>>8), byte(id))
	for _, s := range subs {
		dst = appendString(dst, s.Topic)
		dst = append(dst, s.QoS)
	}
	return dst
}

// append311Unsubscribe encodes a 3.1.1 UNSUBSCRIBE [MQTT-3.10].
func append311Unsubscribe(dst []byte, id uint16, topics []string) []byte {
	rem := 2
	for _, t := range topics {
		rem += 2 + len(t)
	}
	dst = append(dst, packets.UNSUBSCRIBE<<4|2)
	dst = appendVBI(dst, rem)
	dst = append(dst, byte(id>>8), byte(id))
	for _, t := range topics {
		dst = appendString(dst, t)
	}
	return dst
}

// maxInbound311 bounds the remaining length of a 3.1.1 packet we read: the
// reader allocates it, and an upstream announcing 256 MB must not make the
// gateway do so. Cloud commands are small; the clouds' own limits are
// 128-256 KB.
const maxInbound311 = 16 << 20

// packet311 is one 3.1.1 packet as read: its type, the flags of the fixed
// header and the body after the remaining length.
type packet311 struct {
	typ, flags byte
	body       []byte
}

// errMalformed311 marks a packet that does not follow MQTT 3.1.1.
var errMalformed311 = errors.New("malformed MQTT 3.1.1 packet")

// read311 reads one packet [MQTT-2.2].
func read311(r *bufio.Reader) (packet311, error) {
	h, err := r.ReadByte()
	if err != nil {
		return packet311{}, err
	}
	n, mult := 0, 1
	for i := 0; ; i++ {
		if i == 4 {
			return packet311{}, fmt.Errorf("%w: remaining length longer than 4 bytes", errMalformed311)
		}
		b, err := r.ReadByte()
		if err != nil {
			return packet311{}, noEOF(err)
		}
		n += int(b&0x7f) * mult
		mult *= 128
		if b&0x80 == 0 {
			break
		}
	}
	if n > maxInbound311 {
		return packet311{}, fmt.Errorf("%w: %d bytes announced, more than the %d the bridge reads", errMalformed311, n, maxInbound311)
	}
	p := packet311{typ: h >> 4, flags: h & 0x0f, body: make([]byte, n)}
	if _, err := io.ReadFull(r, p.body); err != nil {
		return packet311{}, noEOF(err)
	}
	return p, nil
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// connack311 decodes a CONNACK body: session present and return code.
func (p packet311) connack() (sessionPresent bool, code byte, err error) {
	if p.typ != packets.CONNACK || len(p.body) != 2 || p.body[0]&^1 != 0 {
		return false, 0, fmt.Errorf("%w: CONNACK expected, got type %d with %d bytes", errMalformed311, p.typ, len(p.body))
	}
	return p.body[0] == 1, p.body[1], nil
}

// publish decodes a PUBLISH [MQTT-3.3] into paho's struct (the inbound path
// is shared with MQTT 5). The payload aliases the body.
func (p packet311) publish() (*packets.Publish, error) {
	qos := (p.flags >> 1) & 3
	if qos == 3 {
		return nil, fmt.Errorf("%w: PUBLISH with QoS 3", errMalformed311)
	}
	b := p.body
	if len(b) < 2 {
		return nil, fmt.Errorf("%w: PUBLISH too short", errMalformed311)
	}
	tl := int(b[0])<<8 | int(b[1])
	b = b[2:]
	if len(b) < tl {
		return nil, fmt.Errorf("%w: PUBLISH topic longer than the packet", errMalformed311)
	}
	pub := &packets.Publish{Topic: string(b[:tl]), QoS: qos, Retain: p.flags&1 != 0, Duplicate: p.flags&8 != 0}
	b = b[tl:]
	if qos > 0 {
		if len(b) < 2 {
			return nil, fmt.Errorf("%w: PUBLISH without packet identifier", errMalformed311)
		}
		pub.PacketID = uint16(b[0])<<8 | uint16(b[1])
		b = b[2:]
		if pub.PacketID == 0 {
			return nil, fmt.Errorf("%w: PUBLISH with packet identifier 0", errMalformed311)
		}
	}
	if pub.Topic == "" {
		return nil, fmt.Errorf("%w: PUBLISH with an empty topic", errMalformed311)
	}
	pub.Payload = b
	return pub, nil
}

// ackID decodes the packet identifier of a SUBACK, UNSUBACK or PUBACK and
// returns the rest (SUBACK return codes).
func (p packet311) ackID() (uint16, []byte, error) {
	if len(p.body) < 2 {
		return 0, nil, fmt.Errorf("%w: acknowledgement without packet identifier", errMalformed311)
	}
	return uint16(p.body[0])<<8 | uint16(p.body[1]), p.body[2:], nil
}
