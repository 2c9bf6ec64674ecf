package broker

import (
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/gateway/authz"
	"github.com/edgegw/edgegw/store"
)

// Offline delivery to persistent sessions.
//
// A persistent session (MQTT 3.1.1 clean session 0, MQTT 5 Session Expiry
// Interval > 0) keeps its subscriptions while its client is away, and the
// QoS 1/2 messages published to them in that time are delivered, in order,
// when it comes back [MQTT-3.1.2-5], [MQTT-4.6.0-6].
//
// Why mochi v2.7.9 alone, behind this hook, lost them:
//
//   - mochi keeps the disconnected *mqtt.Client and keeps publishing to it:
//     publishToClient asks OnACLCheck about the delivery. The hook forgot the
//     client's state in OnDisconnect, so every delivery to an offline session
//     was refused as not authorized.
//   - Had it been allowed, mochi would store it in the offline client's
//     Inflight map (at most MaximumInflight, further ones dropped without any
//     hook) and on reconnect resend the map sorted by uint16(Created): Created
//     is a Unix time in seconds and the sort is not stable, so messages
//     published within the same second come back in any order.
//
// So the broker keeps its own outbox per offline session:
//
//   - OnDisconnect of a persistent session (not taken over) keeps its
//     clientState in sessions (by client ID) and moves what mochi holds in
//     flight for it (sent, not acknowledged) to the outbox, oldest first,
//     keeping their packet identifiers ([MQTT-4.4.0-1]: resent with DUP).
//   - Deliveries to the offline client are authorized with the policy session
//     it had when it left (OnACLCheck). OnQosPublish takes each one out of
//     mochi's Inflight into the outbox in publish order, within the session
//     limits (Limits.SessionMaxMessages, SessionMaxBytes; the expiry is the
//     session's own, capped by session_expiry_max). A message over a limit is
//     dropped, counted (Metrics.SessionDropped) and audited (rate limited per
//     device), never silently.
//   - When the session resumes (OnSessionEstablished, after CONNACK and before
//     mochi reads the client's first packet) the outbox is written in order:
//     as many as the client's Receive Maximum allows, the rest one per
//     acknowledgement (OnQosComplete). Each message with a Message Expiry
//     Interval is sent with what remains of it [MQTT-3.3.2-6]; an expired one
//     is dropped and counted [MQTT-3.3.2-5].
//   - A clean start with the same client ID, or the session's expiry, discards
//     the outbox; the messages are counted as dropped and audited.
//
// Restart: with a session store (RestoreSessions; `edgegw run` always sets
// one, a key space of the queue's database) an offline session survives a
// restart and a kill -9 of the daemon (sessionstore.go):
//
//   - When its client leaves, the session is written: listener, thing,
//     protocol, the absolute end of its expiry, and its subscriptions
//     (filter, QoS, No Local, Retain As Published, Retain Handling,
//     subscription identifier). Each message queued for it is written with
//     what its delivery needs (topic, payload, QoS, RETAIN, DUP and the
//     packet identifier if it was in flight, the absolute end of its Message
//     Expiry Interval, payload format, content type, response topic,
//     correlation data, user properties, subscription identifiers), under a
//     key that sorts in delivery order.
//   - Durability: the publisher's PUBACK for a QoS 1 message that an offline
//     session takes waits for that write, as for the upstream queue: while
//     any session is offline, QoS 1 messages go through the pipeline
//     (pipeline.go), are delivered before their PUBACK and the PUBACK waits
//     for what the delivery wrote (durableDelivery); the bridge acknowledges
//     an inbound message upstream after the same wait. With no offline
//     session the path is unchanged: no store write for online subscribers.
//     A QoS 2 publisher's PUBREC waits the same way (OnPublish delivers
//     the message itself before mochi writes the PUBREC:
//     deliverBeforePubrec). Not held: QoS 1 messages of a client whose
//     routes need an Enqueuer that cannot pipeline, and wills; their writes
//     follow within one group commit.
//   - A message leaves the store when the resumed client acknowledges it
//     (PUBACK, PUBCOMP) or expires; the whole session when it is discarded
//     (clean start, expiry), its session record (subscriptions, expiry)
//     stays while the client is connected: it is written through on
//     connect, SUBSCRIBE and UNSUBSCRIBE, so a kill -9 while the client is
//     connected keeps the session and messages published after the restart
//     reach it; QoS >= 1 messages in flight to a connected session are not
//     stored and a kill -9 loses them (sessionlive.go says why). A QoS 2 message
//     acknowledged with PUBREC but not yet PUBCOMP at a kill -9 is sent
//     again as a PUBLISH with DUP (at least once across a crash).
//   - At start (before the listeners accept) every stored session comes
//     back: mochi gets the disconnected client and its subscriptions (so
//     clean session 0 / clean start false finds session present 1, and
//     messages published meanwhile are queued), the outbox its messages in
//     order. Its expiry runs to the stored deadline (mochi would count it
//     from the restart). One whose expiry passed while the daemon was down,
//     whose listener is gone or asks a custom authorizer, or whose thing no
//     longer binds a policy is discarded, its messages counted and audited.
//     The policy of a restored session is bound again from its thing and
//     client ID (no certificate: certificate policy variables do not match
//     until the client is back); sessions on a listener with a custom
//     authorizer are not stored (memory only, as without a store).
//   - The limits (session_max_messages, session_max_bytes, expiry) apply as
//     in memory; a failed store write is logged and counted
//     (Metrics.SessionStoreFailures) and the message stays in memory.
//
// Without a store (broker tests, tools) the outbox lives in memory and a
// restart loses it.
//
// Order with live traffic: messages published while the outbox is being
// written to a returning client (after CONNACK) may reach it before the end
// of the outbox.

