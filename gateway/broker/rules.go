package broker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/gateway/authz"
	"github.com/edgegw/edgegw/gateway/rules"
	"github.com/edgegw/edgegw/store"
)

// Rules (gateway/rules) run in OnPublish, after the PUBLISH passed
// iot:Publish (OnACLCheck) and iot:RetainPublish, on every message a client
// sends (not on what the upstream sends down, nor on what a rule republishes:
// no rule loops). Their outputs:
//
//   - forward: a store.Message for the named route, submitted to the queue
//     beside the message's own routes, through the same path: a QoS 1
//     message goes through the client's pipeline and its PUBACK waits for
//     the fsync of every copy, the rule's included; a refused forward
//     refuses the message as a refused route does (pipeline.go). QoS 0
//     messages are enqueued synchronously.
//   - republish: published on the local broker once the message is
//     accepted (after its commit, beside its local delivery), authorized as
//     the rule's identity: iot:Publish on the topic with that registry
//     thing's policies. Subscribers are checked with iot:Receive as always.
//     A republished message is not queued upstream (use forward for that)
//     and does not run rules.
//   - the error action: when an action fails (the SQL on this payload, a
//     refused republish, a refused forward), with AWS's error message.
//
// Every failure is audited as a drop naming the rule.

// ruleState is the compiled rule set and the sessions of the rules'
// identities, bound against one policy engine.
type ruleState struct {
	set *rules.Set

	mu    sync.Mutex
	eng   *authz.Engine             // the engine sessions were bound with
	sess  map[string]*authz.Session // identity -> session
	inl   *mqtt.Client              // republishes, under mu
	inlMu sync.Mutex
}

// SetRules installs a compiled rule set (nil or empty: no rules). It is
// safe while serving: a message being processed finishes with the set it
// started with.
func (b *Broker) SetRules(s *rules.Set) {
	if s == nil || len(s.Rules()) == 0 {
		b.rules.Store(nil)
		return
	}
	b.rules.Store(&ruleState{set: s, sess: map[string]*authz.Session{}})
}

// ruleWork is what the rules decided for one message: the forwards to
// enqueue with it and the rest to do once it is accepted.
type ruleWork struct {
	rs       *ruleState
	st       *clientState
	msg      rules.Message
	results  []rules.Result
	forwards []store.Message
	fwFrom   []ruleOutput // the rule and output of each forward
}

type ruleOutput struct {
	rule *rules.Rule
	out  rules.Output
}

// runRules evaluates the rules matching pk's topic; nil when none matched.
func (b *Broker) runRules(st *clientState, pk *packets.Packet) *ruleWork {
	rs := b.rules.Load()
	if rs == nil || !rs.set.Any(pk.TopicName) {
		return nil
	}
	rw := &ruleWork{rs: rs, st: st, msg: rules.Message{
		Topic: pk.TopicName, Payload: pk.Payload, ClientID: st.clientID, Thing: st.id.ThingName,
		QoS: pk.FixedHeader.Qos, Retain: pk.FixedHeader.Retain,
		MQTT5: st.cl.Properties.ProtocolVersion == 5,
	}}
	if st.id.Cert != nil {
		sum := sha256.Sum256(st.id.Cert.Raw)
		rw.msg.Principal = hex.EncodeToString(sum[:])
	}
	if st.id.SourceIP.IsValid() {
		rw.msg.SourceIP = st.id.SourceIP.String()
	}
	if rw.msg.MQTT5 {
		p := &pk.Properties
		rw.msg.ContentType, rw.msg.ResponseTopic, rw.msg.CorrelationData = p.ContentType, p.ResponseTopic, p.CorrelationData
		rw.msg.PayloadUTF8 = p.PayloadFormatFlag && p.PayloadFormat == 1
		for _, u := range p.User {
			rw.msg.UserProperties = append(rw.msg.UserProperties, rules.UserProperty{Key: u.Key, Value: u.Val})
		}
	}
	rw.results = rs.set.Process(&rw.msg)
	if len(rw.results) == 0 {
		return nil
	}
	for _, res := range rw.results {
		for _, o := range res.Outputs {
			if o.Kind != rules.Forward {
				continue
			}
			rw.forwards = append(rw.forwards, store.Message{Route: o.Route, Topic: o.Topic, Payload: o.Payload,
				QoS: max(pk.FixedHeader.Qos, 1), Device: st.id.ThingName})
			rw.fwFrom = append(rw.fwFrom, ruleOutput{res.Rule, o})
		}
	}
	return rw
}

