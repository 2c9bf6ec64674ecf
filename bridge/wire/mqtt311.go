package wire

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/eclipse/paho.golang/packets"
)

// MQTT 3.1.1 (protocol level 4) on the wire: the packets a client sends
// other than PUBLISH (AppendPublish with V311) and a reader for every packet
// it receives. PUBACKs usually take ReadShortPuback first.

// AppendConnect311 encodes a 3.1.1 CONNECT [MQTT-3.1]. Clean Session 0: the
// upstream keeps our subscriptions and the QoS 1 messages for them while we
// are away [MQTT-3.1.2-4].
func AppendConnect311(dst []byte, clientID, user string, pass []byte, userSet, passSet bool, keepAlive uint16) []byte {
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
	dst = AppendVBI(dst, rem)
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

// AppendSubscribe311 encodes a 3.1.1 SUBSCRIBE [MQTT-3.8]: no options byte
// beyond the requested QoS (3.1.1 has no No Local).
func AppendSubscribe311(dst []byte, id uint16, subs []packets.SubOptions) []byte {
	rem := 2
	for _, s := range subs {
		rem += 2 + len(s.Topic) + 1
	}
	dst = append(dst, packets.SUBSCRIBE<<4|2)
	dst = AppendVBI(dst, rem)
	dst = append(dst, byte(id>>8), byte(id))
	for _, s := range subs {
		dst = appendString(dst, s.Topic)
		dst = append(dst, s.QoS)
	}
	return dst
}

// AppendUnsubscribe311 encodes a 3.1.1 UNSUBSCRIBE [MQTT-3.10].
func AppendUnsubscribe311(dst []byte, id uint16, topics []string) []byte {
	rem := 2
	for _, t := range topics {
		rem += 2 + len(t)
	}
	dst = append(dst, packets.UNSUBSCRIBE<<4|2)
	dst = AppendVBI(dst, rem)
	dst = append(dst, byte(id>>8), byte(id))
	for _, t := range topics {
		dst = appendString(dst, t)
	}
	return dst
}

// MaxInbound311 bounds the remaining length of a 3.1.1 packet we read: the
// reader allocates it, and an upstream announcing 256 MB must not make the
// gateway do so. Cloud commands are small; the clouds' own limits are
// 128-256 KB.
const MaxInbound311 = 16 << 20

// Packet311 is one 3.1.1 packet as read: its type, the flags of the fixed
// header and the body after the remaining length.
type Packet311 struct {
	Type, Flags byte
	Body        []byte
}

// ErrMalformed311 marks a packet that does not follow MQTT 3.1.1.
var ErrMalformed311 = errors.New("malformed MQTT 3.1.1 packet")

// Read311 reads one packet [MQTT-2.2].
func Read311(r *bufio.Reader) (Packet311, error) {
	h, err := r.ReadByte()
	if err != nil {
		return Packet311{}, err
	}
	n, mult := 0, 1
	for i := 0; ; i++ {
		if i == 4 {
			return Packet311{}, fmt.Errorf("%w: remaining length longer than 4 bytes", ErrMalformed311)
		}
		b, err := r.ReadByte()
		if err != nil {
			return Packet311{}, noEOF(err)
		}
		n += int(b&0x7f) * mult
		mult *= 128
		if b&0x80 == 0 {
			break
		}
	}
	if n > MaxInbound311 {
		return Packet311{}, fmt.Errorf("%w: %d bytes announced, more than the %d read here", ErrMalformed311, n, MaxInbound311)
	}
	p := Packet311{Type: h >> 4, Flags: h & 0x0f, Body: make([]byte, n)}
	if _, err := io.ReadFull(r, p.Body); err != nil {
		return Packet311{}, noEOF(err)
	}
	return p, nil
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Connack decodes a CONNACK body: session present and return code.
func (p Packet311) Connack() (sessionPresent bool, code byte, err error) {
	if p.Type != packets.CONNACK || len(p.Body) != 2 || p.Body[0]&^1 != 0 {
		return false, 0, fmt.Errorf("%w: CONNACK expected, got type %d with %d bytes", ErrMalformed311, p.Type, len(p.Body))
	}
	return p.Body[0] == 1, p.Body[1], nil
}

// Publish decodes a PUBLISH [MQTT-3.3] into paho's struct (the inbound path
// is shared with MQTT 5). The payload aliases the body.
func (p Packet311) Publish() (*packets.Publish, error) {
	qos := (p.Flags >> 1) & 3
	if qos == 3 {
		return nil, fmt.Errorf("%w: PUBLISH with QoS 3", ErrMalformed311)
	}
	b := p.Body
	if len(b) < 2 {
		return nil, fmt.Errorf("%w: PUBLISH too short", ErrMalformed311)
	}
	tl := int(b[0])<<8 | int(b[1])
	b = b[2:]
	if len(b) < tl {
		return nil, fmt.Errorf("%w: PUBLISH topic longer than the packet", ErrMalformed311)
	}
	pub := &packets.Publish{Topic: string(b[:tl]), QoS: qos, Retain: p.Flags&1 != 0, Duplicate: p.Flags&8 != 0}
	b = b[tl:]
	if qos > 0 {
		if len(b) < 2 {
			return nil, fmt.Errorf("%w: PUBLISH without packet identifier", ErrMalformed311)
		}
		pub.PacketID = uint16(b[0])<<8 | uint16(b[1])
		b = b[2:]
		if pub.PacketID == 0 {
			return nil, fmt.Errorf("%w: PUBLISH with packet identifier 0", ErrMalformed311)
		}
	}
	if pub.Topic == "" {
		return nil, fmt.Errorf("%w: PUBLISH with an empty topic", ErrMalformed311)
	}
	pub.Payload = b
	return pub, nil
}

// AckID decodes the packet identifier of a SUBACK, UNSUBACK or PUBACK and
// returns the rest (SUBACK return codes).
func (p Packet311) AckID() (uint16, []byte, error) {
	if len(p.Body) < 2 {
		return 0, nil, fmt.Errorf("%w: acknowledgement without packet identifier", ErrMalformed311)
	}
	return uint16(p.Body[0])<<8 | uint16(p.Body[1]), p.Body[2:], nil
}
