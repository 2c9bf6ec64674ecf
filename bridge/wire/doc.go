// Package wire is the bridge's MQTT client codec for the bytes that paho's
// packets package (github.com/eclipse/paho.golang/packets) does not write or
// read the way the bridge needs:
//
//   - AppendPublish encodes an upstream PUBLISH into a caller's buffer
//     without allocating, in MQTT 5 (with the device and sequence user
//     properties the cloud drops duplicates by) or in 3.1.1 (no property
//     section). paho's Publish.WriteTo allocates per packet and writes
//     unbuffered.
//   - ReadShortPuback reads a PUBACK without properties straight from the
//     read buffer: paho's ReadPacket costs a 512-byte buffer and three
//     allocations per packet, which at tens of thousands of PUBACKs a second
//     was an eighth of the gateway's CPU.
//   - MQTT 3.1.1 (protocol level 4): paho's packets speak MQTT 5 only (every
//     packet it writes or reads has a property section), so the 3.1.1
//     packets a client sends (CONNECT, SUBSCRIBE, UNSUBSCRIBE) are encoded
//     here, and Read311 reads every 3.1.1 packet, decoding CONNACK, PUBLISH
//     (into paho's struct, so the inbound path is shared with MQTT 5) and
//     the acknowledgements.
//
// It knows bytes only: no connection, no configuration, no queue. Which
// user properties a message carries and whether the upstream allows retain
// are the bridge's decisions, passed in a Publish.
//
// Imports: paho's packets (packet types and the Publish and SubOptions
// structs) and the standard library; nothing of edgegw.
package wire
