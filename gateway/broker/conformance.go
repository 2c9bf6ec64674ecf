package broker

import (
	"fmt"
	"strings"
	"unicode/utf8"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw/gateway/broker/listen"
)

// Packet checks mochi v2.7.9 skips, done in OnPacketRead after mochi has
// decoded a packet (strings are valid UTF-8 without U+0000 by then) and
// before it acts on it. A refused packet is answered the way the
// specification of the client's protocol version requires, and the
// connection is closed by returning errProtocol:
//
//   - CONNECT, both versions: an unknown protocol level gets the 3.1.1 CONNACK
//     return code 1 [MQTT-3.1.2-2]; a wrong protocol name, the reserved flag
//     [MQTT-3.1.2-3], a Will QoS or Will Retain without the Will Flag, Will
//     QoS 3 close the connection (mochi answered 3.1.1 clients with MQTT 5
//     codes). 3.1.1 only: a password without a user name [MQTT-3.1.2-22]
//     closes it, an empty client ID with clean session 0 gets return code 2
//     [MQTT-3.1.3-8]. MQTT 5 only: an Authentication Method (the broker
//     supports none) gets CONNACK 0x8C [MQTT-4.12.0-1]; Request Problem /
//     Response Information other than 0 or 1 get 0x82.
//   - every MQTT 5 packet a client sends: what the connection's
//     wire.Scanner found in the raw bytes (a property given twice, in
//     CONNECT also Receive Maximum or Maximum Packet Size 0) gets CONNACK or
//     DISCONNECT 0x82, before anything else is checked, so a PUBLISH with a
//     Topic Alias twice is neither delivered, retained, queued nor
//     acknowledged [MQTT-3.3.2-9] (see package wire).
//   - SUBSCRIBE and UNSUBSCRIBE: a filter with '+' or '#' not alone in its
//     level, '#' not last, or an empty filter [MQTT-4.7.1-2], [MQTT-4.7.1-3],
//     [MQTT-4.7.3-1]; MQTT 5 also a shared filter without share name or
//     filter, or with a wildcard in the share name [MQTT-4.8.2-1],
//     [MQTT-4.8.2-2]; No Local on a shared subscription [MQTT-3.8.3-4],
//     Retain Handling 3, Subscription Identifier 0: MQTT 5 gets DISCONNECT
//     0x81 (malformed) or 0x82 (protocol error), 3.1.1 a closed connection
//     (3.1.1 section 4.8).
//   - PUBLISH: DUP set on QoS 0 [MQTT-3.3.1-2]; MQTT 5: a topic alias that
//     maps nothing with an empty topic name gets DISCONNECT 0x82.
//   - AUTH: the broker accepts no Authentication Method, so an AUTH is a
//     protocol error (MQTT 5 section 4.12: DISCONNECT 0x82); 3.1.1 has no
//     AUTH packet type.
//
// mochi's Hooks.OnPacketRead drops every hook error except one wrapping
// packets.ErrRejectPacket, which ends the client's read loop (or the
// connect) and closes the connection: errProtocol wraps it.
var errProtocol = fmt.Errorf("protocol violation refused by the broker: %w", packets.ErrRejectPacket)

// conformance checks pk (see above); nil lets mochi go on.
func (b *Broker) conformance(cl *mqtt.Client, pk *packets.Packet) error {
	if gc, ok := cl.Net.Conn.(*listen.Conn); ok {
		if p := gc.Verdict(); p != nil {
			b.log.Debug("packet refused", "remote", cl.Net.Remote, "err", p.Why)
			if pk.FixedHeader.Type == packets.Connect {
				return b.refuseConnect(cl, pk, 0, p.Code, p.Why)
			}
			return b.protocolError(cl, packets.Code{Code: p.Code, Reason: p.Why})
		}
	}
	switch pk.FixedHeader.Type {
	case packets.Connect:
		return b.checkConnect(cl, pk)
	case packets.Subscribe, packets.Unsubscribe:
		if err := b.checkFilters(cl, pk); err != nil {
			return err
		}
		b.renameClientID(cl, pk) // packetids.go
		return nil
	case packets.Publish:
		return b.checkPublish(cl, pk)
	case packets.Auth:
		// No CONNECT is accepted with an Authentication Method, so no
		// client may send AUTH (MQTT 5 section 4.12).
		return b.protocolError(cl, packets.ErrProtocolViolation)
	}
	return nil
}

// refuseConnect answers a CONNECT with v3 (3.1.1 return code, 0: none) or
// v5 (MQTT 5 reason code, 0: none) and closes the connection.
func (b *Broker) refuseConnect(cl *mqtt.Client, pk *packets.Packet, v3, v5 byte, why string) error {
	b.metrics.ProtocolErrors.Add(1)
	code := v3
	if pk.ProtocolVersion == 5 {
		code = v5
	}
	if code != 0 {
		if pk.ProtocolVersion == 5 {
			cl.Properties.ProtocolVersion = 5
		}
		_ = cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}, ReasonCode: code})
	}
	b.log.Debug("CONNECT refused", "remote", cl.Net.Remote, "err", why)
	return errProtocol
}

// protocolError ends a session on a protocol violation: MQTT 5 gets a
// DISCONNECT with code, 3.1.1 (which has no server DISCONNECT) a closed
// connection.
func (b *Broker) protocolError(cl *mqtt.Client, code packets.Code) error {
	b.metrics.ProtocolErrors.Add(1)
	if cl.Properties.ProtocolVersion == 5 {
		_ = cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}, ReasonCode: code.Code})
	}
	if st := b.state(cl); st != nil {
		st.pipe.drain() // the DISCONNECT after the pipelined PUBACKs
	}
	return errProtocol
}

