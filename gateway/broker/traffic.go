package broker

import (
	"slices"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Traffic counts PUBLISH packets and their payload bytes per listener and
// QoS, both directions, for the broker-wide message metrics. Counted by the
// broker's hook after the packet is read or written: two atomic adds per
// packet, no lock. (Not a hook of its own: mochi calls every hook's
// Provides for every event and copies the whole packets.Packet, about 800
// bytes, in and out of each hook call.)
type Traffic struct {
	listeners []string
	by        map[string]*[3]trafficCounters // listener -> by QoS; read-only after New
}

type trafficCounters struct{ recvMsgs, recvBytes, sentMsgs, sentBytes atomic.Uint64 }

// TrafficSample is one listener×QoS line of Traffic.Snapshot.
type TrafficSample struct {
	Listener                                 string
	QoS                                      byte
	Received, ReceivedBytes, Sent, SentBytes uint64
}

func newTraffic(ls []ListenerOptions) *Traffic {
	t := &Traffic{by: map[string]*[3]trafficCounters{}}
	for _, l := range ls {
		t.listeners = append(t.listeners, l.Name)
		t.by[l.Name] = new([3]trafficCounters)
	}
	return t
}

// Snapshot returns every listener×QoS line (zeros included), in listener order.
func (t *Traffic) Snapshot() []TrafficSample {
	out := make([]TrafficSample, 0, 3*len(t.listeners))
	for _, l := range t.listeners {
		c := t.by[l]
		for q := range c {
			out = append(out, TrafficSample{Listener: l, QoS: byte(q),
				Received: c[q].recvMsgs.Load(), ReceivedBytes: c[q].recvBytes.Load(),
				Sent: c[q].sentMsgs.Load(), SentBytes: c[q].sentBytes.Load()})
		}
	}
	return out
}

// counters are those of pk's listener and QoS when pk is a PUBLISH on a
// configured listener (inline clients have none: not counted).
func (t *Traffic) counters(cl *mqtt.Client, pk *packets.Packet) *trafficCounters {
	if pk.FixedHeader.Type != packets.Publish || cl == nil || pk.FixedHeader.Qos > 2 {
		return nil
	}
	c := t.by[cl.Net.Listener]
	if c == nil {
		return nil
	}
	return &c[pk.FixedHeader.Qos]
}

// received counts a packet read (the hook's OnPacketRead, once the packet
// passed the checks).
func (t *Traffic) received(cl *mqtt.Client, pk *packets.Packet) {
	if c := t.counters(cl, pk); c != nil {
		c.recvMsgs.Add(1)
		c.recvBytes.Add(uint64(len(pk.Payload)))
	}
}

// sent counts a packet mochi wrote (the hook's OnPacketSent).
func (t *Traffic) sent(cl *mqtt.Client, pk *packets.Packet) {
	if c := t.counters(cl, pk); c != nil {
		c.sentMsgs.Add(1)
		c.sentBytes.Add(uint64(len(pk.Payload)))
	}
}

// Traffic returns the broker's message counters by listener and QoS.
func (b *Broker) Traffic() *Traffic { return b.traffic }

// ListenerClients returns the connected clients per listener (every
// configured listener, zeros included).
func (b *Broker) ListenerClients() map[string]int {
	out := map[string]int{}
	for _, bl := range b.ls {
		out[bl.opts.Name] = 0
	}
	b.clients.Range(func(_, v any) bool {
		out[v.(*clientState).ls.opts.Name]++
		return true
	})
	return out
}

// DeviceCertExpiry is the aggregate of the connected clients' certificate
// ends of validity (no per-device detail): the earliest, and how many end
// before now+within. Earliest is zero when no client has a certificate.
func (b *Broker) DeviceCertExpiry(now time.Time, within time.Duration) (earliest time.Time, expiring int) {
	var all []time.Time
	b.clients.Range(func(_, v any) bool {
		if c := v.(*clientState).id.Cert; c != nil {
			all = append(all, c.NotAfter)
		}
		return true
	})
	for _, na := range all {
		if na.Before(now.Add(within)) {
			expiring++
		}
	}
	if len(all) > 0 {
		earliest = slices.MinFunc(all, func(a, b time.Time) int { return a.Compare(b) })
	}
	return earliest, expiring
}
