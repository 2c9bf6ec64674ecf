package broker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/gateway/authz"
	"github.com/edgegw/edgegw/gateway/broker/listen"
	"github.com/edgegw/edgegw/store"
)

// Denials, exactly as a client sees them (mochi v2.7.9 behaviour, pinned by
// tests in hook_test.go and cmd/edgegw/broker_e2e_test.go):
//
//	CONNECT denied (unknown/disabled thing, client ID not allowed by
//	iot:Connect, wrong password, revoked since the handshake):
//	    MQTT 5:     CONNACK 0x87 Not authorized (0x86 for a bad user name or
//	                password), then the connection is closed.
//	    MQTT 3.1.1: CONNACK return code 5 Not authorized (4 for a bad user name
//	                or password), then the connection is closed.
//	    No, expired, foreign-CA or revoked client certificate: the TLS
//	    handshake fails (alert bad_certificate / certificate_revoked family);
//	    no MQTT packet is ever read.
//	PUBLISH denied (iot:Publish, or iot:RetainPublish when RETAIN is set, or
//	the topic exceeds max_topic_length / max_topic_levels, or the topic is
//	reserved: $SYS/... (any case; mochi alone would drop it with no PUBACK,
//	see OnPacketRead) or $share/...):
//	    the message is delivered to nobody and not retained, and
//	    MQTT 5, QoS 1/2: PUBACK/PUBREC with reason 0x87 Not authorized; the
//	                     session stays up.
//	    MQTT 5, QoS 0:   silently dropped (there is no acknowledgement).
//	    MQTT 3.1.1, QoS 1/2: the client is disconnected (3.1.1 has no negative
//	                     PUBACK; acknowledging would claim a delivery that did
//	                     not happen, and AWS IoT Core also disconnects).
//	    MQTT 3.1.1, QoS 0: silently dropped.
//	SUBSCRIBE denied (iot:Subscribe on topicfilter/<filter as sent>; a
//	    filter without wildcards also needs iot:Receive on its one topic, a
//	    subscription that could never deliver is refused, see OnSubscribe):
//	    SUBACK return code 0x87 Not authorized (MQTT 5) / 0x80 Failure
//	    (MQTT 3.1.1) for that filter; other filters of the packet are granted.
//	Delivery denied (iot:Receive on topic/<name>, checked for every message
//	    and every retained message sent to a subscriber): that subscriber is
//	    skipped, nothing is sent to it; other subscribers still get it.
//	Durable enqueue failed (queue full, route overflow: reject, disk below
//	    min_free, write error) for a QoS 1/2 message matching an outbound
//	    route: MQTT 5: PUBACK 0x97 Quota exceeded (0x80 Unspecified error for
//	    a write error); MQTT 3.1.1: disconnected without a PUBACK, the client
//	    retransmits after it reconnects (pipeline.go). The message is not
//	    delivered locally either, so the local and upstream views never
//	    disagree.
//	    QoS 0: delivered locally, the upstream copy is counted as dropped.
//
// Every denial is audited (rate limited per device, suppressed lines counted).

// Enqueuer durably stores a message before the publisher's PUBACK is sent.
// *store.Queue satisfies it.
type Enqueuer interface {
	Enqueue(ctx context.Context, m store.Message) (seq uint64, err error)
}

// RouteMatcher names the outbound routes a local publication belongs to.
// The bridge provides it from the configured routes; nil slices mean none.
type RouteMatcher interface {
	// OutboundRoutes returns the names of the outbound routes whose filter
	// matches topic and that queue messages of this QoS.
	OutboundRoutes(topic string, qos byte) []string
}

// outbound is the durable path installed by SetOutbound.
type outbound struct {
	q      Enqueuer
	submit submitFunc // nil: q cannot pipeline (pipeline.go)
	routes RouteMatcher
}

// clientState is what the broker knows about one connected client. It is
// created in OnConnect and found in O(1) by *mqtt.Client pointer.
type clientState struct {
	cl       *mqtt.Client
	ls       *brokerListener
	id       listen.PeerIdentity
	clientID string
	username string
	clean    bool
	hasWill  bool
	will     string // the will topic ("" without a will)
	server   string // TLS server name (SNI); "" on plaintext
	tls      bool
	az       *azState // the custom authorizer's decision (authorizer.go); nil: the registry's
	sess     atomic.Pointer[authz.Session]
	pipe     pipeline   // pipelined PUBACKs (pipeline.go)
	recv     recvMax    // the client's Receive Maximum when the broker honours it (recvmax.go)
	live     bool       // its session record is in the store while connected (sessionlive.go; under sessions.mu)
	rename   ackRename  // a SUBACK/UNSUBACK identifier to give back (packetids.go; the client's goroutine)
	pubOK    pubAllowed // the last topic publishAllowed allowed (the client's goroutine)
}

