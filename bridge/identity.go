package bridge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"

	"github.com/eclipse/paho.golang/packets"
	"github.com/edgegw/edgegw/bridge/wire"
)

// A bridge's TLS identity can change while it runs (a renewed certificate,
// a SIGHUP with a new tls.cert): SwapIdentity stores the new certificate,
// ends the live connection and waits for the next CONNACK under it. The
// queue makes the swap lossless like any reconnect: what was in flight is
// rewound and sent again (duplicates bounded by the window).
//
// Call runs one request/response exchange over the live connection, for
// the cloud's own APIs (AWS IoT's create-from-csr and RegisterThing): it
// subscribes the response filters next to the in routes, publishes the
// request at QoS 0 and hands back the first response. Responses never reach
// the local broker.

// ErrNotConnected: Call found no live connection.
var ErrNotConnected = errors.New("bridge: not connected upstream")

// identity is the state of SwapIdentity: the certificate used for the next
// handshakes (nil: Config.TLS's), how many swaps were asked for, and which
// swap the live connection was made under.
type identity struct {
	mu      sync.Mutex
	cert    *tls.Certificate
	gen     uint64        // bumped by every swap
	connGen uint64        // gen of the live (or last) connection
	changed chan struct{} // closed and replaced at every CONNACK
	kick    chan struct{} // buffered 1: end the live connection now
}

func (id *identity) init() {
	id.changed = make(chan struct{})
	id.kick = make(chan struct{}, 1)
}

// clientCert returns the certificate for the next handshake and its
// generation.
func (b *Bridge) clientCert() (*tls.Certificate, uint64) {
	b.id.mu.Lock()
	defer b.id.mu.Unlock()
	return b.id.cert, b.id.gen
}

// connectedUnder records a CONNACK made with the identity of generation gen.
func (b *Bridge) connectedUnder(gen uint64) {
	b.id.mu.Lock()
	b.id.connGen = gen
	close(b.id.changed)
	b.id.changed = make(chan struct{})
	b.id.mu.Unlock()
}

// Identity returns the leaf certificate the bridge presents now (nil for a
// bridge without a client certificate).
func (b *Bridge) Identity() *tls.Certificate {
	c, _ := b.clientCert()
	if c != nil {
		return c
	}
	if b.cfg.TLS != nil && len(b.cfg.TLS.Certificates) > 0 {
		return &b.cfg.TLS.Certificates[0]
	}
	return nil
}

// SwapIdentity makes cert the bridge's client certificate, ends the live
// connection (if any) and waits until the bridge has connected under cert,
// or ctx ends. On ctx's end the previous identity is put back and the
// connection is ended again, so a certificate the upstream refuses does not
// keep the bridge offline; the error says so. A bridge that is not running
// keeps cert for its next connection and SwapIdentity waits for that.
func (b *Bridge) SwapIdentity(ctx context.Context, cert tls.Certificate) error {
	b.id.mu.Lock()
	prev := b.id.cert
	b.id.cert = &cert
	b.id.gen++
	want := b.id.gen
	b.id.mu.Unlock()
	b.Reconnect()
	for {
		b.id.mu.Lock()
		got, ch := b.id.connGen, b.id.changed
		b.id.mu.Unlock()
		if got >= want {
			b.log.Info("upstream identity swapped", "serial", serialOf(&cert))
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			b.id.mu.Lock()
			if b.id.gen == want { // no later swap: put the previous one back
				b.id.cert = prev
				b.id.gen++
			}
			b.id.mu.Unlock()
			b.Reconnect()
			return fmt.Errorf("bridge %s: no connection under the new identity (serial %s): %w; the previous identity is back in use", b.cfg.Name, serialOf(&cert), context.Cause(ctx))
		}
	}
}

func serialOf(c *tls.Certificate) string {
	if c == nil || c.Leaf == nil {
		return "?"
	}
	return c.Leaf.SerialNumber.Text(16)
}

