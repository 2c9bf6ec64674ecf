package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/edgegw/edgegw/store"
)

// The upstream write path: one goroutine per connection (writeLoop) takes
// each message from the queue, finds its out route, wraps it in the
// envelope, waits for pacing and a window slot, and writes the PUBLISH into
// the connection's buffer. The buffer is flushed only when the loop would
// wait (queue empty, token bucket empty, window full), so a burst leaves in
// as few writes as the window allows. A QoS 1 publish leaves the queue on
// its PUBACK (readLoop); a QoS 0 publish when the flush that carried it
// succeeded.

// writer is the state of one connection's write loop.
type writer struct {
	s *session
	// now is an already-cancelled context: Next(now) takes what is queued
	// without waiting (the Queue contract).
	now context.Context
	// drain paces the backlog (Config.DrainRate); nil when unpaced.
	drain *bucket
	// limit is the connection's publish rate (Config.MaxRate); nil when
	// unlimited.
	limit *bucket
	// qos0 holds the sequence numbers of QoS 0 publishes written but not yet
	// flushed: they are acknowledged to the queue on flush.
	qos0 []uint64
}

// outbound is a message made ready for the wire: its out route, upstream
// topic (prefix followed by remote: the route's remote prefix and the rest
// of the local topic are not joined into a new string for every message)
// and payload (after the envelope), and the QoS it is sent at.
type outbound struct {
	route   Route
	prefix  string
	remote  string
	payload []byte
	qos     byte
}

// topic is out's upstream topic as one string.
func (out *outbound) topic() string { return out.prefix + out.remote }

// writeLoop takes messages from the queue and publishes them in queue order
// (so FIFO per route on the wire [MQTT-4.6.0-6]), with up to window QoS 1
// publishes unacknowledged. It flushes whenever it would wait.
func (s *session) writeLoop(ctx context.Context) error {
	w := s.newWriter()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		m, err := w.next(ctx)
		if err != nil {
			return err
		}
		out, ok := s.prepare(m)
		if !ok {
			continue // dead-lettered
		}
		if err := w.pace(ctx, m); err != nil {
			return err
		}
		if err := w.publish(ctx, m, out); err != nil {
			return err
		}
	}
}

func (s *session) newWriter() *writer {
	now, cancelNow := context.WithCancel(context.Background())
	cancelNow()
	w := &writer{s: s, now: now}
	if r := s.b.cfg.DrainRate; r > 0 {
		w.drain = newBucket(r, time.Now, sleepCtx)
	}
	if r := s.b.cfg.MaxRate; r > 0 {
		w.limit = newBucket(r, time.Now, sleepCtx)
	}
	return w
}

// flush writes out what is buffered, then acknowledges the QoS 0 publishes
// it carried.
func (w *writer) flush() error {
	s := w.s
	s.wmu.Lock()
	err := s.flushLocked()
	s.wmu.Unlock()
	if err != nil {
		return err
	}
	for _, seq := range w.qos0 {
		s.ack(seq)
	}
	w.qos0 = w.qos0[:0]
	return nil
}

// next returns the next queued message: at once if one is there, else after
// a flush (the loop is about to wait) and a wait on ctx. An error from the
// queue itself is a *queueError, which stops the bridge.
func (w *writer) next(ctx context.Context) (store.Message, error) {
	q := w.s.b.q
	m, err := q.Next(w.now)
	if errors.Is(err, context.Canceled) {
		if err := w.flush(); err != nil {
			return store.Message{}, err
		}
		m, err = q.Next(ctx)
	}
	if err != nil {
		if ctx.Err() != nil {
			return store.Message{}, ctx.Err()
		}
		return store.Message{}, &queueError{err}
	}
	return m, nil
}