func (st *clientState) authzIdentity() authz.Identity {
	return authz.Identity{
		ClientID:     st.clientID,
		ThingName:    st.id.ThingName,
		Username:     st.username,
		Cert:         st.id.Cert,
		SourceIP:     st.id.SourceIP,
		CleanSession: st.clean,
		HasWill:      st.hasWill,
		WillTopic:    st.will,
		ServerName:   st.server,
		TLS:          st.tls,
	}
}

// hook is the broker's mochi hook: authentication from the verified
// certificate, authorization of every action, durable enqueue, limits,
// accounting.
type hook struct {
	mqtt.HookBase
	b *Broker
}

func (h *hook) ID() string { return "edgegw" }

func (h *hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnSessionEstablished, mqtt.OnDisconnect,
		mqtt.OnACLCheck, mqtt.OnSubscribe, mqtt.OnPacketRead, mqtt.OnPublish,
		mqtt.OnPublishDropped, mqtt.OnQosDropped, mqtt.OnRetainMessage, mqtt.OnRetainedExpired,
		mqtt.OnWill, mqtt.OnQosPublish, mqtt.OnQosComplete, mqtt.OnClientExpired, mqtt.OnPacketEncode,
		mqtt.OnSubscribed, mqtt.OnUnsubscribed, mqtt.OnPacketIDExhausted, mqtt.OnPacketSent:
		return true
	}
	return false
}

// state is what the broker knows about a connected client (nil: not
// connected, or refused). Asked several times per message: a client on one
// of the broker's listeners carries it on its connection (listen.Conn
// Owner, set and cleared with b.clients), one load instead of a sync.Map
// lookup hashing the pointer.
func (b *Broker) state(cl *mqtt.Client) *clientState {
	if gc, ok := cl.Net.Conn.(*listen.Conn); ok {
		st, _ := gc.Owner().(*clientState)
		return st
	}
	if v, ok := b.clients.Load(cl); ok {
		return v.(*clientState)
	}
	return nil
}

// OnConnect authenticates and authorizes the CONNECT. It runs after mochi has
// read the CONNECT packet and before it sends the CONNACK; on refusal we send
// the CONNACK ourselves (mochi would send 0x86 Bad user name or password for
// every refusal) and return the code, which makes mochi close the connection.
func (h *hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	b := h.b
	if gc, ok := cl.Net.Conn.(*listen.Conn); ok {
		gc.Done() // CONNECT read: no longer a pending handshake
	}
	ls := b.listenerByID(cl.Net.Listener)
	if ls == nil {
		return b.refuse(cl, nil, packets.ErrNotAuthorized, audit.CauseUnknownThing, "unknown listener")
	}
	id, err := ls.peerIdentity(cl.Net.Conn, pk.Connect.ClientIdentifier) // listenerthing.go
	if err != nil {
		return b.refuse(cl, &clientState{ls: ls, id: id, clientID: cl.ID}, packets.ErrNotAuthorized, listen.CauseOf(err, false, audit.CauseUnknownThing), err.Error())
	}
	if pk.Connect.ClientIdentifier == "" && ls.opts.Thing == "" {
		// No client ID: assign the thing name ([MQTT-3.1.3-6], MQTT 5 tells
		// the client through Assigned Client Identifier).
		cl.ID = id.ThingName
		if cl.Properties.ProtocolVersion == 5 {
			cl.Properties.Props.AssignedClientID = cl.ID
		}
	}
	st := &clientState{
		cl: cl, ls: ls, id: id, clientID: cl.ID,
		username: string(pk.Connect.Username),
		clean:    pk.Connect.Clean,
		hasWill:  pk.Connect.WillFlag,
	}
	if pk.Connect.WillFlag {
		st.will = pk.Connect.WillTopic
	}
	if cs, ok := cl.Net.Conn.(connectionStater); ok {
		if tcs := cs.ConnectionState(); tcs.HandshakeComplete {
			st.tls, st.server = true, tcs.ServerName
		}
	}
	st.pipe.st = st
	if id.Chain != nil {
		if err := ls.trust.Verify(id.Chain); err != nil {
			return b.refuse(cl, st, packets.ErrNotAuthorized, listen.CauseOf(err, false, audit.CauseUnknownThing), err.Error())
		}
	}
	if pw := ls.passwords.Load(); pw != nil {
		if !pk.Connect.UsernameFlag || pw.Check(string(pk.Connect.Username), pk.Connect.Password) != nil {
			return b.refuse(cl, st, packets.ErrBadUsernameOrPassword, audit.CauseBadPassword, "bad user name or password")
		}
	}
	sess, err := b.bindConnect(st, pk) // the registry, or the listener's authorizer (authorizer.go)
	if err != nil {
		return b.refuse(cl, st, packets.ErrNotAuthorized, connectCause(err), err.Error())
	}
	if !sess.Allowed(authz.Connect, cl.ID) {
		b.metrics.DeniedConnect.Add(1)
		return b.refuse(cl, st, packets.ErrNotAuthorized, audit.CauseNotAuthorized, "iot:Connect client/"+cl.ID+" not allowed: "+explain(sess, authz.Connect, cl.ID))
	}
	st.sess.Store(sess)
	b.serverKeepalive(cl) // acks.go
	b.disableSendQuota(cl, st)
	if old, loaded := b.clients.Swap(cl, st); loaded && old != nil {
		_ = old // same *Client cannot connect twice; defensive
	}
	if gc, ok := cl.Net.Conn.(*listen.Conn); ok {
		gc.SetOwner(st) // state: found here from now on
	}
	return nil
}

