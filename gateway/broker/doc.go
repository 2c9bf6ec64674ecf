// Package broker is edgegw's local MQTT broker: the only package that imports
// mochi-mqtt. It owns the listeners (built from gateway/broker/listen, the
// front door: mTLS trust and CRL, the handshake deadline, fair admission,
// the thing identity taken from the verified client certificate, password
// files), the mochi hook that authorizes every CONNECT, PUBLISH, SUBSCRIBE
// and delivery with gateway/authz, the durable pipeline that holds a PUBACK
// until the message is in the queue, and the live reload of trust and
// policies. It also runs the rules engine (gateway/rules) on every
// authorized PUBLISH and performs its actions (rules.go: forwards through
// the same durable path, republishes as the rule's identity), and asks a
// listener's custom authorizer (gateway/authorizer) at CONNECT, refreshing
// and ending its sessions as answered (authorizer.go).
//
// Why it is larger than the other rooms (about 5,500 lines of non-test
// code; listen ~1,200 and wire ~430 are apart): what remains is one job, a
// mochi hook and the state it keeps per *mqtt.Client, and every file of it
// reads or changes mochi's own objects from inside mochi's goroutines.
// hook.go, conformance.go, acks.go, packetids.go and recvmax.go act on
// packets.Packet and Client.State (Inflight, packet IDs, send quota) in
// the order mochi calls them; pipeline.go, sessions.go, sessionlive.go and
// sessionstore.go hold PUBACKs and offline outboxes in mochi's Inflight
// maps and re-create clients the way mochi's loadClients does; rules.go and
// shadow.go publish through mochi's inline client and inbound.go injects
// packets for local services; reload.go, authorizer.go, disconnects.go,
// presence.go and enrol.go disconnect, inspect or write to mochi clients;
// traffic.go counts PUBLISHes for the hook, disconnects.go is a second hook
// and logging.go mochi's log handler; drops.go counts what mochi drops
// silently. Moving
// any of them out would mean a second package importing mochi, or wrapping
// *mqtt.Client and packets.Packet behind interfaces on the message path
// (an allocation per packet), to split what is a single state machine.
// What does not touch mochi has its own room (listen, wire).
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
//     so the listener is wrapped (listen.Guard), which also shares the
//     pending-handshake budget per source address (listen.Admission).
//   - Capabilities.MaximumPacketSize defaults to 0 (unlimited) and the reader
//     allocates the announced remaining length before authentication: it is
//     set from Limits.
//   - MaximumMessageExpiryInterval (default 86400 s) force-deletes retained
//     and inflight messages older than that; there is no retained count or
//     size cap in mochi, so retainedAccount enforces one.
//   - MaximumClientWritesPending is a channel per client: when full, QoS >= 1
//     deliveries to that slow subscriber are dropped (OnPublishDropped); it is
//     sized from Limits and every drop is counted.
//   - A QoS >= 1 delivery to a subscriber with MaximumInflight messages
//     unacknowledged is dropped without any hook (only a Warn "client store
//     quota reached" log record and the server-wide Info.InflightDropped):
//     the broker counts and audits it per client from that log record
//     (drops.go), and from OnPacketIDExhausted when no packet ID is free.
//   - mochi skips many CONNECT/SUBSCRIBE checks (will QoS without will flag,
//     filters like "a+", reserved subscription-option bits) and sends MQTT 5
//     reason codes to 3.1.1 clients: the hook validates before mochi acts
//     (conformance.go). Hooks.OnPacketRead ignores every hook error except
//     one wrapping packets.ErrRejectPacket, which closes the connection.
//     mochi keeps no trace of an MQTT 5 property given twice or of Receive
//     Maximum / Maximum Packet Size 0 given explicitly: the listener's
//     connections hand every byte read to a wire.Scanner, whose verdict on
//     each packet OnPacketRead takes in order (mochi reads and decodes a
//     connection's packets on one goroutine, every decoded packet goes
//     through OnPacketRead, and a packet it cannot decode ends the
//     connection, so the k-th verdict is the k-th packet's).
//   - A packet over Capabilities.MaximumPacketSize makes mochi's reader
//     return ErrPacketTooLarge and close the connection without a
//     DISCONNECT; listen.Conn.Close sends MQTT 5 clients DISCONNECT 0x95
//     first (listen/listener.go). Each packet mochi writes is one Write call on the
//     connection, so that DISCONNECT cannot land inside another packet.
//   - OnSubscribed and OnUnsubscribed run before mochi writes the SUBACK /
//     UNSUBACK, on the client's read goroutine: a connected persistent
//     session's record is stored there, and waited for (sessionlive.go).
//     OnSessionEstablished runs after CONNACK is written.
//   - Every addition to the subscription index (TopicsIndex) is followed by
//     OnSubscribed (processSubscribe, and the inline Subscribe), or is made
//     by inheritClientSession before OnSessionEstablished, or by the
//     broker's own restoreClient: the pipeline's remembered "does this
//     topic have subscribers" answers start a new generation there
//     (pipeline.go subsCache).
//   - Hooks.* asks every hook's Provides for every event and passes
//     packets.Packet (about 800 bytes) by value into and out of every hook
//     call, several per PUBLISH: the message counters are kept by the main
//     hook rather than a hook of their own (traffic.go).
//   - Client.State.Inflight holds the packet identifiers of both directions,
//     and processSubscribe / processUnsubscribe answer 0x91 (also to 3.1.1
//     clients) for an identifier in it; OnSubscribe runs before that check
//     but cannot change the identifier the SUBACK carries, so OnPacketRead
//     renames and OnPacketEncode restores it (packetids.go).
//   - Compatibilities.NoInheritedPropertiesOnAck off (the default) copies a
//     publisher's properties into its PUBACK/PUBREC (acks.go).
//   - mochi keeps a disconnected persistent session's *mqtt.Client and asks
//     OnACLCheck about every delivery to it; it would hold them in the
//     client's Inflight map and resend them sorted by uint16(Created), a time
//     in seconds, with an unstable sort. The broker keeps its own ordered
//     outbox per offline session instead (sessions.go). Inflight holds the
//     packet identifiers of both directions: a client's SUBSCRIBE whose
//     identifier a delivery uses gets 0x91, so the outbox uses identifiers
//     from the top of the range. They are written to a session store and
//     brought back at start (sessionstore.go) with the calls mochi's own
//     loadClients makes, not through its Stored* hooks: loadClients calls
//     OnDisconnect for each and restarts every session's expiry from now.
//   - publishToSubscribers runs in the goroutine that publishes (InjectPacket
//     included) and calls OnQosPublish for each offline subscriber before it
//     returns: what a delivery put into the outbox is known when it returns.
//   - The bundled badger storage hook opens its own database; it is not used.
//   - mochi refuses only $SYS among $-topic names (IsValidFilter), so
//     $aws/things/... shadow requests reach the hooks, and an inline client's
//     publications skip the check; filters starting with a wildcard never
//     match $-topics [MQTT-4.7.2-1] (shadow.go).
//   - A PUBLISH returned from OnPublish with Ignore set is acknowledged as
//     usual (QoS 1 PUBACK, QoS 2 PUBREC) but neither retained nor delivered
//     (retainMessage, publishToSubscribers): enrolment requests (enrol.go).
//     Client.WritePacket writes one packet to that client only, encoded for
//     its protocol version.
package broker
