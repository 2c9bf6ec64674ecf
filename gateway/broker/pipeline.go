package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/store"
)

// Pipelined durable PUBACKs.
//
// mochi reads one client's packets one after another and OnPublish runs
// before the PUBACK, so a publisher whose OnPublish waited for the group
// commit's fsync would get at most one message per fsync (about 900 msg/s
// here). The rule stays: a QoS 1 message that matches an outbound route is
// acknowledged only after the fsync of its commit. The speed comes from
// pipelining instead: OnPublish hands the message to the store (Submit, no
// waiting), queues it on the client's pipeline and returns ErrRejectPacket,
// so mochi neither acknowledges nor delivers it and reads the next PUBLISH
// at once. The pipeline's worker waits the commits in publish order, then
// for each message writes the PUBACK and delivers it to the local
// subscribers (and applies RETAIN), as mochi would have done. The PUBACKs go
// out in the order the PUBLISHes were received [MQTT-4.6.0-2], and the local
// delivery of a client's messages keeps that order too.
//
// What goes through the pipeline: QoS 1 messages with at least one outbound
// route (one Submit per route, acknowledged after all of them are synced;
// retained ones too: the retained store is updated at delivery time, in
// order), and any QoS 1 message of a client whose pipeline is not empty (with
// no route it waits for nothing but its turn). Everything else (QoS 0, QoS 2,
// refusals) takes mochi's synchronous path, after the client's pipeline has
// drained, so nothing a client sends overtakes its earlier messages: refusals
// written by mochi (PUBACK 0x87 from the ACL check) included.
//
// QoS 2 stays synchronous: mochi writes the PUBREC, records the in-flight
// state and delivers in one step after OnPublish; doing that from another
// goroutine would mean re-implementing its QoS 2 state machine (packet id in
// use, PUBREL handling). QoS 2 publishers get one message per fsync.
//
// A refused message (store full, route quota, write error): MQTT 5 gets its
// PUBACK in turn with 0x97 Quota exceeded (ErrFull, ErrQuota) or 0x80
// Unspecified error, and it is not delivered locally; an MQTT 3.1.1 client,
// which has no negative PUBACK, is disconnected (it resends what was not
// acknowledged after it reconnects; never acknowledging one message would
// leave it waiting forever). The messages behind it in the pipeline are
// neither acknowledged nor delivered: the client resends them, and those that
// were committed reach the upstream twice (at-least-once, with the device and
// sequence number for the cloud to drop duplicates).
//
// A client that disconnects with messages in the pipeline: OnDisconnect (and
// OnWill, which runs first) waits for the pipeline to drain (at most the
// commits in flight), so the will goes out after the client's messages and no
// worker outlives its client. A PUBACK that can no longer be written is not
// followed by a local delivery (mochi's order: PUBACK, then delivery); the
// client resends.
//
// Offline persistent sessions: while one exists (with a session store), a
// QoS 1 message is pipelined even without a route, and the worker delivers
// it before writing its PUBACK, which waits for the write of what offline
// sessions took of it (sessions.go, sessionstore.go). Its predecessors are
// delivered first, so the order holds.
//
// Back-pressure: the pipeline is bounded (pipelineDepth); when it is full
// OnPublish waits, so mochi stops reading that client only. The worker also
// applies the slow-subscriber back-pressure (hook.go) before each delivery,
// because the deliveries happen after the commit, not in OnPublish.

// Waiter is a message handed to the queue whose commit can be waited for
// (store.Ticket).
type Waiter interface {
	Wait(ctx context.Context) (seq uint64, err error)
}

// Submitter is the pipelined form of Enqueuer: Submit hands m to the group
// commit and returns at once; Wait on the result returns after its fsync.
// Sequence numbers follow Submit order per caller. An Enqueuer that also
// implements Submitter (or store's Submit, returning store.Ticket) gets
// pipelined PUBACKs; one that does not is used synchronously.
type Submitter interface {
	Submit(ctx context.Context, m store.Message) (Waiter, error)
}

