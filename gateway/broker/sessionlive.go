package broker

import (
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw/store"
)

// Connected persistent sessions in the store (with a session store, see
// sessionstore.go).
//
// A kill -9 while a persistent session's client is connected must not lose
// the session: the client reconnects with clean session 0 / clean start
// false and expects its subscriptions, and messages published after the
// restart must reach it. So the session record is written through while
// the client is connected:
//
//   - when the session is established (after CONNACK: mochi sends it before
//     OnSessionEstablished; not waited for), with its inherited
//     subscriptions;
//   - on every SUBSCRIBE and UNSUBSCRIBE, before the SUBACK / UNSUBACK
//     (OnSubscribed and OnUnsubscribed run before mochi writes them), and
//     waited for: a subscription acknowledged is a subscription stored;
//   - removed when a connection whose session does not persist (clean
//     session 1, Session Expiry Interval 0, also set so at DISCONNECT)
//     ends or replaces it.
//
// The record says the client was connected ("live") and keeps its Session
// Expiry Interval: the moment the connection ended in a crash is unknown,
// so a restored live session's expiry counts from the restart (it lasts at
// least as long as promised).
//
// QoS >= 1 messages in flight to a connected session at a kill -9 (written
// to it or queued for writing, not yet acknowledged) are not stored and are
// lost: storing every delivery to a connected client would put a store
// write on the path of every persistent subscriber's messages, and the
// publisher's PUBACK promises the broker took the message, which the
// upstream queue (routes) and offline sessions make durable. What the
// session's outbox still held when it came back (sessions.go) stays in the
// store until acknowledged, so it survives.
//
// The client IDs with a record in the store are kept in sessions.stored, so
// a clean session's connect costs no store write.

// storeLive writes the record of cl's session if it persists and may be
// stored, or removes a record of that client ID otherwise. It returns the
// writer's count to wait for (0: nothing written).
func (b *Broker) storeLive(cl *mqtt.Client, st *clientState) uint64 {
	if b.sessw == nil || cl.Net.Inline {
		return 0
	}
	s := &b.sessions
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stored == nil {
		s.stored = map[string]bool{}
	}
	if sessionPersists(cl) && b.persistable(cl, st) {
		st.live = true
		s.stored[cl.ID] = true
		interval := b.sessionExpires(cl, 0)
		b.sessw.submit(store.KVOp{Key: sessionKey(cl.ID), Value: encodeLiveSession(cl, st, time.Now().Unix()+interval, interval)})
		return b.sessw.n.Load()
	}
	st.live = false
	if !s.stored[cl.ID] {
		return 0
	}
	if ob := s.byID[cl.ID]; ob != nil && ob.cl != cl {
		return 0 // an offline session this client has not resumed (yet): its own record
	}
	delete(s.stored, cl.ID)
	b.sessw.submit(store.KVOp{Key: sessionKey(cl.ID)})
	return b.sessw.n.Load()
}

// unstoreEnded removes the record of a connection that ends without a
// persistent session (endSession), unless a new connection took the
// client ID over (the record is then the new one's).
func (b *Broker) unstoreEnded(cl *mqtt.Client, st *clientState) {
	if b.sessw == nil || cl.IsTakenOver() {
		return
	}
	if cur, ok := b.srv.Clients.Get(cl.ID); ok && cur != cl {
		return
	}
	b.storeLive(cl, st)
}

// OnSubscribed stores a connected persistent session's new subscriptions
// before mochi writes the SUBACK.
// It also tells the delivery path that the subscriptions changed
// (pipeline.go subsCache).
func (h *hook) OnSubscribed(cl *mqtt.Client, _ packets.Packet, _ []byte) {
	h.b.subs.changed()
	h.storeSubs(cl)
}

// OnUnsubscribed does the same before the UNSUBACK.
func (h *hook) OnUnsubscribed(cl *mqtt.Client, _ packets.Packet) {
	h.b.subs.changed()
	h.storeSubs(cl)
}

func (h *hook) storeSubs(cl *mqtt.Client) {
	b := h.b
	if b.sessw == nil || cl.Net.Inline {
		return
	}
	st := b.state(cl)
	if st == nil {
		return
	}
	if n := b.storeLive(cl, st); n > 0 {
		b.sessw.wait(n)
	}
}