// disableSendQuota turns mochi's send quota off for every MQTT 5 client:
// with a quota mochi calls Inflight.NextImmediate after every packet the
// client sends, which read-locks the client's in-flight map twice
// (NextImmediate, then GetAll). A publisher's goroutine delivering to that
// client (Inflight.Set) between the two read locks waits for the first one,
// and the second one waits behind it (sync.RWMutex): the subscriber and
// every publisher to it hang for good, and so does a session takeover (Len).
// With the quota off (as for MQTT 3.1.1 clients) mochi never calls
// NextImmediate for the client. A Receive Maximum below mochi's in-flight
// cap is honoured by the broker instead (recvmax.go). It runs in OnConnect,
// after mochi set the quota and before inheritClientSession, which sets it
// again from Props.ReceiveMaximum.
func (b *Broker) disableSendQuota(cl *mqtt.Client, st *clientState) {
	if cl.Properties.ProtocolVersion != 5 {
		return
	}
	b.noteReceiveMaximum(st, cl.Properties.Props.ReceiveMaximum) // recvmax.go
	cl.Properties.Props.ReceiveMaximum = 0
	cl.State.Inflight.ResetSendQuota(0)
}

func (b *Broker) refuse(cl *mqtt.Client, st *clientState, code packets.Code, cause audit.Cause, reason string) error {
	b.metrics.ConnectsRefused.Add(1)
	ev := audit.Event{Event: audit.EventConnectRefused, ClientID: cl.ID, Remote: cl.Net.Remote, Listener: cl.Net.Listener, Reason: reason, Cause: cause}
	if st != nil {
		ev.Device, ev.Serial = st.id.ThingName, st.id.Serial
	}
	b.audit.Record(ev)
	if cl.Properties.ProtocolVersion < 5 {
		// mochi maps these v5 codes to the 3.1.1 return codes 5 (not
		// authorized) and 4 (bad user name or password); it has no mapping
		// for 0x87.
		if code == packets.ErrNotAuthorized {
			code = packets.ErrBadUsernameOrPassword
		} else if code == packets.ErrBadUsernameOrPassword {
			code = packets.ErrMalformedPassword
		}
	}
	_ = b.srv.SendConnack(cl, code, false, nil)
	return code
}

// OnConnectAuthenticate lets a client in only if OnConnect accepted it.
func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, _ packets.Packet) bool {
	return h.b.state(cl) != nil
}

// OnSessionEstablished audits the accepted connect and re-checks any
// subscriptions inherited from a persistent session against today's policy.
func (h *hook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	b := h.b
	st := b.state(cl)
	if st == nil {
		return
	}
	b.subs.changed() // a resumed session's subscriptions were re-added (pipeline.go subsCache)
	b.metrics.ConnectsAccepted.Add(1)
	b.audit.Record(audit.Event{Event: audit.EventConnect, Device: st.id.ThingName, ClientID: st.clientID, Remote: cl.Net.Remote, Listener: cl.Net.Listener, Serial: st.id.Serial})
	b.presenceOnline(cl, st)
	b.recheckSubscriptions(st, st.sess.Load())
	b.maintainAuthorizer(st)          // authorizer.go: refresh or expiry as the authorizer answered
	b.resumeSession(cl, st, st.clean) // sessions.go
	b.storeLive(cl, st)               // sessionlive.go: not waited for (CONNACK is out)
	b.enrolConnected(st)              // enrol.go
}

func (h *hook) OnDisconnect(cl *mqtt.Client, err error, _ bool) {
	b := h.b
	if errors.Is(err, packets.ErrPacketTooLarge) {
		b.metrics.PacketTooLarge.Add(1)
	}
	if st := b.state(cl); st != nil {
		st.pipe.drain() // no worker outlives its client (pipeline.go)
		st.stopAuthorizer()
		b.endSession(cl, st) // sessions.go
		b.forgetReceiveMaximum(st)
	}
	if gc, ok := cl.Net.Conn.(*listen.Conn); ok {
		gc.SetOwner(nil)
	}
	if st, ok := b.clients.LoadAndDelete(cl); ok {
		b.presenceOffline(cl, st.(*clientState))
		b.log.Debug("client disconnected", "device", st.(*clientState).id.ThingName, "client", cl.ID, "err", err)
	}
}