// storeSubmitter is *store.Queue's Submit.
type storeSubmitter interface {
	Submit(ctx context.Context, m store.Message) (store.Ticket, error)
}

type submitFunc func(ctx context.Context, m store.Message) (ticket, error)

// ticket is a submitted message's commit: the store's Ticket as it is
// (boxing it into a Waiter would allocate once per message), or another
// Submitter's Waiter.
type ticket struct {
	st store.Ticket
	w  Waiter // nil: st
}

func (t ticket) Wait(ctx context.Context) (uint64, error) {
	if t.w != nil {
		return t.w.Wait(ctx)
	}
	return t.st.Wait(ctx)
}

// ready reports whether Wait would not block. A Waiter that cannot tell
// counts as not ready.
func (t ticket) ready() bool {
	if t.w == nil {
		return t.st.Ready()
	}
	r, ok := t.w.(interface{ Ready() bool })
	return ok && r.Ready()
}

func submitterOf(q Enqueuer) submitFunc {
	switch s := q.(type) {
	case storeSubmitter:
		return func(ctx context.Context, m store.Message) (ticket, error) {
			t, err := s.Submit(ctx, m)
			return ticket{st: t}, err
		}
	case Submitter:
		return func(ctx context.Context, m store.Message) (ticket, error) {
			w, err := s.Submit(ctx, m)
			return ticket{w: w}, err
		}
	}
	return nil
}

// pipelineMaxDepth bounds a client's pipeline (and the server's Receive
// Maximum bounds it further for MQTT 5 clients). A few commits' worth is all
// the fsync latency needs; more would only let one client queue more local
// deliveries behind a slow subscriber.
const pipelineMaxDepth = 256

// pipelineListener is the listener name of the inline clients that deliver
// pipelined messages; OnPublish lets them through untouched (the publisher's
// message was authorized, checked and queued already).
const pipelineListener = "\x00edgegw-pipeline"

// pipeItem is one pipelined PUBLISH. It keeps what its PUBACK and its
// local delivery need, not the whole packets.Packet (800 bytes, mostly
// CONNECT fields and properties a publish rarely carries).
type pipeItem struct {
	topic   string
	payload []byte
	id      uint16
	fh      packets.FixedHeader
	props   *packets.Properties // nil: the publish carried none
	routes  []string
	waits   []ticket  // one per route submitted, in route order
	wait1   [1]ticket // waits' array for the usual single route
	err     error     // Submit refused routes[len(waits)]: refused in its turn
	rw      *ruleWork // the rules' forwards (routes after the plain ones) and republishes; nil: none
	nplain  int       // routes[:nplain] are the message's own routes
	early   bool      // delivered before its PUBACK (an offline session may hold it: settle)
}

// pipeItems recycles pipeItems: one per pipelined message, about 200
// bytes, was a third of the bytes the broker allocated per message.
var pipeItems = sync.Pool{New: func() any { return new(pipeItem) }}

func newPipeItem(pk *packets.Packet, routes []string) *pipeItem {
	it := pipeItems.Get().(*pipeItem)
	*it = pipeItem{topic: pk.TopicName, payload: pk.Payload, id: pk.PacketID, fh: pk.FixedHeader, routes: routes}
	if hasPublishProps(&pk.Properties) {
		props := pk.Properties
		props.TopicAlias, props.TopicAliasFlag = 0, false // resolved by the publisher's processPublish
		it.props = &props
	}
	it.waits = it.wait1[:0]
	if len(routes) > 1 {
		it.waits = make([]ticket, 0, len(routes))
	}
	return it
}

// release returns a finished item (acknowledged, refused or dropped, and
// delivered where it was to be) for reuse. Nothing may hold it after.
func (it *pipeItem) release() {
	*it = pipeItem{}
	pipeItems.Put(it)
}