// sessions holds the persistent sessions whose client is away, and the
// outboxes of returning clients still being written.
type sessions struct {
	mu       sync.Mutex
	byID     map[string]*outbox // client ID -> the session's outbox
	inFlight atomic.Int32       // len(byID): hooks skip the lock while 0
	stored   map[string]bool    // client IDs whose session record is in the store (sessionlive.go)
}

// outbox is one session's pending messages, in publish order.
type outbox struct {
	cl      *mqtt.Client // the client the messages are addressed to (the offline one, then the returning one)
	st      *clientState
	online  bool   // the session resumed: msgs are being written, one per acknowledgement
	window  int    // messages that may be in flight to the resumed client
	id      uint16 // last packet identifier given (nextID)
	msgs    []pending
	bytes   int64
	dropped int64 // since the client left, for the audit line

	// msgs[i].seq are in [head, tail), in order: the store keys when
	// persist is set (sessionstore.go). sent maps the packet identifier of
	// an outbox message written to the resumed client to its seq until it
	// is acknowledged.
	persist    bool
	head, tail uint64
	sent       map[uint16]uint64
	expires    int64       // Unix time the offline session ends (as stored)
	timer      *time.Timer // a restored session's expiry (expireRestored)
}

// pending is one message of an outbox and its store key.
type pending struct {
	pk  packets.Packet
	seq uint64
}

// dropOps are the store writes that forget ob's messages, and its session
// record unless keepRecord.
func (ob *outbox) dropOps(keepRecord bool) []store.KVOp {
	if !ob.persist {
		return nil
	}
	id := ob.cl.ID
	ops := make([]store.KVOp, 0, 1+len(ob.msgs)+len(ob.sent))
	if !keepRecord {
		ops = append(ops, store.KVOp{Key: sessionKey(id)})
	}
	for _, m := range ob.msgs {
		ops = append(ops, store.KVOp{Key: msgKey(id, m.seq)})
	}
	for _, seq := range ob.sent {
		ops = append(ops, store.KVOp{Key: msgKey(id, seq)})
	}
	return ops
}

