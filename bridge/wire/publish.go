package wire

import (
	"bufio"
	"strconv"

	"github.com/eclipse/paho.golang/packets"
)

// Publish is one PUBLISH for AppendPublish.
type Publish struct {
	// The topic name is TopicPrefix followed by Topic, written as one
	// string: a route's remote prefix and the rest of the local topic need
	// no copy joined for every message.
	TopicPrefix string
	Topic       string
	Payload     []byte
	QoS         byte
	ID          uint16 // packet identifier; written for QoS 1 and 2 only
	Retain      bool
	V311        bool // MQTT 3.1.1: no property section
	// MQTT 5 user properties, each written only when its key is set:
	// DeviceKey=Device, then SeqKey=<Seq in decimal>.
	DeviceKey, Device string
	SeqKey            string
	Seq               uint64
}

// AppendPublish appends p encoded as a PUBLISH (section 3.3) to dst without
// allocating beyond dst's growth: in MQTT 5 with the user properties p
// names (an empty property section when it names none), in 3.1.1 without a
// property section.
func AppendPublish(dst []byte, p Publish) []byte {
	var seqBuf [20]byte
	seq := strconv.AppendUint(seqBuf[:0], p.Seq, 10)
	propLen := 0
	if p.DeviceKey != "" {
		propLen += 1 + 2 + len(p.DeviceKey) + 2 + len(p.Device)
	}
	if p.SeqKey != "" {
		propLen += 1 + 2 + len(p.SeqKey) + 2 + len(seq)
	}
	propSection := vbiLen(propLen) + propLen
	if p.V311 {
		propSection = 0
	}
	topicLen := len(p.TopicPrefix) + len(p.Topic)
	rem := 2 + topicLen + propSection + len(p.Payload)
	if p.QoS > 0 {
		rem += 2
	}
	flags := p.QoS << 1
	if p.Retain {
		flags |= 1
	}
	dst = append(dst, packets.PUBLISH<<4|flags)
	dst = AppendVBI(dst, rem)
	dst = append(dst, byte(topicLen>>8), byte(topicLen))
	dst = append(dst, p.TopicPrefix...)
	dst = append(dst, p.Topic...)
	if p.QoS > 0 {
		dst = append(dst, byte(p.ID>>8), byte(p.ID))
	}
	if p.V311 {
		return append(dst, p.Payload...)
	}
	dst = AppendVBI(dst, propLen)
	if p.DeviceKey != "" {
		dst = append(dst, packets.PropUser)
		dst = appendString(dst, p.DeviceKey)
		dst = appendString(dst, p.Device)
	}
	if p.SeqKey != "" {
		dst = append(dst, packets.PropUser)
		dst = appendString(dst, p.SeqKey)
		dst = append(dst, byte(len(seq)>>8), byte(len(seq)))
		dst = append(dst, seq...)
	}
	return append(dst, p.Payload...)
}

// ReadShortPuback reads a PUBACK without properties (remaining length 2,
// 3, or 4 with a zero property length: what brokers send for nearly every
// acknowledgement, and every 3.1.1 PUBACK) straight from the read buffer.
// ok is false, with nothing consumed, for any other packet: the caller
// reads it with its protocol's general reader.
func ReadShortPuback(br *bufio.Reader) (id uint16, code byte, ok bool, err error) {
	h, err := br.Peek(2)
	if err != nil {
		return 0, 0, false, err
	}
	if h[0] != packets.PUBACK<<4 || h[1] < 2 || h[1] > 4 {
		return 0, 0, false, nil
	}
	n := 2 + int(h[1])
	b, err := br.Peek(n)
	if err != nil {
		return 0, 0, false, err
	}
	if n == 6 && b[5] != 0 {
		return 0, 0, false, nil // properties follow: the general reader
	}
	id = uint16(b[2])<<8 | uint16(b[3])
	if n >= 5 {
		code = b[4]
	}
	_, _ = br.Discard(n)
	return id, code, true, nil
}

// appendString appends s as an MQTT UTF-8 string: a two-byte length, then
// the bytes (MQTT 5 section 1.5.4).
func appendString(dst []byte, s string) []byte {
	dst = append(dst, byte(len(s)>>8), byte(len(s)))
	return append(dst, s...)
}

// vbiLen is the length of n as a Variable Byte Integer (MQTT 5 section 1.5.5).
func vbiLen(n int) int {
	switch {
	case n < 128:
		return 1
	case n < 16384:
		return 2
	case n < 2097152:
		return 3
	}
	return 4
}

// AppendVBI appends n as a Variable Byte Integer (MQTT 5 section 1.5.5): the one
// encoder of it for the bridge, the load tool and the test packet builders.
func AppendVBI(dst []byte, n int) []byte {
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		dst = append(dst, b)
		if n == 0 {
			return dst
		}
	}
}
