// Package wire reads what a client sends as MQTT bytes, for the checks the
// broker's decoder (mochi v2.7.9) cannot make on its decoded packets: it
// keeps the last value of a property given twice, and no presence flag for
// several, so a Topic Alias sent twice, or a Receive Maximum of 0, looks
// like a valid packet once decoded.
//
// A Scanner follows one connection's byte stream packet by packet, as the
// reader hands the bytes on, and judges each packet's raw property
// sections:
//
//   - every MQTT 5 packet a client may send (CONNECT and its will
//     properties, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE,
//     UNSUBSCRIBE, DISCONNECT, AUTH): a property given more than once, other
//     than User Property, is a Protocol Error (MQTT 5 section 2.2.2.2, e.g.
//     [MQTT-3.3.2-9] style for Topic Alias); reason code 0x82.
//   - CONNECT: Receive Maximum 0 or Maximum Packet Size 0 (MQTT 5 sections
//     3.1.2.11.3, 3.1.2.11.4); reason code 0x82.
//   - an MQTT 5 packet whose fixed header announces more than the
//     broker's Maximum Packet Size (remaining length + 1, as mochi measures
//     it): TooLarge, and the caller sends DISCONNECT 0x95 before it closes
//     the connection (MQTT 5 sections 3.2.2.3.6 and 4.13.1).
//
// What the Scanner cannot read it leaves alone: a property it does not
// know, a property section cut short or a packet whose checked prefix is
// over maxHold bytes is left to the decoder, which refuses malformed
// packets itself. The verdicts come in packet order, one per packet read,
// so the caller that decodes packets in order (mochi's OnPacketRead, on
// the connection's read goroutine) takes them with Next.
//
// The scan costs a walk over each packet's header and properties; the
// payload is skipped, and a packet that arrives whole in one read is
// judged in place, without a copy.
//
// wire must not import mochi or any edgegw package: it is the broker's
// byte-level room, testable and fuzzable alone.
package wire
