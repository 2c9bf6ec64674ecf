package broker

// Fleet provisioning on the local broker (gateway/enrol serves it).
//
// A PUBLISH whose topic is one of enrol.Filters ($aws/certificates/create-from-csr/json,
// $aws/provisioning-templates/T/provision/json, their /cbor twins, CreateKeysAndCertificate),
// once iot:Publish on its topic has passed (OnACLCheck: a claim certificate's policy allows
// only these), goes to the enrolment service and never to the topic tree: not delivered to
// other subscribers, not retained, not queued upstream. It is acknowledged as usual (QoS 1
// PUBACK, QoS 2 PUBREC) after the client's pipelined messages [MQTT-4.6.0-2].
//
// Each response is written to the requesting connection only, never through the topic tree:
// a create-from-csr response carries a certificateOwnershipToken, and a claim certificate is
// shared by a batch of sensors that all subscribe to the same response topics. The response
// goes out as QoS 0, not retained, and only if that connection has a subscription matching
// its topic and its policy allows iot:Receive on it (as any delivery); otherwise it is
// dropped and counted, as AWS IoT drops a response nobody subscribed to.
//
// Every CONNECT accepted (OnSessionEstablished) is reported to the service with the
// certificate's serial (Connected): the old certificate of a renewal is revoked once the new
// one has connected.

import (
	"context"
	"strings"
	"sync/atomic"
	"time"

	"github.com/edgegw/edgegw/bridge"
	"github.com/edgegw/edgegw/gateway/authz"
	"github.com/edgegw/edgegw/gateway/enrol"
	"github.com/edgegw/edgegw/gateway/pki"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// EnrolService answers fleet-provisioning requests. *enrol.Service satisfies it.
type EnrolService interface {
	Handle(ctx context.Context, r enrol.Request) []enrol.Response
	Connected(ctx context.Context, serial string) error
}

var _ EnrolService = (*enrol.Service)(nil)

// enrolTimeout bounds one request: a CA signature and write, and a pre-provisioning hook
// (enrol.DefaultHookTimeout, or the template's).
const enrolTimeout = time.Minute

// EnrolMetrics count what the broker did with enrolment requests and responses.
type EnrolMetrics struct {
	Requests    atomic.Int64 // handed to the service
	Responses   atomic.Int64 // written to the requesting client
	Undelivered atomic.Int64 // responses not written: no matching subscription, Receive denied, or the connection failed
}

type enrolRoom struct {
	svc     EnrolService
	metrics EnrolMetrics
}

// SetEnrol installs the enrolment service (nil: the provisioning topics are ordinary topics).
// It may be called at any time.
func (b *Broker) SetEnrol(s EnrolService) {
	if s == nil {
		b.enrol.Store(nil)
		return
	}
	b.enrol.Store(&enrolRoom{svc: s})
}

// EnrolMetrics returns the enrolment counters (nil when no service is set).
func (b *Broker) EnrolMetrics() *EnrolMetrics {
	if r := b.enrol.Load(); r != nil {
		return &r.metrics
	}
	return nil
}

// enrolRequest handles pk when it is an enrolment request and returns true; false leaves it
// to the ordinary path.
func (b *Broker) enrolRequest(cl *mqtt.Client, st *clientState, pk *packets.Packet) bool {
	r := b.enrol.Load()
	if r == nil || !enrol.Handles(pk.TopicName) {
		return false
	}
	st.pipe.drain()
	caller := enrol.Caller{ClientID: st.clientID, ThingName: st.id.ThingName, Source: cl.Net.Remote}
	if c := st.id.Cert; c != nil {
		caller.Cert, caller.Claim, caller.Serial = c, enrol.IsClaimCert(c), pki.SerialHex(c.SerialNumber)
	}
	ctx, cancel := context.WithTimeout(context.Background(), enrolTimeout)
	resps := r.svc.Handle(ctx, enrol.Request{Topic: pk.TopicName, Payload: pk.Payload, Caller: caller})
	cancel()
	r.metrics.Requests.Add(1)
	for _, resp := range resps {
		if b.enrolRespond(cl, st, resp) {
			r.metrics.Responses.Add(1)
		} else {
			r.metrics.Undelivered.Add(1)
		}
	}
	return true
}

// enrolRespond writes resp to the requesting client only; false when it was not written.
func (b *Broker) enrolRespond(cl *mqtt.Client, st *clientState, resp enrol.Response) bool {
	subscribed := false
	for filter := range cl.State.Subscriptions.GetAll() {
		if filterMatches(filter, resp.Topic) {
			subscribed = true
			break
		}
	}
	if !subscribed {
		b.log.Debug("enrolment response not delivered: no subscription matches it", "device", st.id.ThingName, "topic", resp.Topic)
		return false
	}
	if sess := st.sess.Load(); !sess.Allowed(authz.Receive, resp.Topic) {
		b.metrics.DeniedReceive.Add(1)
		b.deny(st, authz.Receive, resp.Topic, explain(sess, authz.Receive, resp.Topic))
		return false
	}
	err := cl.WritePacket(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 0},
		TopicName:   resp.Topic,
		Payload:     resp.Payload,
	})
	if err != nil {
		b.log.Debug("enrolment response not delivered", "device", st.id.ThingName, "topic", resp.Topic, "err", err)
		return false
	}
	return true
}

// enrolConnected tells the service a certificate connected (a renewal's new one is then
// confirmed). Cheap for every other serial.
func (b *Broker) enrolConnected(st *clientState) {
	r := b.enrol.Load()
	if r == nil || st.id.Cert == nil {
		return
	}
	if err := r.svc.Connected(context.Background(), pki.SerialHex(st.id.Cert.SerialNumber)); err != nil {
		b.log.Warn("enrolment: recording a renewed certificate's first connect", "device", st.id.ThingName, "err", err)
	}
}

// filterMatches reports whether a connection's own subscription filter matches the topic
// name (bridge.Match: MQTT 4.7, a wildcard first level does not match a $ topic); shared
// subscriptions ($share/...) are not a connection's own.
func filterMatches(filter, topic string) bool {
	return !strings.HasPrefix(filter, "$share/") && bridge.Match(filter, topic)
}
