package broker

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/edgegw/edgegw/store"
)

// countingQueue is an Enqueuer that counts (and accepts) everything.
type countingQueue struct{ n atomic.Int64 }

func (c *countingQueue) Enqueue(context.Context, store.Message) (uint64, error) {
	return uint64(c.n.Add(1)), nil
}

// matchAll is a RouteMatcher with one out route, "all", for every topic and
// QoS (as a route {topic: "#", direction: both, queue_qos0: true} would be).
type matchAll struct{}

func (matchAll) OutboundRoutes(string, byte) []string { return []string{"all"} }

// TestInboundLocalDelivery: what the bridge brings down is delivered only to
// subscribers whose policy allows Receive, and never queued (loop prevention),
// even where an out route matches the topic.
func TestInboundLocalDelivery(t *testing.T) {
	e := newEnv(t, nil)
	q := new(countingQueue)
	e.b.SetOutbound(q, matchAll{})
	a, err := e.connectV5(t, e.pki.Issue(t, "sensor-a"), "sensor-a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.connectV5(t, e.pki.Issue(t, "sensor-b"), "sensor-b")
	if err != nil {
		t.Fatal(err)
	}
	mon, err := e.connectV5(t, e.pki.Issue(t, "monitor"), "monitor")
	if err != nil {
		t.Fatal(err)
	}
	if rc := a.Subscribe(t, "cmd/sensor-a", 1); rc != 1 {
		t.Fatalf("sensor-a subscribe: 0x%02x", rc)
	}
	if rc := b.Subscribe(t, "cmd/sensor-b", 1); rc != 1 {
		t.Fatalf("sensor-b subscribe: 0x%02x", rc)
	}
	if rc := mon.Subscribe(t, "sensors/#", 1); rc != 1 {
		t.Fatalf("monitor subscribe: 0x%02x", rc)
	}
	p := NewLocalPublisher(e.b)
	for _, tc := range []struct {
		topic string
		qos   byte
	}{{"cmd/sensor-a", 1}, {"sensors/x/secret", 1}, {"sensors/x/t", 0}} {
		if err := p.PublishLocal(tc.topic, []byte("on"), false, tc.qos); err != nil {
			t.Fatalf("PublishLocal %s: %v", tc.topic, err)
		}
	}
	if got := a.ExpectOnly(t, "cmd/sensor-a"); got.QoS != 1 || string(got.Payload) != "on" {
		t.Errorf("sensor-a got %+v", got)
	}
	mon.ExpectOnly(t, "sensors/x/t") // the secret one is denied by iot:Receive
	// A local publish on a routed topic is queued; the inbound ones were not.
	if rc, err := a.Publish(t, "sensors/sensor-a/t", 1, false, "x"); err != nil || rc != 0 {
		t.Fatalf("sensor-a publish: 0x%02x %v", rc, err)
	}
	mon.ExpectOnly(t, "sensors/sensor-a/t")
	select {
	case m := <-b.Msgs:
		t.Fatalf("sensor-b received %q; its policy allows only cmd/sensor-b", m.Topic)
	default:
	}
	if n := q.n.Load(); n != 1 {
		t.Fatalf("enqueued %d messages; want 1 (inbound messages must never be queued upstream)", n)
	}
	for _, bad := range []string{"", "cmd/#", "cmd/a\x00b"} {
		if err := p.PublishLocal(bad, nil, false, 1); err == nil {
			t.Errorf("PublishLocal(%q) accepted", bad)
		}
	}
	p.Close()
	if err := p.PublishLocal("cmd/sensor-a", nil, false, 1); !errors.Is(err, ErrNotServing) {
		t.Errorf("after close: %v; want ErrNotServing", err)
	}
}
