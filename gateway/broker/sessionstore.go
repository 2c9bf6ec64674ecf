package broker

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw/gateway/broker/listen"
	"github.com/edgegw/edgegw/store"
)

// Durable offline sessions: the store side of sessions.go (the promise is
// in its "Restart:" paragraph).
//
// Keys of the session space (SessionStore), client IDs never hold a NUL
// (a session whose ID does would stay in memory only):
//
//	s/CLIENTID                      storedSession: listener, thing, protocol, expiry deadline, subscriptions
//	m/CLIENTID 0x00 SEQ(8 bytes BE) storedMsg: one pending message; key order is delivery order
//
// Every change is made in memory first (under sessions.mu) and handed to
// sessionWriter in the same order; the writer commits what has gathered in
// one store write (the KV's Write is durable when it returns) while the next
// changes gather. A delivery that may reach an offline session notes the
// writer's count before and after, and waits for what was submitted in
// between (durableDelivery): the pipeline's PUBACK (pipeline.go) and the
// bridge's inbound acknowledgement (inbound.go) wait for it.

// SessionStore keeps the offline sessions across restarts: a key space of
// the queue's database. *store.KV satisfies it.
type SessionStore interface {
	Get(ctx context.Context, key string) ([]byte, error)
	List(ctx context.Context, prefix string) ([]string, error)
	Write(ctx context.Context, ops []store.KVOp) error
}

var _ SessionStore = (*store.KV)(nil)

const (
	sessKeySession = "s/"
	sessKeyMsg     = "m/"
	// seqStart is an empty outbox's first sequence number: appended
	// messages count up from it, messages moved back to the front (sent,
	// not acknowledged) count down.
	seqStart = uint64(1) << 63
	// sessionFormat is the version of the stored records.
	sessionFormat = 1
)

func sessionKey(id string) string { return sessKeySession + id }
func msgPrefix(id string) string  { return sessKeyMsg + id + "\x00" }

func msgKey(id string, seq uint64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seq)
	return msgPrefix(id) + string(b[:])
}

// msgSeq is the sequence number of a message key of id (false: not one).
func msgSeq(id, key string) (uint64, bool) {
	rest, ok := strings.CutPrefix(key, msgPrefix(id))
	if !ok || len(rest) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64([]byte(rest)), true
}

// storedSession is the record of one offline session.
type storedSession struct {
	V        int         `json:"v"`
	Proto    byte        `json:"proto"`    // MQTT protocol level: 4 (3.1.1) or 5
	Listener string      `json:"listener"` // the listener it connected on
	Thing    string      `json:"thing"`
	Serial   string      `json:"serial,omitempty"`
	Username string      `json:"username,omitempty"`
	Expires  int64       `json:"expires"` // Unix seconds: discarded after, unless resumed
	Subs     []storedSub `json:"subs"`
	// Live: written while the client was connected (sessionlive.go); its
	// expiry then counts Interval seconds from the restart.
	Live     bool  `json:"live,omitempty"`
	Interval int64 `json:"interval,omitempty"`
}

type storedSub struct {
	Filter            string `json:"f"`
	QoS               byte   `json:"q"`
	NoLocal           bool   `json:"nl,omitempty"`
	RetainAsPublished bool   `json:"rap,omitempty"`
	RetainHandling    byte   `json:"rh,omitempty"`
	Identifier        int    `json:"id,omitempty"`
}

// storedMsg is one pending PUBLISH as the subscriber is to get it.
type storedMsg struct {
	V             int         `json:"v"`
	Topic         string      `json:"t"`
	Payload       []byte      `json:"p"`
	QoS           byte        `json:"q"`
	Retain        bool        `json:"r,omitempty"`
	Dup           bool        `json:"dup,omitempty"`
	PacketID      uint16      `json:"pid,omitempty"` // in flight when the session went offline
	Origin        string      `json:"o,omitempty"`   // the publisher's client ID
	Created       int64       `json:"c"`
	Expiry        int64       `json:"e,omitempty"` // Unix seconds the Message Expiry Interval ends; 0: none
	PayloadFormat *byte       `json:"pf,omitempty"`
	ContentType   string      `json:"ct,omitempty"`
	ResponseTopic string      `json:"rt,omitempty"`
	Correlation   []byte      `json:"cd,omitempty"`
	User          [][2]string `json:"u,omitempty"`
	SubIDs        []int       `json:"si,omitempty"`
}

