// Package bridge is edgegw's upstream link: it forwards queued messages to one
// cloud MQTT 5 broker under the gateway's own certificate, at least once, and
// publishes the broker's inbound commands on the local broker.
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
// Loop prevention contract for the gateway: messages that came down from the
// upstream are published locally through [Publisher] (mochi's inline client).
// The gateway's OnPublish hook must not enqueue publishes made by the inline
// client (mochi: cl.Net.Inline), so nothing that came down is sent back up.
// Upstream subscriptions also set MQTT 5 No Local, so the upstream never
// echoes what the gateway published.
//
// Imports: only package store from this module; no mochi, no prometheus, no
// badger. The gateway exports [State] as metrics.
package bridge
