// Package bridge is edgegw's upstream link: it forwards queued messages to a
// cloud MQTT broker (MQTT 5 or 3.1.1) under the gateway's own identity, at
// least once, and publishes the broker's inbound commands on the local
// broker. A gateway may run several bridges, each with its own name, client
// ID, TLS identity, upstream list and routes.
//
// The pieces, in the order a message meets them:
//
//   - Routes (route.go): Mosquitto's bridge grammar (topic filter, direction,
//     qos, local_prefix, remote_prefix, priority) compiled once; the gateway's
//     OnPublish calls [Routes.MatchOut] for every local publish (0 allocs).
//   - Bridge (bridge.go): connects to the first reachable upstream (failover
//     in order, jittered exponential backoff), then runs one session per
//     connection (session.go): a writer that takes messages from the [Queue]
//     and publishes them with a window of many QoS 1 publishes in flight, a
//     reader that calls Queue.Ack on each PUBACK (or Queue.DeadLetter on a
//     negative PUBACK), and an inbound path that hands commands to the
//     [Publisher].
//
// The window is refilled in batches, so that a small Receive Maximum (20)
// does not cost a write, a read and a wake-up on both sides per message:
// the PUBACKs that arrived in one read of the socket free their slots
// together, just before the reader reads the socket again (sockread.go:
// below TLS, since crypto/tls returns one record per Read and Mosquitto
// writes each PUBACK in its own record); the writer then writes every
// publish it can take into the connection's buffer and flushes once, when it
// would wait (window full, queue empty, pacing). State.Writes and
// State.SlotReleases count both. The writer does not hold back a free slot
// to wait for more: Mosquitto leaves Nagle on (no set_tcp_nodelay), so its
// second PUBACK waits for our TCP ACK, which the kernel delays up to 40 ms
// when we send nothing; each PUBLISH we write carries that ACK.
//
// Delivery is owned by the queue (package store), never by the MQTT client:
// a message leaves the queue only on its upstream PUBACK, and after a lost
// connection the queue is rewound so every unacknowledged message is sent
// again, in order, on the next connection. Duplicates are therefore possible
// (bounded by the in-flight window); each upstream message carries the user
// properties device=<thing> and seq=<gateway sequence> so the cloud can drop
// them.
//
// The MQTT wire format comes from github.com/eclipse/paho.golang/packets; the
// session logic is ours because paho's client keeps its own copy of in-flight
// publishes and resends them itself, which would duplicate what the queue
// already guarantees, and writes each packet unbuffered.
//
// # MQTT 3.1.1
//
// Config.Protocol MQTT311 runs the same session with CONNECT protocol level 4
// (Clean Session 0: the upstream keeps our subscriptions while we are away),
// and PUBLISH, PUBACK, SUBSCRIBE and SUBACK without properties. paho's packets
// are MQTT 5 only, so the 3.1.1 packets are encoded and read in package
// bridge/wire (with the allocation-free PUBLISH encoder and PUBACK reader
// both versions use).
// There is no Receive Maximum: the window is Config.Inflight. A refused
// CONNACK is a *ConnackError (errors.Is ErrBadCredentials or
// ErrNotAuthorized); Mosquitto 2.0.11 answers a wrong 3.1.1 password with
// return code 5, not 4. 3.1.1 has no No Local: on a both-direction route the
// upstream echoes the gateway's own messages (Config.Warnings says so).
//
// # Envelopes: device and sequence upstream
//
// 3.1.1 has no user properties, so Config.Envelope chooses where the device
// and sequence number go (names from UserProps, "device" and "seq" by default):
//
//	user-properties  MQTT 5 user properties (MQTT 5 only; its default)
//	topic-suffix     <remote topic>/<device>/<seq>; the cloud subscribes <filter>/+/+
//	json             {"device":"<thing>","seq":<n>,"payload":<payload>} when the
//	                 payload is JSON, else {"device":..,"seq":..,"payload_base64":"<base64>"}
//	property-bag     Azure IoT Hub: <remote_prefix>device=<thing>&seq=<n>&topic=<local topic>
//	none             nothing: the cloud cannot drop duplicates (3.1.1's default;
//	                 Config.Warnings says so for `edgegw check`)
//
// # Username, password, ALPN, SNI, proxy
//
// Config.Username with a password from Config.PasswordFile (mode 0600 or
// 0400, refused otherwise, read at every connection attempt) or
// Config.Password (a secret store's value); the password is never logged.
// Config.ALPN or Upstream.ALPN set the TLS ALPN protocols, Upstream.ServerName
// the SNI and verification name. Config.Proxy tunnels every connection
// through an HTTP proxy with CONNECT (http://[user:password@]host:port, Basic
// authentication; package bridge/proxy), the usual way out of a site that
// opens port 443 only.
//
// # Profiles
//
// Config.Profile sets what a cloud needs where the config left it empty, and
// CheckRoutes (run by New and SetRoutes, and by `edgegw check`) refuses
// routes the cloud would refuse, each *RuleError naming the cloud's rule. A
// route ending in '#' is checked on its fixed part; each message is checked
// again before it is sent (topic depth and size) and dead-lettered with the
// rule as reason, since the cloud would disconnect the gateway for it.
//
// aws-iot-core (AWS IoT Core endpoints and quotas,
// https://docs.aws.amazon.com/general/latest/gr/iot-core.html#message-broker-limits,
// and Device communication protocols,
// https://docs.aws.amazon.com/iot/latest/developerguide/protocols.html, read
// 2026-12): MQTT 5 or 3.1.1; on port 443 a client-certificate login needs
// ALPN x-amzn-mqtt-ca (port 8883 needs none), which the profile sets for a
// :443 URL; payload at most 128 KB; topics and filters at most 7 forward
// slashes (a leading $aws/rules/<rule>/ of Basic Ingest does not count) and
// 256 bytes; topics starting with '$' are reserved except AWS's own $aws/...;
// at most 100 publishes per second per connection (the profile paces every
// publish at 90/s, MaxRate, and the backlog drain with it); client IDs at most
// 128 bytes, not starting with '$'; at most 50 subscriptions per connection
// and 8 filters per SUBSCRIBE (the session sends at most 8 for every profile).
//
// azure-iot-hub (Communicate with an IoT hub using the MQTT protocol,
// https://learn.microsoft.com/azure/iot-hub/iot-hub-mqtt-support, and the
// IoT Hub messaging guide,
// https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-messages-construct,
// read 2026-12): MQTT 3.1.1 over TLS on 8883 (IoT Hub's MQTT 5 preview is
// deprecated); the client ID is the device ID, the user name
// {iothub-hostname}/{deviceId}/?api-version=2021-04-12 (set by the profile
// from the first upstream's host); X.509 authentication (the TLS client
// certificate; SAS tokens are not supported here); telemetry only to
// devices/{deviceId}/messages/events/ followed by a URL-encoded property bag
// (envelope property-bag, forced); cloud-to-device messages only on the
// subscription devices/{deviceId}/messages/devicebound/#; device-to-cloud
// messages at most 256 KB; keep-alive at most 1177 s.
//
// generic: no defaults beyond the package's, no checks.
//
// # Several bridges
//
// Nothing in this package is global: each Bridge has its own session, window,
// counters and packet identifiers, its logger carries bridge=<name>, and
// State.Name labels its metrics. Each Bridge needs its own Queue that hands
// out only its own routes' messages (one store.Queue per bridge, or a view of
// a shared store limited to the bridge's routes): Next and Rewind of a queue
// shared by two bridges would let one bridge's outage hold back, and its
// reconnects resend, the other's messages. Route names name queues and must
// be unique across bridges; a topic bridged to two upstreams has a route in
// each, under two names, and is queued once per bridge, acknowledged by each
// upstream independently. CheckBridges checks that, unique bridge names, and
// that no two bridges use one client ID on one upstream.
//
// # A new identity, live (identity.go)
//
// [Bridge.SwapIdentity] makes a new client certificate the bridge's (a
// renewed one, or one installed by hand and reloaded): it ends the live
// connection, connects again at once (no backoff) under the new certificate
// and returns after its CONNACK; if none comes before its context ends, the
// previous certificate is put back and the bridge reconnects under it. The
// queue makes the swap lossless like any reconnect: unacknowledged messages
// are rewound and sent again (duplicates within the window).
// [Bridge.Call] is one request/response over the live connection for the
// cloud's own APIs (AWS IoT's create-from-csr and RegisterThing): the
// response filters are subscribed beside the in routes (QoS 1, until the
// call ends), the request is published at QoS 0, and the first matching
// message is returned to the caller, never to the local broker.
//
// Loop prevention contract for the gateway: messages that came down from the
// upstream are published locally through [Publisher] (mochi's inline client).
// The gateway's OnPublish hook must not enqueue publishes made by the inline
// client (mochi: cl.Net.Inline), so nothing that came down is sent back up.
// Upstream subscriptions also set MQTT 5 No Local, so the upstream never
// echoes what the gateway published.
//
// Imports: from this module only package store and its own sub-packages
// bridge/topic (topic syntax), bridge/wire (the MQTT client codec) and
// bridge/proxy (the HTTP CONNECT tunnel); no mochi, no prometheus, no
// badger. The gateway exports [State] as metrics, labelled by State.Name.
package bridge
