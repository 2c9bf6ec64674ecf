// Package uplink runs the durable path and the upstream links, as `edgegw
// run` wires them, for each bridge of the config (bridge: is one named
// default; bridges: a list):
//
//	config store + the bridge's routes ──> store.Options ──> *store.Queue (its own directory: config.BridgeQueueDir)
//	config <bridge>.tls ──> hw key (file/TPM/HSM/auto) + CA pool ──> *tls.Config
//	config <bridge> ──> bridge.Config ──> *bridge.Bridge (reads its queue, publishes inbound locally)
//	every bridge's routes, compiled once by its bridge (Bridge.Routes) ──> routeMatcher (broker.RouteMatcher)
//	route name ──> its bridge's queue (queueMux, or the one queue) ──> Broker.SetOutbound(queues, matcher)
//	tls.renew ──> renew.Renewer per bridge; SIGHUP: routes and tls.cert/tls.key applied live
//
// A message matching routes of two bridges is queued once per bridge (the
// broker submits once per route, the route names the queue) and each
// bridge's upstream acknowledges its copy: one bridge's outage holds back and
// resends only its own queue.
//
// Start order: the queue is open and the outbound path installed before the
// listeners accept (so no early publish escapes the queue); the bridge starts
// after (Uplink.Start). Stop order: listeners and clients (the broker's
// Close), then the bridge, then the queue, then the key (Uplink.Close).
//
// The config translations (StoreOptionsFromConfig, BridgeTLS,
// BridgeConfigFromConfig, CheckBridges...) are exported for `edgegw check`
// and the `edgegw queue` commands, so a refusal reads the same there as in
// the daemon. The first bridge also carries the shadows' sync
// (gateway/shadowrun): its queue holds the shadows.
//
// What it needs of the broker and the audit log are small interfaces
// (Broker, Publisher, Auditor) that *broker.Broker, *broker.LocalPublisher
// and *audit.Log satisfy. It must not import gateway (the wiring imports
// it), mochi, badger, prometheus or paho: the broker, the store, observe and
// the bridge own those.
package uplink