// routeNames lists the forwards' routes, for the pipeline's bookkeeping.
func (rw *ruleWork) routeNames() []string {
	out := make([]string, len(rw.forwards))
	for i, m := range rw.forwards {
		out[i] = m.Route
	}
	return out
}

// forwardFailed runs the error action of the rule whose forward i was
// refused by the queue.
func (b *Broker) forwardFailed(rw *ruleWork, i int, err error) {
	if rw == nil || i < 0 || i >= len(rw.fwFrom) {
		return
	}
	ro := rw.fwFrom[i]
	b.ruleFailed(rw, ro.rule, []rules.Failure{{Action: ro.out.Action, Kind: rules.Forward, Resource: ro.out.Route,
		Message: fmt.Sprintf("enqueueing into route %s: %v", ro.out.Route, err)}})
}

// rulesAccepted performs what the rules decided once the message is
// accepted: republishes, and the error actions of what failed.
func (b *Broker) rulesAccepted(rw *ruleWork) {
	if rw == nil {
		return
	}
	for _, res := range rw.results {
		if len(res.Failures) > 0 {
			b.auditRuleFailures(rw, res.Rule, res.Failures)
			if res.ErrorOutput != nil {
				b.performErrorOutput(rw, res.Rule, *res.ErrorOutput)
			}
		}
		var failed []rules.Failure
		for _, o := range res.Outputs {
			if o.Kind != rules.Republish {
				continue
			}
			if err := b.republish(rw.rs, res.Rule, o); err != nil {
				failed = append(failed, rules.Failure{Action: o.Action, Kind: rules.Republish, Resource: o.Topic, Message: err.Error()})
			}
		}
		if len(failed) > 0 {
			b.ruleFailed(rw, res.Rule, failed)
		}
	}
}

// ruleFailed audits failures met while performing a rule's outputs and runs
// its error action.
func (b *Broker) ruleFailed(rw *ruleWork, r *rules.Rule, failures []rules.Failure) {
	b.auditRuleFailures(rw, r, failures)
	if o, ok := r.OnError(&rw.msg, failures); ok {
		b.performErrorOutput(rw, r, o)
	}
}

func (b *Broker) auditRuleFailures(rw *ruleWork, r *rules.Rule, failures []rules.Failure) {
	b.metrics.RuleFailures.Add(int64(len(failures)))
	for _, f := range failures {
		b.audit.Record(audit.Event{Event: audit.EventDrop, Device: rw.st.id.ThingName, ClientID: rw.st.clientID,
			Resource: "topic/" + rw.msg.Topic, Reason: fmt.Sprintf("rule %s: %s %s: %s", r.Name(), f.Kind, f.Resource, f.Message)})
	}
}

// performErrorOutput does an error action; its own failure is audited only.
func (b *Broker) performErrorOutput(rw *ruleWork, r *rules.Rule, o rules.Output) {
	var err error
	switch o.Kind {
	case rules.Republish:
		err = b.republish(rw.rs, r, o)
	case rules.Forward:
		ob := b.outbound.Load()
		if ob == nil || ob.q == nil {
			err = fmt.Errorf("no queue: the gateway has no bridge")
			break
		}
		_, err = ob.q.Enqueue(context.Background(), store.Message{Route: o.Route, Topic: o.Topic, Payload: o.Payload, QoS: 1, Device: rw.st.id.ThingName})
	}
	if err != nil {
		b.metrics.RuleFailures.Add(1)
		b.audit.Record(audit.Event{Event: audit.EventDrop, Device: rw.st.id.ThingName, ClientID: rw.st.clientID,
			Resource: "topic/" + rw.msg.Topic, Reason: fmt.Sprintf("rule %s: error action %s %s failed: %v", r.Name(), o.Kind, o.Topic, err)})
	}
}

