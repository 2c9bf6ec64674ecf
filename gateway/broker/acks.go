package broker

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// What the broker says in CONNACK and in acknowledgements.
//
// mochi v2.7.9 copies the publisher's PUBLISH properties (user properties
// included) into its PUBACK/PUBREC unless
// Compatibilities.NoInheritedPropertiesOnAck is set (New sets it), and gives
// them reason code 0x01/0x02 ("granted QoS"), which PUBACK and PUBREC do not
// have [MQTT-3.4.2.1]; it writes the code only when properties follow, so
// without the copied properties a success acknowledgement is the plain four
// bytes. A reason string goes only with an error code (>= 0x80), and mochi
// drops it when the client asked for no problem information
// [MQTT-3.1.2-29].
//
// Its CONNACK announces Receive Maximum but neither the Maximum Packet Size
// it enforces nor a Topic Alias Maximum (so MQTT 5 clients must not use
// aliases, while mochi accepts any up to its capability): OnPacketEncode
// adds both to a successful MQTT 5 CONNACK. Server Keep Alive is sent when
// the broker overrides the client's keepalive (serverKeepalive).

// OnPacketEncode completes CONNACK and cleans acknowledgements (see above).
func (h *hook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	switch pk.FixedHeader.Type {
	case packets.Connack:
		if cl.Properties.ProtocolVersion == 5 && pk.ReasonCode < packets.ErrUnspecifiedError.Code {
			caps := h.b.srv.Options.Capabilities
			pk.Properties.MaximumPacketSize = caps.MaximumPacketSize
			pk.Properties.TopicAliasMaximum = caps.TopicAliasMaximum
		}
	case packets.Puback, packets.Pubrec, packets.Pubrel, packets.Pubcomp:
		if pk.ReasonCode < packets.ErrUnspecifiedError.Code {
			if pk.ReasonCode == packets.CodeGrantedQos1.Code || pk.ReasonCode == packets.CodeGrantedQos2.Code {
				pk.ReasonCode = packets.CodeSuccess.Code
			}
			pk.Properties.ReasonString = ""
		}
		pk.Properties.User = nil
	case packets.Suback, packets.Unsuback:
		h.b.ackID(cl, &pk) // packetids.go
	}
	return pk
}

// serverKeepalive overrides an MQTT 5 client's keepalive when it is 0 (no
// keepalive) or above Limits.MaxKeepalive, and makes CONNACK say so with
// Server Keep Alive [MQTT-3.2.2-21]. An MQTT 3.1.1 client cannot be told, so
// its keepalive is left as it asked. It runs in OnConnect, before mochi sets
// the read deadline from cl.State.Keepalive.
func (b *Broker) serverKeepalive(cl *mqtt.Client) {
	most := uint16(min(b.limits.MaxKeepalive.Seconds(), 65535))
	if cl.Properties.ProtocolVersion != 5 || most == 0 {
		return
	}
	if ka := cl.State.Keepalive; ka == 0 || ka > most {
		cl.State.Keepalive = most
		cl.State.ServerKeepalive = true
	}
}