// prepare finds m's out route (by name, else by topic when the routes were
// reloaded since it was queued) and applies the envelope. A message no out
// route takes any more, or that breaks the profile's rules (topic depth,
// size), is dead-lettered: ok is false.
func (s *session) prepare(m store.Message) (outbound, bool) {
	b := s.b
	rs := b.routes.Load()
	r, ok := rs.ByName(m.Route)
	if !ok || !r.Direction.out() {
		if r, ok = rs.FirstOut(m.Topic); !ok {
			s.deadLetter(pending{seq: m.Seq, route: m.Route, device: m.Device, topic: m.Topic}, 0, "no out route matches any more (routes reloaded)")
			return outbound{}, false
		}
	}
	out := outbound{
		route:   r,
		qos:     min(r.wireQoS(), m.QoS, s.server.maxQoS),
		prefix:  r.RemotePrefix,
		remote:  strings.TrimPrefix(m.Topic, r.LocalPrefix), // r.RemoteTopic, not joined
		payload: m.Payload,
	}
	if env := b.cfg.Envelope; env != EnvelopeUserProperties && env != EnvelopeNone {
		out.remote, out.payload = wrap(env, b.cfg.UserProps, r, out.topic(), m)
		out.prefix = ""
	} else if b.cfg.checksTopic() {
		out.remote, out.prefix = out.topic(), ""
	}
	if why := b.cfg.messageProblem(out.remote, len(out.payload)); why != "" {
		s.deadLetter(out.pending(m), 0, why)
		return outbound{}, false
	}
	return out, true
}

// pending is what the session remembers of out while it is in flight.
func (out *outbound) pending(m store.Message) pending {
	return pending{seq: m.Seq, route: out.route.Name, device: m.Device, prefix: out.prefix, topic: out.remote}
}

// pace waits for m's turn under the drain rate and the connection's rate
// limit, flushing first whenever it has to wait.
//
// A message enqueued before this connection came up is backlog; it waits for
// a drain token so a long outage does not flood the upstream. Messages
// enqueued since flow unpaced; they queue behind the backlog of their own
// route anyway (FIFO). The connection's publish rate limit (a cloud's
// per-connection quota) holds for every message.
func (w *writer) pace(ctx context.Context, m store.Message) error {
	if w.drain != nil && m.Time < w.s.connected.UnixNano() {
		w.s.b.c.paced.Add(1)
		if err := w.take(ctx, w.drain); err != nil {
			return err
		}
	}
	if w.limit != nil {
		return w.take(ctx, w.limit)
	}
	return nil
}

// take takes a token from bk, flushing and waiting when there is none.
func (w *writer) take(ctx context.Context, bk *bucket) error {
	if bk.tryTake() {
		return nil
	}
	if err := w.flush(); err != nil {
		return err
	}
	return bk.take(ctx)
}

// register takes a place in the in-flight window for a QoS 1 publish p
// and returns its packet identifier. When the window is full it flushes (so
// the server sees what we wrote) and waits until the reader releases the
// slots of the PUBACKs it read (releaseAcked): all of those that came in
// one read at once, so the publishes that refill them leave in one flush.
func (w *writer) register(ctx context.Context, p pending) (uint16, error) {
	s := w.s
	for {
		if id, ok := s.take(p); ok {
			return id, nil
		}
		if err := w.flush(); err != nil {
			return 0, err
		}
		select {
		case <-s.slotFree:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// releaseSlot undoes register for a publish that was never written.
func (s *session) releaseSlot(id uint16) {
	s.mu.Lock()
	delete(s.inflight, uint32(id))
	s.held--
	s.mu.Unlock()
	s.b.inflight.Add(-1)
}

// publish encodes out as a PUBLISH (with a packet identifier in the window
// at QoS 1) and writes it into the connection's buffer. A packet larger than
// the upstream's Maximum Packet Size is dead-lettered instead (0x95), since
// the upstream would disconnect for it [MQTT-3.2.2-15].
func (w *writer) publish(ctx context.Context, m store.Message, out outbound) error {
	s := w.s
	var id uint16
	if out.qos > 0 {
		var err error
		if id, err = w.register(ctx, out.pending(m)); err != nil {
			return err
		}
	}
	s.scratch = s.appendPublish(s.scratch[:0], out.prefix, out.remote, out.payload, m, out.qos, id)
	if max := s.server.maxPacket; max > 0 && uint32(len(s.scratch)) > max {
		if out.qos > 0 {
			s.releaseSlot(id)
		}
		s.deadLetter(out.pending(m), 0x95,
			fmt.Sprintf("message of %d bytes exceeds the upstream's maximum packet size %d", len(s.scratch), max))
		return nil
	}
	s.wmu.Lock()
	err := s.writeLocked(s.scratch)
	s.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("writing to upstream: %w", err)
	}
	s.b.c.sent.Add(1)
	if out.qos == 0 {
		w.qos0 = append(w.qos0, m.Seq)
	}
	return nil
}