func encodeMsg(pk *packets.Packet) []byte {
	m := storedMsg{
		V: sessionFormat, Topic: pk.TopicName, Payload: pk.Payload, QoS: pk.FixedHeader.Qos,
		Retain: pk.FixedHeader.Retain, Dup: pk.FixedHeader.Dup, PacketID: pk.PacketID, Origin: pk.Origin,
		Created: pk.Created, Expiry: pk.Expiry,
		ContentType: pk.Properties.ContentType, ResponseTopic: pk.Properties.ResponseTopic,
		Correlation: pk.Properties.CorrelationData, SubIDs: pk.Properties.SubscriptionIdentifier,
	}
	if pk.Properties.PayloadFormatFlag {
		f := pk.Properties.PayloadFormat
		m.PayloadFormat = &f
	}
	for _, u := range pk.Properties.User {
		m.User = append(m.User, [2]string{u.Key, u.Val})
	}
	v, _ := json.Marshal(m) // no value of storedMsg fails to marshal
	return v
}

func decodeMsg(v []byte) (packets.Packet, error) {
	var m storedMsg
	if err := json.Unmarshal(v, &m); err != nil {
		return packets.Packet{}, err
	}
	if m.V != sessionFormat {
		return packets.Packet{}, fmt.Errorf("format %d, want %d", m.V, sessionFormat)
	}
	if m.Topic == "" || m.QoS < 1 || m.QoS > 2 {
		return packets.Packet{}, fmt.Errorf("topic %q QoS %d: not a pending message", m.Topic, m.QoS)
	}
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: m.QoS, Retain: m.Retain, Dup: m.Dup},
		TopicName:   m.Topic, Payload: m.Payload, PacketID: m.PacketID, Origin: m.Origin,
		Created: m.Created, Expiry: m.Expiry,
		Properties: packets.Properties{ContentType: m.ContentType, ResponseTopic: m.ResponseTopic,
			CorrelationData: m.Correlation, SubscriptionIdentifier: m.SubIDs},
	}
	if pk.Payload == nil {
		pk.Payload = []byte{}
	}
	if m.PayloadFormat != nil {
		pk.Properties.PayloadFormat, pk.Properties.PayloadFormatFlag = *m.PayloadFormat, true
	}
	if m.Expiry > 0 && m.Expiry > m.Created {
		// WritePacket replaces it with what remains (Expiry - now).
		pk.Properties.MessageExpiryInterval = uint32(min(m.Expiry-m.Created, 1<<32-1))
	}
	for _, u := range m.User {
		pk.Properties.User = append(pk.Properties.User, packets.UserProperty{Key: u[0], Val: u[1]})
	}
	return pk, nil
}

func encodeSession(cl *mqtt.Client, st *clientState, expires int64) []byte {
	return encodeRecord(sessionRecord(cl, st, expires))
}

// encodeLiveSession is the record of a connected session whose Session
// Expiry Interval is interval.
func encodeLiveSession(cl *mqtt.Client, st *clientState, expires, interval int64) []byte {
	s := sessionRecord(cl, st, expires)
	s.Live, s.Interval = true, interval
	return encodeRecord(s)
}

func encodeRecord(s storedSession) []byte {
	v, _ := json.Marshal(s) // no value of storedSession fails to marshal
	return v
}

func sessionRecord(cl *mqtt.Client, st *clientState, expires int64) storedSession {
	s := storedSession{V: sessionFormat, Proto: cl.Properties.ProtocolVersion, Listener: cl.Net.Listener,
		Thing: st.id.ThingName, Serial: st.id.Serial, Username: st.username, Expires: expires, Subs: []storedSub{}}
	for _, sub := range cl.State.Subscriptions.GetAll() {
		s.Subs = append(s.Subs, storedSub{Filter: sub.Filter, QoS: sub.Qos, NoLocal: sub.NoLocal,
			RetainAsPublished: sub.RetainAsPublished, RetainHandling: sub.RetainHandling, Identifier: sub.Identifier})
	}
	return s
}

func decodeSession(v []byte) (storedSession, error) {
	var s storedSession
	if err := json.Unmarshal(v, &s); err != nil {
		return s, err
	}
	if s.V != sessionFormat {
		return s, fmt.Errorf("format %d, want %d", s.V, sessionFormat)
	}
	if s.Proto != 3 && s.Proto != 4 && s.Proto != 5 || s.Listener == "" || s.Expires <= 0 {
		return s, fmt.Errorf("protocol %d, listener %q, expires %d: incomplete record", s.Proto, s.Listener, s.Expires)
	}
	return s, nil
}

