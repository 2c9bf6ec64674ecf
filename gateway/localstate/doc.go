// Package localstate opens what the daemon keeps on the device besides the
// bridges' queues, and hands it to the broker:
//
//	store.dir without a bridge ──> OpenStore ──> *store.Queue (the sessions' and shadows' database)
//	store.Queue.KV("sessions") ──> OpenSessions ──> Broker.RestoreSessions (before the listeners accept)
//	store.Open's repairs and salvage ──> ReportQueueOpen ──> audit records
//	state_dir ──> OpenPresence ──> *presence.Tracker
//	  broker (OnSessionEstablished / OnDisconnect) ──> broker.Presence ──> PresenceSink ──> Tracker
//	  observe (status, /devices, metrics) ──> observe.Presence ──> PresenceView: Tracker.Devices(the broker's registry)
//
// The persistent sessions whose clients are away, their subscriptions and
// the messages held for them live in the queue's database (their own key
// space, encrypted like the queue): the first bridge's queue, or without a
// bridge section a store opened at store.dir for them (and the shadows).
// So they outlive a restart or a kill -9 of the daemon, and a publisher's
// PUBACK for a message held for an offline session waits for its write, as
// for a message queued upstream (gateway/broker sessions.go).
//
// The presence tracker's file lives in state_dir; a state_dir that does not
// exist keeps presence in memory only (said once at start).
//
// What it needs of the broker and the audit log are small interfaces that
// they satisfy. It must not import gateway (the wiring imports it), mochi,
// badger, prometheus or paho: the broker, the store and observe own those.
package localstate