// How the hook tells mochi's two OnACLCheck(write=false) questions apart
// without knowing which goroutine asks:
//
//   - processSubscribe asks about each topic FILTER of a SUBSCRIBE, between
//     OnSubscribe and the SUBACK, on the subscriber's goroutine;
//   - publishToClient asks about a topic NAME for every delivery (live,
//     retained on subscribe, from the inline client), on any goroutine.
//
// OnSubscribe makes the iot:Subscribe decision for every filter of the
// packet itself and replaces each refused filter by deniedFilter, for which
// OnACLCheck always says no, so mochi answers 0x87 (MQTT 5) / 0x80 (3.1.1)
// for exactly that filter. A filter with a wildcard, a shared filter
// ($share/...) and deniedFilter can never be a topic name (publishing to
// them is refused, see publishTopicProblem), so OnACLCheck answers those as
// subscribe checks. Everything else is a topic name and gets the iot:Receive
// decision; that is also what processSubscribe gets for an allowed
// wildcard-free filter, and OnSubscribe allowed such a filter only if the
// client may also receive that one topic. So a subscribe check and a
// concurrent delivery of the same string always get the same, correct answer.

// deniedFilter stands in for a refused filter. It is a valid filter (mochi
// still asks OnACLCheck about it), has a wildcard (never a topic name) and a
// NUL, which no client may send ([MQTT-1.5.4-2]; topicProblem refuses it).
const deniedFilter = "\x00edgegw/denied/#"

// isFilter reports whether s can only be a topic filter, never a topic name.
func isFilter(s string) bool {
	return strings.ContainsAny(s, "+#\x00") || mqtt.IsSharedFilter(s)
}

// subscribeProblem says why sess may not subscribe to filter ("" = allowed):
// limits, iot:Subscribe on topicfilter/<filter as sent>, and for a
// wildcard-free filter also iot:Receive on its one topic (a subscription that
// could never deliver anything is refused rather than granted empty).
func (b *Broker) subscribeProblem(sess *authz.Session, filter string) string {
	if reason := b.limits.topicProblem(filter); reason != "" {
		return reason
	}
	if !sess.Allowed(authz.Subscribe, filter) {
		return explain(sess, authz.Subscribe, filter)
	}
	if !isFilter(filter) && !sess.Allowed(authz.Receive, filter) {
		return "iot:Receive topic/" + filter + " not allowed, the only topic this filter matches: " + explain(sess, authz.Receive, filter)
	}
	return ""
}

// OnSubscribe decides iot:Subscribe for every filter of the packet (see
// above) and audits each refusal once.
func (h *hook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	b := h.b
	st := b.state(cl)
	if st == nil {
		return pk // inline client; anyone else is refused by OnACLCheck
	}
	sess := st.sess.Load()
	copied := false
	for i, f := range pk.Filters {
		if !mqtt.IsValidFilter(f.Filter, false) || f.NoLocal && mqtt.IsSharedFilter(f.Filter) {
			continue // mochi refuses these itself, without asking OnACLCheck
		}
		why := b.subscribeProblem(sess, f.Filter)
		if why == "" {
			continue
		}
		b.metrics.DeniedSubscribe.Add(1)
		b.deny(st, authz.Subscribe, f.Filter, why)
		if !copied {
			pk.Filters = append(packets.Subscriptions(nil), pk.Filters...)
			copied = true
		}
		pk.Filters[i].Filter = deniedFilter
	}
	return pk
}

// OnACLCheck authorizes PUBLISH (write), SUBSCRIBE and every delivery.
func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	b := h.b
	st := b.state(cl)
	if st == nil {
		// A persistent session whose client is away (sessions.go).
		return !write && !isFilter(topic) && b.offlineReceive(cl, topic)
	}
	sess := st.sess.Load()
	switch {
	case write:
		if !b.publishAllowed(st, sess, topic) {
			// mochi answers at once (MQTT 5 PUBACK 0x87, 3.1.1
			// disconnect): after the client's pipelined PUBACKs.
			st.pipe.drain()
			return false
		}
		return true
	case topic == deniedFilter:
		return false // refused and audited by OnSubscribe
	case isFilter(topic):
		// A subscribe check; OnSubscribe allowed it. Asked again for the
		// case of a reload in between.
		if why := b.subscribeProblem(sess, topic); why != "" {
			b.metrics.DeniedSubscribe.Add(1)
			b.deny(st, authz.Subscribe, topic, why)
			return false
		}
		return true
	default:
		if !sess.Allowed(authz.Receive, topic) {
			b.metrics.DeniedReceive.Add(1)
			b.deny(st, authz.Receive, topic, explain(sess, authz.Receive, topic))
			return false
		}
		return true
	}
}