// sessionExpires is the Unix time cl's session ends if it stays away from
// now: its Session Expiry Interval (MQTT 5) capped by session_expiry_max,
// which is also the lifetime of an MQTT 3.1.1 session (mochi's rule).
func (b *Broker) sessionExpires(cl *mqtt.Client, now int64) int64 {
	exp := int64(b.srv.Options.Capabilities.MaximumSessionExpiryInterval)
	if cl.Properties.ProtocolVersion == 5 && cl.Properties.Props.SessionExpiryIntervalFlag {
		exp = min(exp, int64(cl.Properties.Props.SessionExpiryInterval))
	}
	return now + exp
}

// persistable reports whether cl's session may go to the store: a store is
// set, the client ID can be a key, and its policy can be bound again
// without the client (no custom authorizer).
func (b *Broker) persistable(cl *mqtt.Client, st *clientState) bool {
	return b.sessw != nil && cl.ID != "" && strings.IndexByte(cl.ID, 0) < 0 && st.ls != nil && st.ls.az == nil
}

// sessionWriter commits the sessions' changes in submit order, many per
// store write.
type sessionWriter struct {
	db      SessionStore
	b       *Broker
	mu      sync.Mutex
	cond    sync.Cond
	ops     []store.KVOp
	n       atomic.Uint64 // submit calls so far
	durable uint64        // submit calls written (or failed: counted and logged)
	closing bool
	done    chan struct{}
}

func newSessionWriter(b *Broker, db SessionStore) *sessionWriter {
	w := &sessionWriter{db: db, b: b, done: make(chan struct{})}
	w.cond.L = &w.mu
	go w.run()
	return w
}

// submit queues ops for the next write. Callers hold sessions.mu, so the
// writes follow the order of the changes in memory.
func (w *sessionWriter) submit(ops ...store.KVOp) {
	if len(ops) == 0 {
		return
	}
	w.mu.Lock()
	w.ops = append(w.ops, ops...)
	w.n.Add(1)
	w.mu.Unlock()
	w.cond.Broadcast()
}

// wait returns once the first n submits are written (or the writer stopped).
func (w *sessionWriter) wait(n uint64) {
	w.mu.Lock()
	for w.durable < n && !w.closing {
		w.cond.Wait()
	}
	w.mu.Unlock()
}

func (w *sessionWriter) run() {
	defer close(w.done)
	w.mu.Lock()
	for {
		for len(w.ops) == 0 && !w.closing {
			w.cond.Wait()
		}
		if len(w.ops) == 0 {
			w.mu.Unlock()
			return
		}
		ops, upto := w.ops, w.n.Load()
		w.ops = nil
		w.mu.Unlock()
		if err := w.db.Write(context.Background(), ops); err != nil {
			// The messages stay in memory and are delivered if the daemon
			// keeps running; a restart would lose them. The deletes are
			// tried alone (a full disk refuses only values, store.KV):
			// otherwise delivered messages would come back after a restart.
			w.b.metrics.SessionStoreFailures.Add(1)
			w.b.log.Error("offline sessions not written to the store; their new messages are kept in memory only", "ops", len(ops), "err", err)
			var dels []store.KVOp
			for _, o := range ops {
				if o.Value == nil {
					dels = append(dels, o)
				}
			}
			if len(dels) > 0 && len(dels) < len(ops) {
				if err := w.db.Write(context.Background(), dels); err != nil {
					w.b.log.Error("offline session deletes not written to the store", "ops", len(dels), "err", err)
				}
			}
		}
		w.mu.Lock()
		w.durable = max(w.durable, upto)
		w.cond.Broadcast()
	}
}

// close writes what is queued and stops the writer.
func (w *sessionWriter) close() {
	w.mu.Lock()
	w.closing = true
	w.mu.Unlock()
	w.cond.Broadcast()
	<-w.done
}

// durableDelivery runs deliver (a publication on the local broker) and
// returns once whatever it put into an offline session's outbox is durable.
func (b *Broker) durableDelivery(deliver func()) {
	w := b.sessw
	if w == nil || b.sessions.inFlight.Load() == 0 {
		deliver()
		return
	}
	before := w.n.Load()
	deliver()
	if after := w.n.Load(); after != before {
		w.wait(after)
	}
}

// mayHoldOffline reports whether a delivery now may reach a durable offline
// outbox (then the publisher's acknowledgement waits for durableDelivery).
func (b *Broker) mayHoldOffline() bool {
	return b.sessw != nil && b.sessions.inFlight.Load() > 0
}

