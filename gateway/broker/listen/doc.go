// Package listen is the LAN's front door of the broker: everything between
// a TCP accept and a client the broker may talk to, none of which needs the
// MQTT server itself.
//
//   - Trust (trust.go): the CA bundle, CRL and server certificate of one TLS
//     listener, swapped atomically on reload (Prepare/Commit, so the broker
//     can swap trust, registry and policies together); Verify and Revoked
//     for a client chain; ReadCertChain for PEM files.
//   - Guard (listener.go): the listener mochi is given. One deadline for the
//     TLS handshake and CONNECT, the handshake run here concurrently, and a
//     wire.Scanner on every connection (Conn.Verdict) for what mochi's
//     decoder drops. Under TLS the socket is read in 16 KiB chunks from a
//     shared pool (readahead.go): crypto/tls alone reads a few records per
//     syscall.
//   - Admission (admission.go): the pending-handshake budget, shared fairly
//     per source address, with rate-limited audit summaries.
//   - Identity (identity.go): certificate -> thing name by the listener's
//     identity rule (PeerIdentityOf, ThingNameFromCert).
//   - Refusals (refusals.go, cause.go): the audit line of a failed handshake
//     and the typed cause of a refusal (CauseOf).
//   - Passwords (passwd.go): the Mosquitto-compatible password file.
//
// The Guard relies on two facts of mochi-mqtt v2.7.9, the server it is
// handed to (re-check them when upgrading): mochi reads CONNECT with no
// deadline of its own, and right after the OnConnect hooks it replaces the
// connection's deadline with the keepalive one (Client.refreshDeadline), so
// the Guard's single handshake+CONNECT deadline needs no clearing. The
// broker calls Conn.Done once CONNECT is read and Conn.Verdict once per
// packet from OnPacketRead (one goroutine per connection, in order).
//
// Its counters (Counters) are embedded in broker.Metrics, so they are read
// where every other broker counter is.
//
// It must not import mochi-mqtt (only gateway/broker does), prometheus,
// badger or paho, nor gateway/broker: the broker imports it. Of ours it uses
// the leaves audit, authz, clock, hw and broker/wire.
package listen

import "sync/atomic"

// Counters are the front door's counters (part of broker.Metrics).
type Counters struct {
	HandshakeFailures, HandshakeTimeouts atomic.Int64
	PendingHandshakes, PendingRejected   atomic.Int64 // gauge, counter (admission.go)
	AdmissionEvicted                     atomic.Int64 // pending connections of unproven addresses closed for a proven one
}