// publishAllowed is the iot:Publish decision (and the topic limits) for a
// PUBLISH, audited when refused.
//
// The client's last allowed topic is remembered with the session that
// allowed it (st.pubOK): a sensor mostly publishes to one topic, and an
// authz.Session is immutable, its conditions decided when it was bound. A
// reload binds a new Session for every client (reload.go reevaluate), so
// the next PUBLISH is decided by the current policies. Only allowing is
// remembered: every refusal is decided and audited as before.
func (b *Broker) publishAllowed(st *clientState, sess *authz.Session, topic string) bool {
	if m := &st.pubOK; sess != nil && m.sess == sess && m.topic == topic {
		return true
	}
	reason := b.limits.topicProblem(topic)
	if reason == "" {
		reason = publishTopicProblem(topic)
	}
	if reason != "" {
		b.metrics.DeniedPublish.Add(1)
		b.deny(st, authz.Publish, topic, reason)
		return false
	}
	if !sess.Allowed(authz.Publish, topic) {
		b.metrics.DeniedPublish.Add(1)
		b.deny(st, authz.Publish, topic, explain(sess, authz.Publish, topic))
		return false
	}
	st.pubOK = pubAllowed{sess: sess, topic: topic}
	return true
}

// pubAllowed is a topic the session allowed to publish (publishAllowed).
type pubAllowed struct {
	sess  *authz.Session
	topic string
}

// publishTopicProblem refuses topic names reserved for the broker: $SYS
// (mochi's own check, case-insensitive) and $share/ (a shared subscription
// prefix; as a topic name it would look like a filter to OnACLCheck).
// Wildcards are refused by mochi as a protocol violation.
func publishTopicProblem(topic string) string {
	switch {
	case len(topic) >= len(mqtt.SysPrefix) && strings.EqualFold(topic[:len(mqtt.SysPrefix)], mqtt.SysPrefix):
		return "$SYS topics are reserved for the broker"
	case mqtt.IsSharedFilter(topic):
		return "$share/ is a shared subscription prefix, not a topic"
	case strings.ContainsAny(topic, "+#"):
		return "a topic name must not contain + or #"
	}
	return ""
}

// OnPacketRead answers a PUBLISH to a $SYS topic. mochi drops such a
// message without asking any hook and without any acknowledgement, so a
// QoS 1/2 publisher would wait forever. It gets the same refusal as any
// denied publish (table at the top of this file): MQTT 5 PUBACK/PUBREC 0x87
// Not authorized, MQTT 3.1.1 disconnect; QoS 0 is dropped. 0x87 rather than
// 0x90 Topic Name invalid: the name is well formed, the broker refuses it.
// mochi then drops the packet as before.
func (h *hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if !cl.Net.Inline {
		if err := h.b.conformance(cl, &pk); err != nil { // conformance.go
			return pk, err
		}
	}
	h.b.traffic.received(cl, &pk) // traffic.go
	if pk.FixedHeader.Type != packets.Publish || cl.Net.Inline ||
		mqtt.IsValidFilter(pk.TopicName, true) || strings.ContainsAny(pk.TopicName, "+#") {
		return pk, nil
	}
	b := h.b
	b.metrics.DeniedPublish.Add(1)
	if st := b.state(cl); st != nil {
		b.deny(st, authz.Publish, pk.TopicName, publishTopicProblem(pk.TopicName))
		st.pipe.drain() // the refusal goes out after the pipelined PUBACKs
	}
	switch {
	case pk.FixedHeader.Qos == 0:
	case cl.Properties.ProtocolVersion == 5:
		ack := packets.Puback
		if pk.FixedHeader.Qos == 2 {
			ack = packets.Pubrec
		}
		_ = cl.WritePacket(packets.Packet{
			FixedHeader: packets.FixedHeader{Type: ack},
			PacketID:    pk.PacketID,
			ReasonCode:  packets.ErrNotAuthorized.Code,
			Properties:  packets.Properties{ReasonString: publishTopicProblem(pk.TopicName)},
		})
	default:
		_ = b.srv.DisconnectClient(cl, packets.ErrNotAuthorized)
	}
	return pk, nil
}

// OnPacketSent counts the PUBLISHes mochi wrote (traffic.go).
func (h *hook) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	h.b.traffic.sent(cl, &pk)
}

// deny audits a denial; res is the bare resource as passed to Allowed.
func (b *Broker) deny(st *clientState, a authz.Action, res, why string) {
	b.audit.Record(audit.Event{Event: audit.EventDeny, Device: st.id.ThingName, ClientID: st.clientID, Serial: st.id.Serial,
		Action: a.String(), Resource: resourceName(a, res), Statement: why})
}

// resourceName is the policy resource of a request: "topic/a/b", "client/x".
func resourceName(a authz.Action, res string) string {
	switch a {
	case authz.Connect:
		return "client/" + res
	case authz.Subscribe:
		return "topicfilter/" + res
	}
	return "topic/" + res
}