// forgetStored removes ob's records from the store; the caller holds
// sessions.mu and has taken ob out of byID.
func (b *Broker) forgetStored(ob *outbox) {
	if ob.timer != nil {
		ob.timer.Stop()
	}
	if !ob.persist {
		return
	}
	// A resumed client whose session persists keeps its record
	// (sessionlive.go).
	keep := ob.online && ob.st != nil && ob.st.live
	if !keep {
		delete(b.sessions.stored, ob.cl.ID)
	}
	b.sessw.submit(ob.dropOps(keep)...)
}

// pendingBytes is the size counted against SessionMaxBytes.
func pendingBytes(pk *packets.Packet) int64 { return int64(len(pk.TopicName) + len(pk.Payload)) }

// lookup returns the outbox of cl (nil: none).
func (s *sessions) lookup(cl *mqtt.Client) *outbox {
	if s.inFlight.Load() == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ob := s.byID[cl.ID]; ob != nil && ob.cl == cl {
		return ob
	}
	return nil
}

// sessionPersists reports whether cl's session outlives its connection.
func sessionPersists(cl *mqtt.Client) bool {
	if cl.Properties.ProtocolVersion == 5 {
		return cl.Properties.Props.SessionExpiryInterval > 0
	}
	return !cl.Properties.Clean
}

// endSession runs when cl's connection ends (OnDisconnect): a persistent
// session is kept offline with its outbox; otherwise what a resumed client
// had not yet been sent of its outbox is dropped and counted.
func (b *Broker) endSession(cl *mqtt.Client, st *clientState) {
	if sessionPersists(cl) {
		b.keepOffline(cl, st)
		return
	}
	if ob := b.forgetSession(cl); ob != nil {
		b.sessionDrop(ob.st, "", len(ob.msgs), "session ended before its pending messages were sent")
	}
	b.unstoreEnded(cl, st) // sessionlive.go
}

// forget removes cl's outbox and returns it (nil: none).
func (b *Broker) forgetSession(cl *mqtt.Client) *outbox {
	s := &b.sessions
	if s.inFlight.Load() == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ob := s.byID[cl.ID]
	if ob == nil || ob.cl != cl {
		return nil
	}
	delete(s.byID, cl.ID)
	s.inFlight.Store(int32(len(s.byID)))
	b.forgetStored(ob)
	return ob
}

// keepOffline registers st's session as offline. Messages mochi had in
// flight to it (sent, not acknowledged) move to the front of the outbox,
// oldest first; the outbox is registered first so that a delivery racing
// the disconnect lands in it exactly once (OnQosPublish moves only what it
// can delete from Inflight).
func (b *Broker) keepOffline(cl *mqtt.Client, st *clientState) {
	if cl.IsTakenOver() {
		return
	}
	if cur, ok := b.srv.Clients.Get(cl.ID); ok && cur != cl {
		return // already taken over by a new connection
	}
	// No send quota while away: mochi would otherwise hold deliveries over
	// the client's Receive Maximum back in Inflight (Expiry -1).
	cl.State.Inflight.ResetSendQuota(0)
	s := &b.sessions
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byID == nil {
		s.byID = map[string]*outbox{}
	}
	ob := s.byID[cl.ID]
	if ob == nil || ob.cl != cl {
		ob = &outbox{cl: cl, st: st, persist: b.persistable(cl, st), head: seqStart, tail: seqStart}
		s.byID[cl.ID] = ob
		s.inFlight.Store(int32(len(s.byID)))
	}
	ob.online = false // a resumed client left before its outbox was written
	b.metrics.SessionsOffline.Add(1)
	var ops []store.KVOp
	if ob.persist {
		if s.stored == nil {
			s.stored = map[string]bool{}
		}
		s.stored[cl.ID] = true
		ob.expires = b.sessionExpires(cl, time.Now().Unix())
		ops = append(ops, store.KVOp{Key: sessionKey(cl.ID), Value: encodeSession(cl, st, ob.expires)})
	}
	front := b.takeHeld(cl, heldInOrder(cl, ob))
	ops = append(ops, ob.putFront(cl.ID, front)...)
	if ob.persist {
		b.sessw.submit(ops...)
	}
}