func (b *Broker) checkConnect(cl *mqtt.Client, pk *packets.Packet) error {
	c := &pk.Connect
	v := pk.ProtocolVersion
	name := string(c.ProtocolName)
	switch {
	case name != "MQTT" && name != "MQIsdp":
		return b.refuseConnect(cl, pk, 0, 0, "protocol name "+name) // [MQTT-3.1.2-1]: close
	case name == "MQTT" && v != 4 && v != 5, name == "MQIsdp" && v != 3:
		pk.ProtocolVersion = 4 // answer in the 3.1.1 form [MQTT-3.1.2-2]
		return b.refuseConnect(cl, pk, packets.Err3UnsupportedProtocolVersion.Code, 0, "protocol level")
	case pk.ReservedBit != 0:
		return b.refuseConnect(cl, pk, 0, 0, "reserved flag set") // [MQTT-3.1.2-3]
	case !c.WillFlag && (c.WillQos != 0 || c.WillRetain):
		return b.refuseConnect(cl, pk, 0, 0, "will QoS or retain without will flag")
	case c.WillQos > 2:
		return b.refuseConnect(cl, pk, 0, 0, "will QoS 3")
	case c.WillFlag && (c.WillTopic == "" || strings.ContainsAny(c.WillTopic, "+#")):
		return b.refuseConnect(cl, pk, 0, packets.ErrTopicNameInvalid.Code, "will topic not a topic name") // [MQTT-3.1.3-11]
	case c.UsernameFlag && !validString(c.Username):
		return b.refuseConnect(cl, pk, 0, 0, "user name not UTF-8") // [MQTT-1.5.3-1]
	case v < 5 && c.PasswordFlag && !c.UsernameFlag:
		return b.refuseConnect(cl, pk, 0, 0, "password without user name") // [MQTT-3.1.2-22]
	case v < 5 && c.ClientIdentifier == "" && !c.Clean:
		return b.refuseConnect(cl, pk, packets.Err3ClientIdentifierNotValid.Code, 0, "empty client ID with clean session 0") // [MQTT-3.1.3-8]
	case v == 5 && pk.Properties.AuthenticationMethod != "":
		return b.refuseConnect(cl, pk, 0, packets.ErrBadAuthenticationMethod.Code, "authentication method") // [MQTT-4.12.0-1]
	case v == 5 && (pk.Properties.RequestProblemInfo > 1 || pk.Properties.RequestResponseInfo > 1):
		return b.refuseConnect(cl, pk, 0, packets.ErrProtocolViolation.Code, "request information not 0 or 1")
	}
	return nil
}

func (b *Broker) checkFilters(cl *mqtt.Client, pk *packets.Packet) error {
	v5 := cl.Properties.ProtocolVersion == 5
	if pk.FixedHeader.Type == packets.Subscribe && v5 {
		for _, id := range pk.Properties.SubscriptionIdentifier {
			if id == 0 {
				return b.protocolError(cl, packets.ErrProtocolViolation)
			}
		}
	}
	for _, f := range pk.Filters {
		if !filterWellFormed(f.Filter, v5) {
			return b.protocolError(cl, packets.ErrMalformedPacket)
		}
		if pk.FixedHeader.Type == packets.Subscribe && v5 &&
			(f.RetainHandling > 2 || f.NoLocal && mqtt.IsSharedFilter(f.Filter)) {
			return b.protocolError(cl, packets.ErrProtocolViolation)
		}
	}
	return nil
}

// filterWellFormed reports whether f is a topic filter the specification
// allows: '+' and '#' only as a whole level, '#' only last, not empty; in
// MQTT 5 "$share/NAME/FILTER" with a NAME without wildcards.
func filterWellFormed(f string, v5 bool) bool {
	if v5 && mqtt.IsSharedFilter(f) { // "$share", in any case as mochi reads it
		_, after, _ := strings.Cut(f, "/")
		name, rest, ok := strings.Cut(after, "/")
		if !ok || name == "" || strings.ContainsAny(name, "+#") || rest == "" {
			return false
		}
		f = rest
	}
	if f == "" {
		return false
	}
	for rest := f; ; {
		level, tail, more := strings.Cut(rest, "/")
		if strings.ContainsAny(level, "+#") && level != "+" && level != "#" || level == "#" && more {
			return false
		}
		if !more {
			return true
		}
		rest = tail
	}
}

func (b *Broker) checkPublish(cl *mqtt.Client, pk *packets.Packet) error {
	if pk.FixedHeader.Qos == 0 && pk.FixedHeader.Dup {
		return b.protocolError(cl, packets.ErrProtocolViolation) // [MQTT-3.3.1-2]
	}
	if cl.Properties.ProtocolVersion == 5 && pk.TopicName == "" && pk.Properties.TopicAliasFlag &&
		pk.Properties.TopicAlias > 0 && pk.Properties.TopicAlias <= b.srv.Options.Capabilities.TopicAliasMaximum &&
		cl.State.TopicAliases.Inbound.Set(pk.Properties.TopicAlias, "") == "" {
		return b.protocolError(cl, packets.ErrProtocolViolation) // an alias that maps no topic
	}
	return nil
}

// validString reports whether b is a valid MQTT UTF-8 string: UTF-8
// without U+0000 [MQTT-1.5.3-1], [MQTT-1.5.3-2] (mochi decodes user names
// as bytes).
func validString(b []byte) bool {
	return utf8.Valid(b) && strings.IndexByte(string(b), 0) < 0
}