// hasPublishProps reports whether p holds any property a PUBLISH may carry
// [MQTT-3.3.2.3] (the topic alias is resolved by then and not kept).
func hasPublishProps(p *packets.Properties) bool {
	return p.PayloadFormatFlag || p.MessageExpiryInterval != 0 || p.ResponseTopic != "" ||
		len(p.CorrelationData) > 0 || len(p.User) > 0 || len(p.SubscriptionIdentifier) > 0 || p.ContentType != ""
}

// packet is the PUBLISH for local delivery.
func (it *pipeItem) packet() packets.Packet {
	pk := packets.Packet{FixedHeader: it.fh, TopicName: it.topic, Payload: it.payload, PacketID: it.id}
	if it.props != nil {
		pk.Properties = *it.props
	}
	return pk
}

// pipeline is one client's in-order acknowledgement queue. It is part of the
// client's state: created empty on connect, its channel allocated with the
// first pipelined message, drained on disconnect. The worker goroutine runs
// only while items are queued (no idle goroutine per client).
//
// push, busy and drain run on the client's own goroutine (mochi's read loop:
// OnPublish, OnACLCheck, OnPacketRead, OnWill, OnDisconnect); only the worker
// finishes items.
type pipeline struct {
	st      *clientState
	items   chan *pipeItem
	running atomic.Bool
	n       atomic.Int64   // items pushed, not finished
	wg      sync.WaitGroup // the same count, for drain
	dead    atomic.Bool    // a 3.1.1 client was disconnected: later items are dropped
	last    subsMemo       // the worker's last subscribed answer (its goroutine only)
}

// busy reports whether messages of this client are still in the pipeline.
func (p *pipeline) busy() bool { return p.n.Load() > 0 }

// drain waits until every pipelined message is acknowledged (or refused).
func (p *pipeline) drain() {
	if p.n.Load() > 0 {
		p.wg.Wait()
	}
}

// push submits pk to the queue for each route and queues it for its PUBACK.
// It blocks while the pipeline is full.
func (b *Broker) push(p *pipeline, submit submitFunc, routes []string, pk *packets.Packet, rw *ruleWork) {
	nplain := len(routes)
	if rw.forwarding() {
		routes = append(routes[:nplain:nplain], rw.routeNames()...)
	}
	it := newPipeItem(pk, routes)
	it.rw, it.nplain = rw, nplain
	for _, route := range routes[:nplain] {
		w, err := submit(context.Background(), store.Message{
			Route: route, Topic: pk.TopicName, Payload: pk.Payload, QoS: pk.FixedHeader.Qos,
			Retain: pk.FixedHeader.Retain, Device: p.st.id.ThingName,
		})
		if err != nil {
			it.err = err
			break
		}
		it.waits = append(it.waits, w)
	}
	if it.err == nil && rw.forwarding() {
		for _, m := range rw.forwards {
			w, err := submit(context.Background(), m)
			if err != nil {
				it.err = err
				break
			}
			it.waits = append(it.waits, w)
		}
	}
	if p.items == nil {
		p.items = make(chan *pipeItem, b.pipelineDepth)
	}
	p.n.Add(1)
	p.wg.Add(1)
	select {
	case p.items <- it:
	default:
		b.metrics.PipelineFull.Add(1)
		p.items <- it
	}
	if p.running.CompareAndSwap(false, true) {
		go b.runPipeline(p)
	}
}

// runPipeline finishes items in order while there are any.
//
// PUBACKs go out in batches: the messages of one group commit are synced
// together, so after waiting for one item the worker takes the items behind
// it whose commits are already synced (Ready) and writes all their PUBACKs in
// one write: one TLS record and one syscall for many acknowledgements instead
// of one each, on the gateway and on the sensor. Nothing waits for a batch to
// fill: before the worker blocks on a commit that is not synced yet, it
// writes what it holds.
func (b *Broker) runPipeline(p *pipeline) {
	inl := b.takeInline(p.st)
	defer b.putInline(inl)
	acks := ackBatches.Get().(*ackBatch)
	defer ackBatches.Put(acks)
	for {
		select {
		case it := <-p.items:
			if acks.len() > 0 && (!it.ready() || acks.len() == maxAckBatch) {
				b.flushAcks(p, inl, acks)
			}
			if b.settle(p, inl, it, acks) {
				continue // batched: counted done when its PUBACK is written
			}
			it.release()
			p.n.Add(-1)
			p.wg.Done()
		default:
			if acks.len() > 0 {
				b.flushAcks(p, inl, acks)
				continue
			}
			p.running.Store(false)
			// A push between the receive above and the Store saw running
			// and started no worker: take its item.
			if len(p.items) == 0 || !p.running.CompareAndSwap(false, true) {
				return
			}
		}
	}
}

