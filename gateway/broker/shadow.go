package broker

// Device Shadow requests on the local broker (gateway/shadow serves them).
//
// A PUBLISH to $aws/things/THING/shadow[/name/SHADOW]/{get,update,delete}
// from a device, once iot:Publish on its topic has passed (OnACLCheck), also
// needs iot:GetThingShadow, iot:UpdateThingShadow or iot:DeleteThingShadow on
// thing/THING (thing/THING/SHADOW for a named shadow), as in AWS IoT Core. A
// refusal is answered like AWS does, with a 403 on .../rejected, and audited;
// otherwise the shadow service handles it. The responses are published on
// the local broker by an inline client: every subscriber is checked with
// iot:Receive (OnACLCheck) like for any delivery, and no response is queued
// upstream or retained. The request itself is not queued upstream and not
// retained either; local subscribers of the request topic still receive it.
//
// mochi and $-topics: mochi refuses PUBLISH topic names starting with $SYS
// only (IsValidFilter), so $aws/... requests reach the hooks; an inline
// client's publications skip that check altogether. MQTT [MQTT-4.7.2-1]
// keeps $-topics out of filters starting with a wildcard, which mochi
// enforces: a device must subscribe to $aws/things/... explicitly.

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/gateway/authz"
	"github.com/edgegw/edgegw/gateway/shadow"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// ShadowService answers Device Shadow requests. *shadow.Service satisfies it.
type ShadowService interface {
	Handle(ctx context.Context, req shadow.Request) []shadow.Response
	Reject(req shadow.Request, e *shadow.Error) []shadow.Response
}

var _ ShadowService = (*shadow.Service)(nil)

// shadowListener names the inline clients that publish shadow responses.
const shadowListener = "\x00shadow"

// shadowTimeout bounds one request's store write.
const shadowTimeout = 10 * time.Second

// ShadowMetrics count shadow requests by outcome.
type ShadowMetrics struct {
	Requests atomic.Int64 // handled by the service (accepted or rejected by it)
	Denied   atomic.Int64 // refused with 403 by policy
}

type shadowRoom struct {
	svc     ShadowService
	metrics ShadowMetrics
	mu      sync.Mutex
	free    []*mqtt.Client
}

// SetShadows installs the shadow service (nil: shadow topics are ordinary
// topics, as before). It may be called at any time.
func (b *Broker) SetShadows(s ShadowService) {
	if s == nil {
		b.shadows.Store(nil)
		return
	}
	b.shadows.Store(&shadowRoom{svc: s})
}

// ShadowMetrics returns the shadow counters (nil when no service is set).
func (b *Broker) ShadowMetrics() *ShadowMetrics {
	if r := b.shadows.Load(); r != nil {
		return &r.metrics
	}
	return nil
}

// shadowRequest handles pk when it is a shadow request and returns true;
// false leaves it to the ordinary path. The client's pipeline is drained
// first: the responses and the PUBACK follow its earlier messages
// [MQTT-4.6.0-2].
func (b *Broker) shadowRequest(st *clientState, pk *packets.Packet) bool {
	r := b.shadows.Load()
	if r == nil {
		return false
	}
	thing, name, op, ok := shadow.Match(pk.TopicName)
	if !ok {
		return false
	}
	if pk.FixedHeader.Retain && !st.sess.Load().Allowed(authz.RetainPublish, pk.TopicName) {
		return false // refused by the ordinary path, as any retained publish without iot:RetainPublish
	}
	st.pipe.drain()
	req := shadow.Request{Topic: pk.TopicName, Payload: pk.Payload, ClientID: st.clientID, Thing: st.id.ThingName, Time: time.Now()}
	perm := shadow.PermissionFor(op, thing, name)
	a := shadowAction(op)
	res := perm.Resource[len("thing/"):]
	var resps []shadow.Response
	sess := st.sess.Load()
	if sess.Allowed(a, res) {
		ctx, cancel := context.WithTimeout(context.Background(), shadowTimeout)
		resps = r.svc.Handle(ctx, req)
		cancel()
		r.metrics.Requests.Add(1)
	} else {
		r.metrics.Denied.Add(1)
		b.audit.Record(audit.Event{Event: audit.EventDeny, Device: st.id.ThingName, ClientID: st.clientID, Serial: st.id.Serial,
			Action: perm.Action, Resource: perm.Resource, Statement: explain(sess, a, res)})
		resps = r.svc.Reject(req, shadow.ErrForbidden)
	}
	for _, resp := range resps {
		b.publishShadow(r, resp)
	}
	return true
}

func shadowAction(op shadow.Op) authz.Action {
	switch op {
	case shadow.OpGet:
		return authz.GetThingShadow
	case shadow.OpDelete:
		return authz.DeleteThingShadow
	}
	return authz.UpdateThingShadow
}

// PublishShadow publishes a shadow response (or a synced change) on the
// local broker, not retained, to the subscribers whose policy allows
// iot:Receive. It does nothing when no service is set.
func (b *Broker) PublishShadow(resp shadow.Response) {
	if r := b.shadows.Load(); r != nil {
		b.publishShadow(r, resp)
	}
}

func (b *Broker) publishShadow(r *shadowRoom, resp shadow.Response) {
	if !b.subscribed(resp.Topic) {
		return
	}
	r.mu.Lock()
	var cl *mqtt.Client
	if n := len(r.free); n > 0 {
		cl, r.free = r.free[n-1], r.free[:n-1]
	}
	r.mu.Unlock()
	if cl == nil {
		cl = b.srv.NewClient(nil, shadowListener, "$edgegw-shadow", true)
	}
	err := b.srv.InjectPacket(cl, packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
		TopicName:   resp.Topic,
		Payload:     resp.Payload,
		PacketID:    1, // validity only: the inline client is never acknowledged
	})
	r.mu.Lock()
	r.free = append(r.free, cl)
	r.mu.Unlock()
	if err != nil {
		b.log.Debug("shadow response not delivered", "topic", resp.Topic, "err", err)
		return
	}
	// InjectPacket counts the packet as received; no client sent it.
	atomic.AddInt64(&b.srv.Info.PacketsReceived, -1)
	atomic.AddInt64(&b.srv.Info.MessagesReceived, -1)
}