// RestoreSessions makes db the store of the offline sessions and brings
// back those it holds, as they were when their clients left: mochi gets the
// client (disconnected) and its subscriptions back, so a reconnect with
// clean session 0 / clean start false finds session present, and messages
// published meanwhile are held; the broker gets the outbox. A session whose
// expiry passed while the daemon was down, whose listener is gone or now
// asks a custom authorizer, or whose thing no longer binds a policy, is
// discarded: its messages are counted as dropped and audited. Call it once,
// before Start. It returns the sessions and messages restored.
//
// Why not mochi's own persistence hooks (StoredClients,
// StoredSubscriptions, StoredInflightMessages, read in Serve): loadClients
// calls OnDisconnect for every client and stamps its disconnect time as
// now, so a session would live its whole expiry again after each restart,
// and in-flight messages come back through the Inflight map this package
// does not use for offline sessions (sessions.go). The calls made here are
// the ones loadClients and loadSubscriptions make.
func (b *Broker) RestoreSessions(ctx context.Context, db SessionStore) (sessions, messages int, err error) {
	if b.sessw != nil {
		return 0, 0, errors.New("restoring sessions: a session store is already set")
	}
	keys, err := db.List(ctx, sessKeySession)
	if err != nil {
		return 0, 0, fmt.Errorf("restoring offline sessions: %w", err)
	}
	b.sessw = newSessionWriter(b, db)
	now := time.Now().Unix()
	for _, k := range keys {
		id := k[len(sessKeySession):]
		n, err := b.restoreSession(ctx, db, id, now)
		if err != nil {
			return sessions, messages, fmt.Errorf("restoring offline session %q: %w", id, err)
		}
		if n >= 0 {
			sessions++
			messages += n
		}
	}
	// Messages whose session record is gone (a crash between the two
	// deletes of a discard) are removed.
	orphans, err := db.List(ctx, sessKeyMsg)
	if err != nil {
		return sessions, messages, fmt.Errorf("restoring offline sessions: %w", err)
	}
	var ops []store.KVOp
	b.sessions.mu.Lock()
	for _, k := range orphans {
		id, _, _ := strings.Cut(k[len(sessKeyMsg):], "\x00")
		if b.sessions.byID[id] == nil {
			ops = append(ops, store.KVOp{Key: k})
		}
	}
	b.sessw.submit(ops...)
	b.sessions.mu.Unlock()
	return sessions, messages, nil
}

// restoreSession brings back one session; it returns its message count,
// or -1 when it was discarded.
func (b *Broker) restoreSession(ctx context.Context, db SessionStore, id string, now int64) (int, error) {
	v, err := db.Get(ctx, sessionKey(id))
	if err != nil {
		return 0, err
	}
	keys, err := db.List(ctx, msgPrefix(id))
	if err != nil {
		return 0, err
	}
	discard := func(thing, why string) (int, error) {
		ops := []store.KVOp{{Key: sessionKey(id)}}
		for _, k := range keys {
			ops = append(ops, store.KVOp{Key: k})
		}
		b.sessions.mu.Lock()
		b.sessw.submit(ops...)
		b.sessions.mu.Unlock()
		b.sessionDrop(&clientState{clientID: id, id: listen.PeerIdentity{ThingName: thing}}, "", len(keys), why)
		return -1, nil
	}
	rec, err := decodeSession(v)
	if err != nil {
		b.log.Error("offline session record unreadable, discarded", "client", id, "err", err)
		return discard("", "stored session unreadable: "+err.Error())
	}
	if rec.Live {
		rec.Expires = max(rec.Expires, now+rec.Interval) // sessionlive.go: from the restart
	}
	if rec.Expires <= now {
		return discard(rec.Thing, "session expired while the daemon was stopped")
	}
	ls := b.listenerByID(rec.Listener)
	if ls == nil || ls.az != nil {
		return discard(rec.Thing, "listener "+rec.Listener+" is gone or asks a custom authorizer now")
	}
	st := &clientState{ls: ls, id: listen.PeerIdentity{ThingName: rec.Thing, Serial: rec.Serial}, clientID: id, username: rec.Username}
	st.pipe.st = st
	sess, err := b.policy.Load().Bind(st.authzIdentity())
	if err != nil {
		return discard(rec.Thing, "thing no longer binds a policy: "+err.Error())
	}
	st.sess.Store(sess)
	ob, err := b.loadOutbox(ctx, db, id, st, keys)
	if err != nil {
		return 0, err
	}
	ob.expires = rec.Expires
	cl := b.restoreClient(id, rec, now)
	ob.cl, st.cl = cl, cl
	s := &b.sessions
	s.mu.Lock()
	if s.byID == nil {
		s.byID = map[string]*outbox{}
	}
	s.byID[id] = ob
	s.inFlight.Store(int32(len(s.byID)))
	if s.stored == nil {
		s.stored = map[string]bool{}
	}
	s.stored[id] = true
	ob.timer = time.AfterFunc(time.Duration(rec.Expires-now)*time.Second, func() { b.expireRestored(cl) })
	s.mu.Unlock()
	b.metrics.SessionsOffline.Add(1)
	b.metrics.SessionsRestored.Add(1)
	b.log.Info("offline session restored", "client", id, "device", rec.Thing, "messages", len(ob.msgs), "subscriptions", len(rec.Subs))
	return len(ob.msgs), nil
}