// maxAckBatch bounds the PUBACKs written at once (and the deliveries held
// behind them).
const maxAckBatch = 64

// ackBatch holds the synced items whose PUBACKs are not written yet, and
// those PUBACKs encoded. A worker takes one from ackBatches when it starts
// and gives it back, empty, when it ends: a new worker starts for about
// every commit of a client's messages, and growing fresh slices each time
// cost more than the items in them.
type ackBatch struct {
	items []*pipeItem
	wire  []byte
}

var ackBatches = sync.Pool{New: func() any {
	return &ackBatch{items: make([]*pipeItem, 0, maxAckBatch), wire: make([]byte, 0, 4*maxAckBatch)}
}}

func (a *ackBatch) len() int { return len(a.items) }

// ready reports whether every commit of it has finished (Wait would not
// block). A Waiter that cannot tell counts as not ready.
func (it *pipeItem) ready() bool {
	for _, w := range it.waits {
		if !w.ready() {
			return false
		}
	}
	return true
}

// settle waits for the item's commits. A synced item that is to be
// acknowledged joins acks (true); anything else is finished here: refused,
// or dropped after a 3.1.1 disconnect (false). A refusal is written in its
// turn, after the PUBACKs before it.
func (b *Broker) settle(p *pipeline, inl *mqtt.Client, it *pipeItem, acks *ackBatch) bool {
	st, cl := p.st, p.st.cl
	err, failed, failedAt := it.err, "", -1
	if err != nil {
		failedAt = len(it.waits)
		failed = it.routes[failedAt]
		b.metrics.EnqueueFailures.Add(1)
	}
	for i, w := range it.waits { // every one, to release them
		if _, werr := w.Wait(context.Background()); werr != nil {
			b.metrics.EnqueueFailures.Add(1)
			if err == nil {
				err, failed, failedAt = werr, it.routes[i], i
			}
			continue
		}
		b.metrics.Enqueued.Add(1)
		if i >= it.nplain {
			b.metrics.RuleForwarded.Add(1)
		}
	}
	if err != nil && it.rw != nil && failedAt >= it.nplain {
		b.forwardFailed(it.rw, failedAt-it.nplain, err)
	}
	if err != nil {
		b.audit.Record(audit.Event{Event: audit.EventDrop, Device: st.id.ThingName, ClientID: st.clientID, Resource: "topic/" + it.topic, Reason: fmt.Sprintf("route %s: %v", failed, err)})
	}
	if p.dead.Load() {
		return false
	}
	if err != nil {
		b.flushAcks(p, inl, acks)
		if cl.Properties.ProtocolVersion == 5 {
			code := enqueueFailCode(err)
			_ = cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: it.id,
				ReasonCode: code.Code, Properties: packets.Properties{ReasonString: code.Reason}})
			return false
		}
		p.dead.Store(true)
		b.metrics.EnqueueDisconnects.Add(1)
		_ = b.srv.DisconnectClient(cl, packets.ErrUnspecifiedError)
		return false
	}
	if b.mayHoldOffline() {
		// A durable offline session may take it (sessionstore.go): it is
		// delivered first, and its PUBACK waits for the outbox write. The
		// messages before it are delivered before it.
		for _, x := range acks.items {
			if !x.early {
				b.flushAcks(p, inl, acks)
				break
			}
		}
		b.backpressure(cl, it.topic)
		b.durableDelivery(func() {
			b.deliver(inl, it, &p.last)
			b.rulesAccepted(it.rw)
		})
		it.early = true
	}
	// A success PUBACK is the same four bytes in MQTT 3.1.1 and 5 (reason
	// code 0x00 and no properties may be omitted [MQTT-3.4.2.1]).
	acks.items = append(acks.items, it)
	acks.wire = append(acks.wire, 0x40, 0x02, byte(it.id>>8), byte(it.id))
	return true
}