// OnPublish runs after the iot:Publish check and before the PUBACK is written
// (mochi facts in the package doc: the only place to hold the PUBACK for a durable write). It
// checks iot:RetainPublish, the retained caps, applies back-pressure for slow
// subscribers and enqueues messages for outbound routes: QoS 1 ones through
// the client's pipeline (pipeline.go: PUBACK and local delivery after the
// commit, in order, while the next PUBLISHes are read), the others here,
// synchronously, once the pipeline has drained.
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	b := h.b
	if cl.Net.Inline {
		return b.inlinePublish(cl, pk)
	}
	st := b.state(cl)
	if st == nil {
		return pk, packets.ErrRejectPacket
	}
	if b.shadowRequest(st, &pk) {
		pk.FixedHeader.Retain = false
		return pk, nil // answered (shadow.go): never retained nor queued upstream
	}
	if b.enrolRequest(cl, st, &pk) {
		pk.Ignore, pk.FixedHeader.Retain = true, false
		return pk, nil // answered to this client only (enrol.go): acknowledged, not routed
	}
	if pk.FixedHeader.Retain {
		if err := b.admitRetain(cl, st, &pk); err != nil {
			return pk, err
		}
	}
	if pk.FixedHeader.Qos > 0 {
		b.backpressure(cl, pk.TopicName)
	}
	ob := b.outbound.Load()
	var routes []string
	if ob != nil && ob.routes != nil {
		routes = ob.routes.OutboundRoutes(pk.TopicName, pk.FixedHeader.Qos)
	}
	rw := b.runRules(st, &pk) // rules.go; nil when no rule matched
	var submit submitFunc
	if ob != nil {
		submit = ob.submit
	}
	// Local only: pipelined when earlier messages are, or when a durable
	// offline session may take it (its PUBACK waits for that write).
	local := len(routes) == 0 && !rw.forwarding()
	if pk.FixedHeader.Qos == 1 && (submit != nil && !local || local && (st.pipe.busy() || b.mayHoldOffline())) {
		b.push(&st.pipe, submit, routes, &pk, rw)
		return takenOver(pk), nil // acknowledged and delivered by the pipeline
	}
	// mochi acknowledges (or refuses) and delivers this one when we return:
	// not before the client's earlier messages [MQTT-4.6.0-2].
	st.pipe.drain()
	return b.publishNow(cl, st, ob, routes, pk, rw)
}

// inlinePublish is OnPublish for the broker's own inline clients: a
// pipelined message goes through (checked and queued before its commit);
// an inbound one from the upstream (inbound.go, LocalPublisher) is
// delivered to the local subscribers whose policy allows Receive
// (OnACLCheck), never queued upstream again (loop prevention). A reserved
// topic name would reach OnACLCheck looking like a filter: not delivered.
func (b *Broker) inlinePublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Listener == pipelineListener {
		return pk, nil
	}
	if reason := publishTopicProblem(pk.TopicName); reason != "" {
		b.log.Warn("inbound message not delivered", "topic", pk.TopicName, "err", reason)
		return pk, packets.ErrRejectPacket
	}
	if pk.FixedHeader.Qos > 0 {
		b.backpressure(cl, pk.TopicName)
	}
	return pk, nil
}

// admitRetain checks a retained publish against iot:RetainPublish (an
// error refuses it) and the retained caps (over them: delivered, not
// retained).
func (b *Broker) admitRetain(cl *mqtt.Client, st *clientState, pk *packets.Packet) error {
	res := pk.TopicName
	sess := st.sess.Load()
	if !sess.Allowed(authz.RetainPublish, res) {
		b.metrics.DeniedRetain.Add(1)
		b.deny(st, authz.RetainPublish, res, explain(sess, authz.RetainPublish, res))
		st.pipe.drain() // the refusal goes out after the pipelined PUBACKs
		return b.rejectPublish(cl, *pk, packets.ErrNotAuthorized)
	}
	// Admitted now, stored when delivered (after the commit for a
	// pipelined message): the caps stay soft by the messages in flight.
	if len(pk.Payload) > 0 && !b.retained.admit(pk.TopicName, len(pk.Payload), b.limits) {
		pk.FixedHeader.Retain = false
		b.metrics.RetainedRejected.Add(1)
		b.audit.Record(audit.Event{Event: audit.EventDrop, Device: st.id.ThingName, ClientID: st.clientID, Resource: "topic/" + pk.TopicName, Reason: "retained message cap reached; delivered without retaining"})
	}
	return nil
}

