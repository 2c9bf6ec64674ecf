package broker

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Packet identifiers of the two directions.
//
// "The Client and Server assign Packet Identifiers independently of each
// other" (MQTT 5 section 2.2.1; 3.1.1 section 2.3.1), but mochi v2.7.9 keeps
// the identifiers of both directions in one map (Client.State.Inflight) and
// answers a SUBSCRIBE or UNSUBSCRIBE whose identifier is in that map with
// 0x91 Packet Identifier in use. So a client that reconnects to its
// session, gets the messages it had not acknowledged again with their
// original identifiers [MQTT-4.4.0-1] (mochi gives them from 1 up), and
// resubscribes with identifier 1 (mosquitto_sub does) had its
// subscription refused, and mosquitto_sub gave up.
//
// When the identifier of a SUBSCRIBE or UNSUBSCRIBE is in use only by the
// broker's own flow (a PUBLISH or PUBREL it sent), OnPacketRead hands mochi
// the packet under a free identifier and OnPacketEncode puts the client's
// back on the SUBACK / UNSUBACK. mochi writes that acknowledgement before
// it reads the client's next packet, so one pending rename per client is
// enough. An identifier the client itself still uses (its own QoS 2
// PUBLISH awaiting PUBREL) keeps mochi's 0x91.

// ackRename is a SUBACK / UNSUBACK whose packet identifier mochi knows as
// to and the client as from (0: none).
type ackRename struct{ from, to uint16 }

// renameClientID gives pk (SUBSCRIBE or UNSUBSCRIBE) a free identifier if
// its own is taken by the broker's outgoing flow.
func (b *Broker) renameClientID(cl *mqtt.Client, pk *packets.Packet) {
	held, ok := cl.State.Inflight.Get(pk.PacketID)
	if !ok || held.FixedHeader.Type != packets.Publish && held.FixedHeader.Type != packets.Pubrel {
		return
	}
	st := b.state(cl)
	if st == nil {
		return
	}
	for id := uint16(0x7FFF); id > 0; id-- { // below the outbox's range (sessions.go nextID)
		if _, used := cl.State.Inflight.Get(id); !used {
			st.rename = ackRename{from: pk.PacketID, to: id}
			pk.PacketID = id
			return
		}
	}
}

// ackID restores the client's identifier on a SUBACK / UNSUBACK.
func (b *Broker) ackID(cl *mqtt.Client, pk *packets.Packet) {
	st := b.state(cl)
	if st == nil || st.rename.to == 0 || pk.PacketID != st.rename.to {
		return
	}
	pk.PacketID, st.rename = st.rename.from, ackRename{}
}
