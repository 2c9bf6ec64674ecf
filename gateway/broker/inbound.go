package broker

import (
	"fmt"
	"strings"
	"sync"

	"github.com/edgegw/edgegw/bridge"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// LocalPublisher publishes what came down from the upstream on the local
// broker as an inline mochi client: every local subscriber is checked with
// iot:Receive (OnACLCheck) like for any publication, and OnPublish never
// queues an inline publication (loop prevention). The client is not
// registered with mochi, so no device can take its client ID over.
type LocalPublisher struct {
	b      *Broker
	cl     *mqtt.Client
	mu     sync.Mutex
	closed bool
}

// inlineClientID is the origin of inbound messages; no thing can have it
// (thing names are [a-zA-Z0-9:_-]+).
const inlineClientID = "$edgegw-bridge"

// NewLocalPublisher returns the bridge's way into the local broker.
func NewLocalPublisher(b *Broker) *LocalPublisher {
	return &LocalPublisher{b: b, cl: b.srv.NewClient(nil, "bridge", inlineClientID, true)}
}

// ErrNotServing: the local broker is shut down.
// It wraps bridge.ErrLocalUnavailable, so the bridge leaves an inbound
// QoS 1 message unacknowledged for the upstream to redeliver.
var ErrNotServing = fmt.Errorf("local broker is not serving: %w", bridge.ErrLocalUnavailable)

// PublishLocal implements bridge.Publisher.
func (p *LocalPublisher) PublishLocal(topic string, payload []byte, retain bool, qos byte) error {
	if topic == "" || strings.ContainsAny(topic, "+#") {
		return fmt.Errorf("inbound topic %q: not a topic name", topic)
	}
	if reason := p.b.limits.topicProblem(topic); reason != "" {
		return fmt.Errorf("inbound topic %q: %s", topic, reason)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrNotServing
	}
	var err error
	// The bridge acknowledges upstream when this returns: after what an
	// offline session took of it is durable (sessionstore.go).
	p.b.durableDelivery(func() {
		err = p.b.srv.InjectPacket(p.cl, packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: min(qos, 1), Retain: retain},
			TopicName:   topic,
			Payload:     payload,
			PacketID:    uint16(min(qos, 1)), // validity only: the inline client is never acknowledged
		})
	})
	return err
}

// Close makes PublishLocal fail with ErrNotServing from now on.
func (p *LocalPublisher) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
}
