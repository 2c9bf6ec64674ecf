// Package broker is edgegw's local MQTT broker: the only package that imports
// mochi-mqtt. It owns the listeners (mTLS with a handshake deadline, loopback
// plaintext), the trust bundles and CRLs, the thing identity taken from the
// verified client certificate, the mochi hook that authorizes every CONNECT,
// PUBLISH, SUBSCRIBE and delivery with gateway/authz, the durable pipeline
// that holds a PUBACK until the message is in the queue, password files, and
// the live reload of trust and policies. It also runs the rules engine
// (gateway/rules) on every authorized PUBLISH and performs its actions
// (rules.go: forwards through the same durable path, republishes as the
// rule's identity), and asks a listener's custom authorizer
// (gateway/authorizer) at CONNECT, refreshing and ending its sessions as
// answered (authorizer.go).
//
// It must not import prometheus (metrics are read by gateway/observe through
// Metrics, Stats and Devices), badger (the queue is an Enqueuer), or the
// config package (gateway turns the config into Options).
//
// Facts about mochi-mqtt v2.7.9 this package relies on (re-check them when
// upgrading):
//
//   - OnPublish runs before the PUBACK is written: it is the only place to make
//     the PUBACK wait for a durable write. Returning packets.ErrRejectPacket
//     withholds the PUBACK; for MQTT 3.1.1 clients any other error still lets
//     the message be acknowledged and published.
//   - The verified chain is reachable in hooks through
//     cl.Net.Conn.(*tls.Conn).ConnectionState().VerifiedChains; the handshake
//     is complete when the connect hooks run.
//   - Without a hook providing OnConnectAuthenticate every client is refused
//     (deny by default).
//   - The stock TCP listener has no deadline for the TLS handshake or CONNECT,
//     so the listener is wrapped (guardListener).
//   - Capabilities.MaximumPacketSize defaults to 0 (unlimited) and the reader
//     allocates the announced remaining length before authentication: it is
//     set from Limits.
//   - MaximumMessageExpiryInterval (default 86400 s) force-deletes retained
//     and inflight messages older than that; there is no retained count or
//     size cap in mochi, so retainedAccount enforces one.
//   - MaximumClientWritesPending is a channel per client: when full, QoS >= 1
//     deliveries to that slow subscriber are dropped (OnPublishDropped); it is
//     sized from Limits and every drop is counted.
//   - mochi skips many CONNECT/SUBSCRIBE checks (will QoS without will flag,
//     filters like "a+", reserved subscription-option bits) and sends MQTT 5
//     reason codes to 3.1.1 clients: the hook validates before mochi acts.
//   - The bundled badger storage hook opens its own database; it is not used.
//   - mochi refuses only $SYS among $-topic names (IsValidFilter), so
//     $aws/things/... shadow requests reach the hooks, and an inline client's
//     publications skip the check; filters starting with a wildcard never
//     match $-topics [MQTT-4.7.2-1] (shadow.go).
package broker