// session returns the rule identity's session with the current policies.
func (rs *ruleState) session(eng *authz.Engine, identity string) (*authz.Session, error) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.eng != eng {
		rs.eng, rs.sess = eng, map[string]*authz.Session{}
	}
	if s, ok := rs.sess[identity]; ok {
		return s, nil
	}
	s, err := eng.Bind(authz.Identity{ClientID: identity, ThingName: identity, CleanSession: true})
	if err != nil {
		return nil, err
	}
	rs.sess[identity] = s
	return s, nil
}

// republish publishes o on the local broker as the rule's identity.
func (b *Broker) republish(rs *ruleState, r *rules.Rule, o rules.Output) error {
	id := r.Identity()
	if id == "" {
		return fmt.Errorf("iot:Publish topic/%s: the rule has no identity to publish as", o.Topic)
	}
	if reason := b.limits.topicProblem(o.Topic); reason != "" {
		return fmt.Errorf("topic %q: %s", o.Topic, reason)
	}
	if reason := publishTopicProblem(o.Topic); reason != "" {
		return fmt.Errorf("topic %q: %s", o.Topic, reason)
	}
	sess, err := rs.session(b.policy.Load(), id)
	if err != nil {
		return fmt.Errorf("rule identity %q: %w", id, err)
	}
	if !sess.Allowed(authz.Publish, o.Topic) {
		b.metrics.DeniedPublish.Add(1)
		return fmt.Errorf("iot:Publish topic/%s not allowed for rule identity %q: %s", o.Topic, id, explain(sess, authz.Publish, o.Topic))
	}
	if !b.subscribed(o.Topic) {
		return nil
	}
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: o.QoS},
		TopicName:   o.Topic, Payload: o.Payload, PacketID: uint16(o.QoS),
	}
	if h := o.Headers; h != nil {
		p := &pk.Properties
		if h.PayloadUTF8 != nil {
			p.PayloadFormatFlag = true
			if *h.PayloadUTF8 {
				p.PayloadFormat = 1
			}
		}
		p.ContentType, p.ResponseTopic, p.CorrelationData = h.ContentType, h.ResponseTopic, h.CorrelationData
		if h.MessageExpiry != nil {
			p.MessageExpiryInterval = *h.MessageExpiry
		}
		for _, u := range h.UserProperties {
			p.User = append(p.User, packets.UserProperty{Key: u.Key, Val: u.Value})
		}
	}
	rs.inlMu.Lock()
	defer rs.inlMu.Unlock()
	if rs.inl == nil {
		// pipelineListener: OnPublish lets it through untouched (authorized
		// here, never queued upstream, no rules).
		rs.inl = b.srv.NewClient(nil, pipelineListener, id, true)
		rs.inl.Properties.ProtocolVersion = 5
	}
	rs.inl.ID = id
	if err := b.srv.InjectPacket(rs.inl, pk); err != nil {
		return fmt.Errorf("publishing locally: %w", err)
	}
	b.metrics.RuleRepublished.Add(1)
	return nil
}

// enqueueForwards enqueues the rules' forwards synchronously (the path of
// messages that do not go through the pipeline). A refused forward runs
// the rule's error action; the returned error is the first refusal.
func (b *Broker) enqueueForwards(ob *outbound, rw *ruleWork) error {
	if rw == nil {
		return nil
	}
	var first error
	for i, m := range rw.forwards {
		var err error
		if ob == nil || ob.q == nil {
			err = fmt.Errorf("no queue: the gateway has no bridge")
		} else {
			_, err = ob.q.Enqueue(context.Background(), m)
		}
		if err == nil {
			b.metrics.Enqueued.Add(1)
			b.metrics.RuleForwarded.Add(1)
			continue
		}
		b.metrics.EnqueueFailures.Add(1)
		b.forwardFailed(rw, i, err)
		if first == nil {
			first = fmt.Errorf("route %s: %w", m.Route, err)
		}
	}
	return first
}

// forwarding reports whether the rules forward anything (nil-safe).
func (rw *ruleWork) forwarding() bool { return rw != nil && len(rw.forwards) > 0 }