// heldInOrder is what mochi holds in flight for cl, in the order it must be
// delivered again: messages of the outbox (sent: identifiers given downwards
// by nextID) in outbox order, before any live delivery, since they were
// published before the client came back; then by creation time, and within
// one second by packet ID (mochi gave them in order, mod 2^16).
func heldInOrder(cl *mqtt.Client, ob *outbox) []packets.Packet {
	held := cl.State.Inflight.GetAll(false)
	sort.SliceStable(held, func(i, j int) bool {
		si, oi := ob.sent[held[i].PacketID]
		sj, oj := ob.sent[held[j].PacketID]
		if oi || oj {
			return oi && (!oj || si < sj)
		}
		if held[i].Created != held[j].Created {
			return held[i].Created < held[j].Created
		}
		return int16(held[i].PacketID-held[j].PacketID) < 0
	})
	return held
}

// takeHeld takes the PUBLISHes of held out of mochi's in-flight state (the
// PUBREL/PUBREC state of QoS 2 stays with mochi), marked DUP since they were
// sent once already [MQTT-3.3.1-1].
func (b *Broker) takeHeld(cl *mqtt.Client, held []packets.Packet) []pending {
	var front []pending
	for _, pk := range held {
		if pk.FixedHeader.Type != packets.Publish || !cl.State.Inflight.Delete(pk.PacketID) {
			continue
		}
		atomic.AddInt64(&b.srv.Info.Inflight, -1)
		pk.FixedHeader.Dup = true
		front = append(front, pending{pk: pk})
	}
	return front
}

// putFront stores front again in front of the outbox, in this order, with
// their packet identifiers; a copy stored as an outbox message goes. It
// returns the store writes for a persistent session (none otherwise).
func (ob *outbox) putFront(id string, front []pending) []store.KVOp {
	if len(front) == 0 {
		return nil
	}
	var ops []store.KVOp
	ob.head -= uint64(len(front))
	for i := range front {
		m := &front[i]
		ob.bytes += pendingBytes(&m.pk)
		m.seq = ob.head + uint64(i)
		old, wasSent := ob.sent[m.pk.PacketID]
		delete(ob.sent, m.pk.PacketID)
		if !ob.persist {
			continue
		}
		if wasSent {
			ops = append(ops, store.KVOp{Key: msgKey(id, old)})
		}
		ops = append(ops, store.KVOp{Key: msgKey(id, m.seq), Value: encodeMsg(&m.pk)})
	}
	ob.msgs = append(front, ob.msgs...)
	return ops
}

// offlineReceive is OnACLCheck's delivery decision for a client that is not
// connected: allowed for a kept session by the policy it left with.
func (b *Broker) offlineReceive(cl *mqtt.Client, topic string) bool {
	ob := b.sessions.lookup(cl)
	if ob == nil || ob.online {
		return false
	}
	st := ob.st
	sess := st.sess.Load()
	if !sess.Allowed(authz.Receive, topic) {
		b.metrics.DeniedReceive.Add(1)
		b.deny(st, authz.Receive, topic, explain(sess, authz.Receive, topic))
		return false
	}
	return true
}