// Reconnect ends the live connection; Run connects again at once (the first
// upstream first). Unacknowledged messages are sent again.
func (b *Bridge) Reconnect() {
	select {
	case b.id.kick <- struct{}{}:
	default:
	}
}

// errReconnect ends a session on Reconnect.
var errReconnect = errors.New("reconnecting: asked to (new identity)")

// kickLoop ends the session on Reconnect, with a normal DISCONNECT (the
// upstream keeps the session; PUBACKs still in flight are lost with the
// connection and their messages resent on the next).
func (s *session) kickLoop(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case <-s.b.id.kick:
	}
	s.wmu.Lock()
	_ = s.writeLocked([]byte{packets.DISCONNECT << 4, 0}) // [MQTT-3.14.2.1] remaining length 0: normal
	_ = s.flushLocked()
	s.wmu.Unlock()
	return errReconnect
}

// tap is one Call waiting for its response.
type tap struct {
	filters []string
	ch      chan response // buffered 1
	ready   chan struct{} // closed once its filters are subscribed
	once    sync.Once
}

// response is the upstream message that answered a Call.
type response struct {
	topic   string
	payload []byte
}

// Call subscribes filters (the responses), publishes payload on topic at
// QoS 0 over the live connection, and returns the topic and payload of the
// first message whose topic matches one of filters. It waits at most until ctx ends; without a live
// connection it returns ErrNotConnected at once. Calls are serialised.
func (b *Bridge) Call(ctx context.Context, topic string, payload []byte, filters []string) (string, []byte, error) {
	b.callMu.Lock()
	defer b.callMu.Unlock()
	if !b.connected.Load() {
		return "", nil, ErrNotConnected
	}
	for _, f := range filters {
		if err := ValidateFilter(f); err != nil {
			return "", nil, fmt.Errorf("bridge %s: call: %w", b.cfg.Name, err)
		}
	}
	t := &tap{filters: filters, ch: make(chan response, 1), ready: make(chan struct{})}
	b.tap.Store(t)
	defer func() {
		b.tap.Store(nil)
		b.resubscribe()
	}()
	b.resubscribe()
	select {
	case <-t.ready:
	case <-ctx.Done():
		return "", nil, fmt.Errorf("bridge %s: subscribing %q: %w", b.cfg.Name, filters, context.Cause(ctx))
	}
	s := b.sess.Load()
	if s == nil {
		return "", nil, ErrNotConnected
	}
	if err := s.publish0(topic, payload); err != nil {
		return "", nil, fmt.Errorf("bridge %s: publishing %s: %w", b.cfg.Name, topic, err)
	}
	select {
	case r := <-t.ch:
		return r.topic, r.payload, nil
	case <-ctx.Done():
		return "", nil, fmt.Errorf("bridge %s: no answer on %q: %w", b.cfg.Name, filters, context.Cause(ctx))
	}
}

func (b *Bridge) resubscribe() {
	select {
	case b.resub <- struct{}{}:
	default:
	}
}

// tapped hands p to the waiting Call when its topic matches; it reports
// whether it did.
func (b *Bridge) tapped(topic string, payload []byte) bool {
	t := b.tap.Load()
	if t == nil {
		return false
	}
	for _, f := range t.filters {
		if Match(f, topic) {
			select {
			case t.ch <- response{topic: topic, payload: append([]byte(nil), payload...)}:
			default: // a second answer: the first one counts
			}
			return true
		}
	}
	return false
}

// publish0 writes one QoS 0 PUBLISH without user properties and flushes it.
func (s *session) publish0(topic string, payload []byte) error {
	p := wire.AppendPublish(nil, wire.Publish{Topic: topic, Payload: payload, V311: s.v311})
	s.wmu.Lock()
	defer s.wmu.Unlock()
	err := s.writeLocked(p)
	if err == nil {
		err = s.flushLocked()
	}
	return err
}

// Connected reports whether the bridge has a live upstream connection.
func (b *Bridge) Connected() bool { return b.connected.Load() }