// flushAcks writes the batch's PUBACKs in one write, then delivers the
// messages locally in order ([MQTT-4.3.2-4] after the commit, [MQTT-4.6.0-2]
// in publish order; mochi's order: PUBACK, then delivery). If the write
// fails the connection is gone: nothing of the batch is delivered and the
// client resends. The items are then done.
func (b *Broker) flushAcks(p *pipeline, inl *mqtt.Client, acks *ackBatch) {
	if acks.len() == 0 {
		return
	}
	if b.writeAcks(p.st.cl, acks.wire, acks.len()) && !p.dead.Load() {
		for _, it := range acks.items {
			if it.early {
				continue
			}
			b.backpressure(p.st.cl, it.topic)
			b.deliver(inl, it, &p.last)
			b.rulesAccepted(it.rw) // rules.go: republishes after the message's own delivery
		}
	}
	for i, it := range acks.items {
		acks.items[i] = nil
		it.release()
		p.n.Add(-1)
		p.wg.Done()
	}
	acks.items, acks.wire = acks.items[:0], acks.wire[:0]
}

// writeAcks writes encoded PUBACKs to cl's connection under the client's
// lock, as mochi's WritePacket does for one packet, and counts them in the
// server's statistics. Packets mochi holds in its own write buffer may go
// after them: they are other flows (PUBLISHes to this client), whose order
// relative to our PUBACKs MQTT does not fix.
func (b *Broker) writeAcks(cl *mqtt.Client, wire []byte, n int) bool {
	if cl.Closed() || cl.Net.Conn == nil {
		return false
	}
	cl.Lock()
	_, err := cl.Net.Conn.Write(wire)
	cl.Unlock()
	if err != nil {
		return false
	}
	atomic.AddInt64(&b.srv.Info.BytesSent, int64(len(wire)))
	atomic.AddInt64(&b.srv.Info.PacketsSent, int64(n))
	return true
}

// deliver publishes it to the local subscribers (and the retained store)
// through an inline client carrying the publisher's client ID (No Local,
// origin). mochi skips the ACL write check for inline clients (the publisher
// was authorized in OnACLCheck) and OnPublish lets pipelineListener through.
//
// A message that nothing subscribes to and that is not retained skips the
// inline publish, before its packet is even built: telemetry bound only for
// the bridge is the common case, and mochi's processPublish (hooks, packet
// copy, the same topic walk) would cost more than the walk alone.
//
// memo (nil: none) is the calling worker's last answer: a sensor mostly
// publishes to one topic.
func (b *Broker) deliver(inl *mqtt.Client, it *pipeItem, memo *subsMemo) {
	if !it.fh.Retain && !b.subs.memoized(memo, it.topic, b.subscribed) {
		return
	}
	pk := it.packet()
	if err := b.srv.InjectPacket(inl, pk); err != nil {
		b.log.Debug("local delivery failed", "client", inl.ID, "topic", pk.TopicName, "err", err)
		return
	}
	// InjectPacket counts the packet as received again; the publisher's read did.
	atomic.AddInt64(&b.srv.Info.PacketsReceived, -1)
	atomic.AddInt64(&b.srv.Info.MessagesReceived, -1)
}

// subscribed reports whether any local subscription matches topic (at this
// instant, as mochi's own delivery walk would see it). mochi's walk
// (TopicsIndex.Subscribers) builds four maps per call, about 6% of the
// broker's CPU per message when asked for every message; the answer is
// remembered per topic until the subscriptions change (subsCache).
func (b *Broker) subscribed(topic string) bool {
	return b.subs.lookup(topic, func() bool {
		s := b.srv.Topics.Subscribers(topic)
		return len(s.Subscriptions) > 0 || len(s.Shared) > 0 || len(s.InlineSubscriptions) > 0
	})
}