// OnQosPublish takes a delivery to an offline session out of mochi's
// in-flight map into the session's outbox, within the session limits.
func (h *hook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, _ int64, resends int) {
	if resends != 0 || pk.FixedHeader.Type != packets.Publish || cl.Net.Inline {
		return
	}
	b := h.b
	s := &b.sessions
	if s.inFlight.Load() == 0 {
		return
	}
	s.mu.Lock()
	ob := s.byID[cl.ID]
	if ob == nil || ob.cl != cl || ob.online {
		s.mu.Unlock()
		return
	}
	if !cl.State.Inflight.Delete(pk.PacketID) {
		s.mu.Unlock()
		return // keepOffline moved it already
	}
	atomic.AddInt64(&b.srv.Info.Inflight, -1)
	size := pendingBytes(&pk)
	lim := b.limits
	var why string
	switch {
	case lim.SessionMaxMessages > 0 && len(ob.msgs) >= lim.SessionMaxMessages:
		why = "offline session holds session_max_messages " + strconv.Itoa(lim.SessionMaxMessages)
	case lim.SessionMaxBytes > 0 && ob.bytes+size > lim.SessionMaxBytes:
		why = "offline session holds session_max_bytes " + strconv.FormatInt(lim.SessionMaxBytes, 10)
	default:
		pk.PacketID = 0 // given when it is sent
		ob.msgs = append(ob.msgs, pending{pk: pk, seq: ob.tail})
		if ob.persist {
			b.sessw.submit(store.KVOp{Key: msgKey(cl.ID, ob.tail), Value: encodeMsg(&pk)})
		}
		ob.tail++
		ob.bytes += size
		b.metrics.SessionQueued.Add(1)
	}
	if why != "" {
		ob.dropped++
	}
	st := ob.st
	s.mu.Unlock()
	if why != "" {
		b.sessionDrop(st, pk.TopicName, 1, why)
	}
}

// sessionDrop counts and audits n messages of st's session dropped.
func (b *Broker) sessionDrop(st *clientState, topic string, n int, why string) {
	if n <= 0 {
		return
	}
	b.metrics.SessionDropped.Add(int64(n))
	res := ""
	if topic != "" {
		res = "topic/" + topic
	}
	b.audit.Record(audit.Event{Event: audit.EventDrop, Device: st.id.ThingName, ClientID: st.clientID, Resource: res,
		Reason: strconv.Itoa(n) + " message(s) for offline session: " + why})
}

// resumeSession hands the outbox of cl's session to cl, which has just
// connected (OnSessionEstablished), and starts writing it. A clean start
// discards it.
func (b *Broker) resumeSession(cl *mqtt.Client, st *clientState, clean bool) {
	s := &b.sessions
	if s.inFlight.Load() == 0 {
		return
	}
	s.mu.Lock()
	ob := s.byID[cl.ID]
	if ob == nil || ob.cl == cl {
		s.mu.Unlock()
		return
	}
	if clean {
		delete(s.byID, cl.ID)
		s.inFlight.Store(int32(len(s.byID)))
		b.forgetStored(ob)
		s.mu.Unlock()
		b.metrics.SessionsOffline.Add(-1)
		b.sessionDrop(ob.st, "", len(ob.msgs), "discarded by a clean start")
		return
	}
	if !ob.online {
		b.metrics.SessionsOffline.Add(-1)
	}
	if ob.timer != nil {
		ob.timer.Stop()
		ob.timer = nil
	}
	ob.cl, ob.st, ob.online = cl, st, true
	// Half of mochi's in-flight cap: live deliveries keep room beside the
	// outbox (mochi drops a delivery to a client at the cap).
	ob.window = min(max(int(b.srv.Options.Capabilities.MaximumInflight)/2, 1), 0x7FFF)
	if rm := st.recv.n; rm > 0 && rm < ob.window {
		ob.window = rm // recvmax.go
	}
	s.mu.Unlock()
	b.sendPending(cl)
}