// loadOutbox reads the messages of id's session (keys, in delivery order);
// an unreadable one is deleted, counted and audited.
func (b *Broker) loadOutbox(ctx context.Context, db SessionStore, id string, st *clientState, keys []string) (*outbox, error) {
	ob := &outbox{st: st, persist: true, head: seqStart, tail: seqStart}
	for _, k := range keys {
		seq, ok := msgSeq(id, k)
		v, err := db.Get(ctx, k)
		if err != nil {
			return nil, err
		}
		var pk packets.Packet
		if ok {
			pk, err = decodeMsg(v)
		}
		if !ok || err != nil {
			b.log.Error("offline session message unreadable, dropped", "client", id, "key", fmt.Sprintf("%q", k), "err", err)
			b.sessw.submit(store.KVOp{Key: k})
			b.sessionDrop(st, "", 1, "stored message unreadable")
			continue
		}
		if len(ob.msgs) == 0 {
			ob.head = seq
		}
		ob.tail = seq + 1
		ob.msgs = append(ob.msgs, pending{pk: pk, seq: seq})
		ob.bytes += pendingBytes(&pk)
	}
	return ob, nil
}

// restoreClient gives mochi the disconnected client of a stored session
// and its subscriptions, with the calls mochi's loadClients and
// loadSubscriptions make.
func (b *Broker) restoreClient(id string, rec storedSession, now int64) *mqtt.Client {
	cl := b.srv.NewClient(nil, rec.Listener, id, false)
	cl.Properties.ProtocolVersion = rec.Proto
	cl.Properties.Username = []byte(rec.Username)
	if rec.Proto == 5 {
		cl.Properties.Props.SessionExpiryInterval = uint32(min(rec.Expires-now, 1<<32-1))
		cl.Properties.Props.SessionExpiryIntervalFlag = true
	}
	cl.State.Inflight.ResetSendQuota(0)
	cl.Stop(packets.ErrServerShuttingDown) // disconnected: mochi's expiry counts from now
	b.srv.Clients.Add(cl)
	for _, s := range rec.Subs {
		sub := packets.Subscription{Filter: s.Filter, Qos: s.QoS, NoLocal: s.NoLocal, RetainAsPublished: s.RetainAsPublished,
			RetainHandling: s.RetainHandling, Identifier: s.Identifier}
		if b.srv.Topics.Subscribe(id, sub) {
			atomic.AddInt64(&b.srv.Info.Subscriptions, 1)
		}
		cl.State.Subscriptions.Add(s.Filter, sub)
	}
	b.subs.changed() // pipeline.go subsCache
	return cl
}

// expireRestored ends a restored session at its deadline: mochi counts an
// MQTT 3.1.1 session's expiry from the restart, the deadline is from when
// its client left.
func (b *Broker) expireRestored(cl *mqtt.Client) {
	if cur, ok := b.srv.Clients.Get(cl.ID); !ok || cur != cl {
		return // resumed, taken over or expired by mochi already
	}
	if ob := b.sessions.lookup(cl); ob == nil || ob.online {
		return
	}
	b.srv.UnsubscribeClient(cl)
	b.srv.Clients.Delete(cl.ID)
	(&hook{b: b}).OnClientExpired(cl)
}

// closeSessions stops the restored sessions' timers and writes what is
// queued (Close, after every client is disconnected).
func (b *Broker) closeSessions() {
	s := &b.sessions
	s.mu.Lock()
	for _, ob := range s.byID {
		if ob.timer != nil {
			ob.timer.Stop()
		}
	}
	s.mu.Unlock()
	if b.sessw != nil {
		b.sessw.close()
	}
}