// subsCache remembers subscribed's answers for the current generation of
// the subscription index. Everything that adds to mochi's index calls
// changed after the addition: OnSubscribed (a client's SUBSCRIBE, and
// mochi's inline Subscribe), OnSessionEstablished (inheritClientSession
// re-adds a resumed session's subscriptions) and restoreClient. A removal
// need not: a stale "subscribed" only costs mochi's own walk finding
// nobody (OnUnsubscribed calls it anyway). A lookup that read the old
// generation may store an answer computed before a change into the old
// table, which no lookup of the new generation reads. Between an addition
// and its changed (before the SUBACK is written), a publish may miss the
// new subscriber, as it may with mochi alone.
type subsCache struct {
	gen   atomic.Uint64
	table atomic.Pointer[subsTable]
}

type subsTable struct {
	gen uint64
	n   atomic.Int32
	m   sync.Map // topic -> bool
}

// maxSubsCache bounds the topics remembered per generation (topics that
// carry a message ID would otherwise grow it without end; past it, the
// walk is done every time).
const maxSubsCache = 4096

func (c *subsCache) lookup(topic string, walk func() bool) bool {
	gen := c.gen.Load()
	t := c.table.Load()
	if t == nil || t.gen != gen {
		nt := &subsTable{gen: gen}
		if !c.table.CompareAndSwap(t, nt) {
			return walk() // another lookup replaced it just now
		}
		t = nt
	}
	if v, ok := t.m.Load(topic); ok {
		return v.(bool)
	}
	v := walk()
	if t.n.Add(1) <= maxSubsCache {
		t.m.Store(topic, v)
	}
	return v
}

// subsMemo is one answer of subscribed, for its topic and generation.
type subsMemo struct {
	gen   uint64
	topic string
	sub   bool
	ok    bool
}

// memoized is ask(topic) through m (nil: straight), which holds while the
// generation it was asked in is current (as a table entry would).
func (c *subsCache) memoized(m *subsMemo, topic string, ask func(string) bool) bool {
	if m == nil {
		return ask(topic)
	}
	gen := c.gen.Load()
	if m.ok && m.gen == gen && m.topic == topic {
		return m.sub
	}
	v := ask(topic)
	*m = subsMemo{gen: gen, topic: topic, sub: v, ok: true}
	return v
}

// changed starts a new generation: every answer is asked again.
func (c *subsCache) changed() { c.gen.Add(1) }

// takeInline returns an inline client (allocating one per client would cost
// mochi's per-client write queue) set to publish as st's client.
func (b *Broker) takeInline(st *clientState) *mqtt.Client {
	b.inlineMu.Lock()
	var cl *mqtt.Client
	if n := len(b.inlineFree); n > 0 {
		cl, b.inlineFree = b.inlineFree[n-1], b.inlineFree[:n-1]
	}
	b.inlineMu.Unlock()
	if cl == nil {
		cl = b.srv.NewClient(nil, pipelineListener, "", true)
	}
	cl.ID = st.clientID
	cl.Properties.ProtocolVersion = st.cl.Properties.ProtocolVersion
	return cl
}

func (b *Broker) putInline(cl *mqtt.Client) {
	b.inlineMu.Lock()
	b.inlineFree = append(b.inlineFree, cl)
	b.inlineMu.Unlock()
}

// enqueueFailCode is the MQTT 5 reason code of a refused durable enqueue:
// 0x97 Quota exceeded for a full queue or a route at its limit (overflow:
// reject), 0x80 Unspecified error for anything else (write or sync error,
// queue closed).
func enqueueFailCode(err error) packets.Code {
	if errors.Is(err, store.ErrFull) || errors.Is(err, store.ErrQuota) {
		return packets.ErrQuotaExceeded
	}
	return packets.ErrUnspecifiedError
}