// sendPending writes the outbox of a resumed session while the client's
// in-flight window has room; the outbox is forgotten once empty.
func (b *Broker) sendPending(cl *mqtt.Client) {
	s := &b.sessions
	for {
		s.mu.Lock()
		ob := s.byID[cl.ID]
		if ob == nil || ob.cl != cl || !ob.online {
			s.mu.Unlock()
			return
		}
		if len(ob.msgs) == 0 || cl.Closed() {
			if len(ob.msgs) == 0 && len(ob.sent) == 0 {
				// Written and acknowledged: the messages leave the
				// store; a persistent session's record stays
				// (sessionlive.go).
				delete(s.byID, cl.ID)
				s.inFlight.Store(int32(len(s.byID)))
				b.forgetStored(ob)
			}
			s.mu.Unlock()
			return
		}
		if cl.State.Inflight.Len() >= ob.window {
			s.mu.Unlock()
			return // OnQosComplete sends the next
		}
		m := ob.msgs[0]
		pk := m.pk
		ob.msgs[0] = pending{}
		ob.msgs = ob.msgs[1:]
		ob.bytes -= pendingBytes(&pk)
		st := ob.st
		expired := pk.Expiry > 0 && pk.Expiry <= time.Now().Unix()
		if !expired && pk.PacketID == 0 {
			pk.PacketID = ob.nextID(cl)
		}
		if !expired && cl.State.Inflight.Set(pk) {
			atomic.AddInt64(&b.srv.Info.Inflight, 1)
		}
		if expired && ob.persist {
			b.sessw.submit(store.KVOp{Key: msgKey(cl.ID, m.seq)})
		}
		if !expired {
			if ob.sent == nil {
				ob.sent = map[uint16]uint64{}
			}
			ob.sent[pk.PacketID] = m.seq // until acknowledged (OnQosComplete)
		}
		s.mu.Unlock()
		if expired {
			b.sessionDrop(st, pk.TopicName, 1, "message expiry interval passed")
			continue
		}
		// WritePacket sends what remains of the Message Expiry Interval.
		if err := cl.WritePacket(pk); err != nil {
			return // the client is gone; the message stays in its Inflight for the next resume
		}
	}
}

// nextID gives the outbox's messages packet identifiers from the top of the
// range down. mochi keeps the identifiers of both directions in one map and
// answers a client's SUBSCRIBE or PUBLISH whose identifier is in use by a
// delivery with 0x91 Packet Identifier in use; clients count theirs up from
// 1 right after CONNACK (mosquitto_sub's SUBSCRIBE is 1), so identifiers
// from mochi's NextPacketID (1, 2, ...) would collide at once. The window
// (at most MaximumInflight/2 <= 32767) always leaves one free.
func (ob *outbox) nextID(cl *mqtt.Client) uint16 {
	for {
		if ob.id <= 0x8000 {
			ob.id = 0xFFFF
		} else {
			ob.id--
		}
		if _, used := cl.State.Inflight.Get(ob.id); !used {
			return ob.id
		}
	}
}

// OnQosComplete forgets the stored copy of an outbox message the resumed
// client acknowledged and writes the next pending one.
func (h *hook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	s := &h.b.sessions
	if s.inFlight.Load() == 0 {
		return
	}
	s.mu.Lock()
	if ob := s.byID[cl.ID]; ob != nil && ob.cl == cl {
		if seq, ok := ob.sent[pk.PacketID]; ok {
			delete(ob.sent, pk.PacketID)
			if ob.persist {
				h.b.sessw.submit(store.KVOp{Key: msgKey(cl.ID, seq)})
			}
		}
	}
	s.mu.Unlock()
	h.b.sendPending(cl)
}

// OnClientExpired forgets an expired session and counts what it held.
func (h *hook) OnClientExpired(cl *mqtt.Client) {
	b := h.b
	s := &b.sessions
	if s.inFlight.Load() == 0 {
		return
	}
	s.mu.Lock()
	ob := s.byID[cl.ID]
	if ob == nil || ob.cl != cl {
		s.mu.Unlock()
		return
	}
	delete(s.byID, cl.ID)
	s.inFlight.Store(int32(len(s.byID)))
	b.forgetStored(ob)
	s.mu.Unlock()
	if !ob.online {
		b.metrics.SessionsOffline.Add(-1)
	}
	b.sessionDrop(ob.st, "", len(ob.msgs), "session expired")
}