// publishNow is mochi's synchronous path: the message is queued for its
// routes and forwards (Enqueue waits for the commit) before OnPublish
// returns and mochi acknowledges and delivers it; a QoS 2 message an
// offline session may take is delivered here (deliverBeforePubrec).
func (b *Broker) publishNow(cl *mqtt.Client, st *clientState, ob *outbound, routes []string, pk packets.Packet, rw *ruleWork) (packets.Packet, error) {
	for _, route := range routes {
		_, err := ob.q.Enqueue(context.Background(), store.Message{
			Route: route, Topic: pk.TopicName, Payload: pk.Payload, QoS: pk.FixedHeader.Qos,
			Retain: pk.FixedHeader.Retain, Device: st.id.ThingName,
		})
		if err == nil {
			b.metrics.Enqueued.Add(1)
			continue
		}
		b.metrics.EnqueueFailures.Add(1)
		b.audit.Record(audit.Event{Event: audit.EventDrop, Device: st.id.ThingName, ClientID: st.clientID, Resource: "topic/" + pk.TopicName, Reason: fmt.Sprintf("route %s: %v", route, err)})
		if pk.FixedHeader.Qos > 0 {
			if cl.Properties.ProtocolVersion == 5 {
				return pk, enqueueFailCode(err) // PUBACK 0x97 / 0x80, not delivered
			}
			// 3.1.1 has no negative PUBACK: disconnect, the client resends
			// after it reconnects (withholding only this PUBACK would leave
			// it waiting forever).
			b.metrics.EnqueueDisconnects.Add(1)
			_ = b.srv.DisconnectClient(cl, packets.ErrUnspecifiedError)
			return pk, packets.ErrRejectPacket // no PUBACK, not delivered
		}
	}
	if err := b.enqueueForwards(ob, rw); err != nil {
		b.audit.Record(audit.Event{Event: audit.EventDrop, Device: st.id.ThingName, ClientID: st.clientID, Resource: "topic/" + pk.TopicName, Reason: err.Error()})
		if pk.FixedHeader.Qos > 0 {
			return pk, b.rejectPublish(cl, pk, enqueueFailCode(err))
		}
	}
	if pk.FixedHeader.Qos == 2 && b.mayHoldOffline() {
		return b.deliverBeforePubrec(st, pk, rw), nil
	}
	b.rulesAccepted(rw)
	return pk, nil
}

// deliverBeforePubrec delivers a QoS 2 message before mochi writes its
// PUBREC, and waits for the write of what durable offline sessions took of
// it, as the pipeline does before a QoS 1 PUBACK (pipeline.go settle): once
// the publisher has the PUBREC it never sends the message again
// [MQTT-4.3.3-4], so a kill -9 right after must not lose it. mochi would
// deliver after the PUBREC; returned with Ignore, the packet is
// acknowledged and its QoS 2 state kept as usual, but neither delivered
// nor retained a second time.
func (b *Broker) deliverBeforePubrec(st *clientState, pk packets.Packet, rw *ruleWork) packets.Packet {
	inl := b.takeInline(st)
	defer b.putInline(inl)
	it := newPipeItem(&pk, nil)
	b.durableDelivery(func() {
		b.deliver(inl, it, nil)
		b.rulesAccepted(rw) // rules.go: republishes after the message's own delivery
	})
	it.release()
	pk.Ignore = true
	return pk
}

// rejectPublish refuses a PUBLISH after OnACLCheck accepted it, with the
// same client-visible behaviour as mochi's own ACL refusal (see the table
// at the top of this file).
// takenOver marks a publish the pipeline has taken so that mochi does
// nothing more with it when OnPublish returns: Ignore (no retain, no
// delivery: server.go retainMessage, publishToSubscribers) and QoS 0 in its
// eyes (no PUBACK, no receive quota). ErrRejectPacket would do the same, but
// then mochi's Hooks.OnPublish boxes the whole packet into a Debug log call
// for every message, which cost about 2% of the gateway's CPU under load.
func takenOver(pk packets.Packet) packets.Packet {
	pk.Ignore = true
	pk.FixedHeader.Qos = 0
	pk.FixedHeader.Retain = false
	return pk
}

func (b *Broker) rejectPublish(cl *mqtt.Client, pk packets.Packet, code packets.Code) error {
	if pk.FixedHeader.Qos == 0 {
		return packets.ErrRejectPacket
	}
	if cl.Properties.ProtocolVersion == 5 {
		return code // mochi writes PUBACK with this reason and does not deliver
	}
	_ = b.srv.DisconnectClient(cl, code)
	return packets.ErrRejectPacket
}

// Back-pressure. mochi hands each delivery to a bounded per-subscriber queue
// (MaximumClientWritesPending) and drops it when the queue is full, QoS 1
// included; it also drops QoS 1 deliveries once a subscriber has
// MaximumInflight unacknowledged messages (drops.go counts those). Neither
// would be visible to the publisher, which already got its PUBACK. So
// before a QoS 1/2 publish is
// acknowledged, the publisher waits while a connected subscriber of the topic
// has more than backpressureHigh messages in flight. The publisher's own
// Receive Maximum then throttles it: slow consumers slow producers down
// instead of losing their messages. The wait is bounded (backpressureMaxWait)
// so a stuck subscriber (or two clients publishing to each other) cannot
// stall a publisher forever; deliveries dropped after that are counted.
const (
	backpressureMaxWait = 2 * time.Second
	backpressurePoll    = 200 * time.Microsecond
)

