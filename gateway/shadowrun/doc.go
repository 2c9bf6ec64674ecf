// Package shadowrun runs the device shadows in the daemon (config section
// shadows): the shadow service on a key space of the queue's database, the
// Syncer beside the first bridge, and the site engineer's shadow requests
// and status for the admin socket. gateway/shadow is the pure service; this
// package is its place in the running gateway:
//
//	store.Queue.KV("shadow") ──> shadowStore (shadow.Store) ──> *shadow.Service ──> Broker.SetShadows
//	shadows.sync ──> *shadow.Syncer beside the bridge:
//	  Actions.Upstream ──> queue route "shadow-sync" (out, $aws/things/+/shadow/#) ──> bridge ──> cloud
//	  cloud ──> bridge in routes (one per synced shadow) ──> Inbound ──> Syncer.Upstream
//	  bridge State (connected since) ──> Syncer.Connected / Disconnected
//
// The shadows live in the queue's database (their own key space, encrypted
// like the queue); without a bridge section the gateway opens the store for
// them alone. The Syncer's outbox is durable in the shadow store, and what
// it asks to send goes through the queue like any upstream message, so a
// kill -9 loses neither side's change: the outbox is sent again on the next
// connection, the queue resends what the cloud did not acknowledge.
//
// What it needs of the broker, the queue, the audit log and the bridge are
// small interfaces (Broker, Queue, Auditor, Uplink) that the running
// components satisfy. It must not import gateway (the wiring imports it),
// mochi, badger, prometheus or paho: the broker, the store, observe and the
// bridge own those.
package shadowrun