func (b *Broker) backpressure(pub *mqtt.Client, topic string) {
	if atomic.LoadInt64(&b.srv.Info.Inflight) < int64(b.backpressureLow()) {
		return // fast path: no client can be over its mark
	}
	deadline := time.Now().Add(backpressureMaxWait)
	subs := b.srv.Topics.Subscribers(topic)
	for id := range subs.Subscriptions {
		cl, ok := b.srv.Clients.Get(id)
		if !ok || cl == pub {
			continue
		}
		high, st := b.backpressureHigh, b.state(cl)
		if st != nil && !st.recv.admit(cl, &high) {
			continue // stuck at its Receive Maximum: waited for once already (recvmax.go)
		}
		for cl.State.Inflight.Len() >= high && !cl.Closed() {
			if time.Now().After(deadline) {
				b.metrics.BackpressureTimeouts.Add(1)
				if st != nil {
					st.recv.timedOut()
				}
				return
			}
			b.metrics.BackpressureWaits.Add(1)
			time.Sleep(backpressurePoll)
		}
	}
}

// OnPublishDropped counts deliveries mochi dropped (subscriber queue full).
func (h *hook) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	b := h.b
	if pk.FixedHeader.Qos == 0 {
		b.metrics.DroppedQoS0.Add(1)
	} else {
		b.metrics.DroppedQoS1.Add(1)
	}
	dev := cl.ID
	if st := b.state(cl); st != nil {
		dev = st.id.ThingName
	}
	b.audit.Record(audit.Event{Event: audit.EventDrop, Device: dev, ClientID: cl.ID, Resource: "topic/" + pk.TopicName,
		Reason: "subscriber write queue full (QoS " + strconv.Itoa(int(pk.FixedHeader.Qos)) + ")"})
}

// OnQosDropped counts in-flight messages mochi abandoned.
func (h *hook) OnQosDropped(_ *mqtt.Client, _ packets.Packet) { h.b.metrics.InflightDropped.Add(1) }

func (h *hook) OnRetainMessage(_ *mqtt.Client, pk packets.Packet, _ int64) {
	h.b.retained.set(pk.TopicName, len(pk.Payload))
}

func (h *hook) OnRetainedExpired(topic string) { h.b.retained.set(topic, 0) }

// OnWill checks the will message like a publish from the client at the time
// it is sent: a will the client may no longer publish is dropped.
func (h *hook) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	b := h.b
	st := b.state(cl)
	if st == nil {
		return mqtt.Will{}, nil
	}
	st.pipe.drain() // the will after the client's messages (it runs before OnDisconnect)
	sess := st.sess.Load()
	res := will.TopicName
	ok := b.limits.topicProblem(will.TopicName) == "" && publishTopicProblem(will.TopicName) == "" && sess.Allowed(authz.Publish, res) &&
		(!will.Retain || sess.Allowed(authz.RetainPublish, res))
	if !ok {
		b.metrics.DeniedPublish.Add(1)
		b.deny(st, authz.Publish, res, "will message: "+explain(sess, authz.Publish, res))
		// An empty topic makes mochi deliver to nobody.
		return mqtt.Will{}, nil
	}
	return will, nil
}

// retainedAccount tracks the retained store for the count and bytes caps.
// The caps are soft by at most the number of concurrent publishers (admit
// and store are not one atomic step in mochi).
type retainedAccount struct {
	mu    sync.Mutex
	sizes map[string]int
	bytes int64
}

func (r *retainedAccount) set(topic string, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sizes == nil {
		r.sizes = map[string]int{}
	}
	r.bytes -= int64(r.sizes[topic])
	if n == 0 {
		delete(r.sizes, topic)
		return
	}
	r.sizes[topic] = n
	r.bytes += int64(n)
}

func (r *retainedAccount) admit(topic string, n int, l Limits) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	old, exists := r.sizes[topic]
	if !exists && l.RetainedMaxMessages > 0 && len(r.sizes) >= l.RetainedMaxMessages {
		return false
	}
	return l.RetainedMaxBytes <= 0 || r.bytes-int64(old)+int64(n) <= l.RetainedMaxBytes
}

func (r *retainedAccount) stats() (count int, bytes int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sizes), r.bytes
}

// topicProblem returns why a topic name or filter breaks the limits ("" if fine).
func (l Limits) topicProblem(t string) string {
	if l.MaxTopicLength > 0 && len(t) > l.MaxTopicLength {
		return fmt.Sprintf("topic longer than max_topic_length %d", l.MaxTopicLength)
	}
	if l.MaxTopicLevels > 0 && strings.Count(t, "/")+1 > l.MaxTopicLevels {
		return fmt.Sprintf("topic has more than max_topic_levels %d", l.MaxTopicLevels)
	}
	if strings.IndexByte(t, 0) >= 0 {
		return "topic contains NUL"
	}
	return ""
}

// explain names the deciding statement for the audit log (slow path only).
func explain(sess *authz.Session, a authz.Action, res string) string {
	if sess == nil {
		return "no session"
	}
	ex := sess.Explain(a, res)
	if ex.Decider == nil {
		return "no statement allows it (default deny)"
	}
	return ex.Decider.String()
}
