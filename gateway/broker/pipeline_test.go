package broker

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/eclipse/paho.golang/paho"
	"github.com/edgegw/edgegw/gateway/gatewaytest"
	"github.com/edgegw/edgegw/store"
)

// routeFunc is a RouteMatcher for tests.
type routeFunc func(topic string, qos byte) []string

func (f routeFunc) OutboundRoutes(topic string, qos byte) []string { return f(topic, qos) }

func openQueue(t *testing.T, lims ...store.RouteLimits) *store.Queue {
	t.Helper()
	q, err := store.Open(store.Options{Dir: filepath.Join(t.TempDir(), "queue"), Routes: lims})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// rawConnect is rawV3 for either protocol version (4 = 3.1.1, 5).
func (e *env) rawConnect(t *testing.T, thing string, version byte) *raw {
	t.Helper()
	return rawOn(t, e.dialThing(t, thing), thing, version)
}

func rawOn(t testing.TB, conn net.Conn, clientID string, version byte) *raw {
	t.Helper()
	r := &raw{conn: conn, r: bufio.NewReader(conn), v: version}
	r.send(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: version,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: clientID}})
	pk, err := r.read(t)
	if err != nil || pk.FixedHeader.Type != packets.Connack || pk.ReasonCode != 0 {
		t.Fatalf("connect %s: %v %+v", clientID, err, pk.FixedHeader)
	}
	return r
}

func (r *raw) Publish(t *testing.T, id uint16, topic string, qos byte, retain bool, payload string) {
	t.Helper()
	if qos == 0 {
		id = 0
	}
	r.send(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos, Retain: retain}, ProtocolVersion: r.v,
		PacketID: id, TopicName: topic, Payload: []byte(payload)})
}

// expectNothing fails if a packet arrives within d (a negative check: the
// broker must hold it; d only bounds how long we look).
func (r *raw) expectNothing(t *testing.T, d time.Duration) {
	t.Helper()
	_ = r.conn.SetReadDeadline(time.Now().Add(d))
	if b, err := r.r.Peek(1); err == nil {
		t.Fatalf("got a packet (first byte 0x%02x) while the commit is held; want none", b[0])
	}
}

// monitoredPipeline is a broker whose every QoS 1 publish goes to route in
// a fresh queue (the pipeline), with a monitor subscribed to sensors/#.
func monitoredPipeline(t *testing.T, route string) (*env, *store.Queue, *gatewaytest.V5) {
	t.Helper()
	e := newEnv(t, nil)
	q := openQueue(t)
	e.b.SetOutbound(q, routeFunc(func(string, byte) []string { return []string{route} }))
	mon, err := e.connectV5(t, e.pki.Issue(t, "monitor"), "monitor")
	if err != nil {
		t.Fatal(err)
	}
	mon.Subscribe(t, "sensors/#", 1)
	return e, q, mon
}

func drainN(t *testing.T, q *store.Queue, n int) []store.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []store.Message
	for range n {
		m, err := q.Next(ctx)
		if err != nil {
			t.Fatalf("Next after %d of %d: %v", len(out), n, err)
		}
		out = append(out, m)
	}
	return out
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 2000 {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s: not within 10s", what)
}

// TestPipelineOrder: one client sends 1,000 messages without waiting for any
// PUBACK (every 100th QoS 0, the rest QoS 1): the PUBACKs come in publish
// order, the queue's sequence numbers follow publish order, and a subscriber
// receives them in publish order, QoS 0 ones included (they take the
// synchronous path and must not overtake the pipelined ones).
func TestPipelineOrder(t *testing.T) {
	for _, v := range []byte{4, 5} {
		t.Run(fmt.Sprintf("MQTT v%d", v), func(t *testing.T) {
			e, q, mon := monitoredPipeline(t, "up")
			a := e.rawConnect(t, "sensor-a", v)
			const n = 1000
			qos := func(i int) byte {
				if i%100 == 99 {
					return 0
				}
				return 1
			}
			go func() {
				for i := range n {
					a.Publish(t, uint16(i+1), "sensors/sensor-a/t", qos(i), false, strconv.Itoa(i))
				}
			}()
			for i := range n {
				if qos(i) == 0 {
					continue
				}
				pk, err := a.read(t)
				if err != nil {
					t.Fatalf("reading PUBACK for #%d: %v", i, err)
				}
				if pk.FixedHeader.Type != packets.Puback || pk.PacketID != uint16(i+1) || pk.ReasonCode != 0 {
					t.Fatalf("got type %d id %d rc 0x%02x; want PUBACK id %d (publish order) rc 0", pk.FixedHeader.Type, pk.PacketID, pk.ReasonCode, i+1)
				}
			}
			var last uint64
			for i, m := range drainN(t, q, n) {
				if string(m.Payload) != strconv.Itoa(i) || m.Seq <= last {
					t.Fatalf("queue #%d: payload %q seq %d (previous %d); want %d in increasing seq", i, m.Payload, m.Seq, last, i)
				}
				last = m.Seq
			}
			for i := range n {
				m := mon.ExpectOnly(t, "sensors/sensor-a/t")
				if string(m.Payload) != strconv.Itoa(i) {
					t.Fatalf("subscriber #%d: payload %q; want %d (publish order)", i, m.Payload, i)
				}
			}
			if got := e.metrics.Enqueued.Load(); got != n {
				t.Fatalf("Enqueued metric %d; want %d (each message once)", got, n)
			}
		})
	}
}

// holdQueue is a real store.Queue whose tickets' Wait, after the commit,
// blocks until the test lets it go: the gateway cannot tell a held Wait from
// a slow fsync.
type holdQueue struct {
	*store.Queue
	allow   chan struct{} // one token per Wait
	all     chan struct{} // closed: let every Wait go
	waited  atomic.Int64  // Waits that returned
	release func()        // closes all
}

func newHoldQueue(t *testing.T, q *store.Queue) *holdQueue {
	h := &holdQueue{Queue: q, allow: make(chan struct{}), all: make(chan struct{})}
	var once sync.Once
	h.release = func() { once.Do(func() { close(h.all) }) }
	t.Cleanup(h.release) // before the broker's Close: a failed test must not hang it
	return h
}

// heldPipeline is a broker whose outbound queue (every publish to route
// "up") holds each commit until the test allows it, and a monitor
// subscribed to sensors/#.
func heldPipeline(t *testing.T) (*env, *store.Queue, *holdQueue, *gatewaytest.V5) {
	t.Helper()
	e := newEnv(t, nil)
	q := openQueue(t)
	h := newHoldQueue(t, q)
	e.b.SetOutbound(h, routeFunc(func(string, byte) []string { return []string{"up"} }))
	mon, err := e.connectV5(t, e.pki.Issue(t, "monitor"), "monitor")
	if err != nil {
		t.Fatal(err)
	}
	mon.Subscribe(t, "sensors/#", 1)
	return e, q, h, mon
}

type heldTicket struct {
	h  *holdQueue
	tk store.Ticket
}

func (h *holdQueue) Submit(ctx context.Context, m store.Message) (Waiter, error) {
	tk, err := h.Queue.Submit(ctx, m)
	if err != nil {
		return nil, err
	}
	return heldTicket{h, tk}, nil
}

func (t heldTicket) Wait(ctx context.Context) (uint64, error) {
	seq, err := t.tk.Wait(ctx)
	select {
	case <-t.h.allow:
	case <-t.h.all:
	}
	t.h.waited.Add(1)
	return seq, err
}

// Ready: a held ticket is ready only once every hold is released (the
// pipeline then batches PUBACKs, as with the real store).
func (t heldTicket) Ready() bool {
	select {
	case <-t.h.all:
		return t.tk.Ready()
	default:
		return false
	}
}

var _ Submitter = (*holdQueue)(nil)

// TestPipelineNoPubackBeforeCommit: while the commit of a message is not
// complete, neither its PUBACK nor any later one is sent and nobody receives
// it; released one by one, each PUBACK follows its own commit.
func TestPipelineNoPubackBeforeCommit(t *testing.T) {
	e, q, h, mon := heldPipeline(t)
	a := e.rawConnect(t, "sensor-a", 5)
	const n = 10
	topic := func(i int) string { // the last one retained
		if i == n-1 {
			return "sensors/sensor-a/status"
		}
		return "sensors/sensor-a/t"
	}
	for i := range n {
		a.Publish(t, uint16(i+1), topic(i), 1, i == n-1, strconv.Itoa(i))
	}
	eventually(t, "all submitted and committed", func() bool { return q.Stats().Depth == n })
	a.expectNothing(t, 300*time.Millisecond)
	if len(mon.Msgs) != 0 {
		t.Fatalf("subscriber got %d messages before their commits completed", len(mon.Msgs))
	}
	for i := range n {
		h.allow <- struct{}{}
		pk, err := a.read(t)
		if err != nil || pk.PacketID != uint16(i+1) {
			t.Fatalf("PUBACK #%d: id %d err %v; want id %d", i, pk.PacketID, err, i+1)
		}
		if w := h.waited.Load(); w != int64(i+1) {
			t.Fatalf("PUBACK #%d sent with %d commits waited; want %d", i, w, i+1)
		}
		if i == 0 {
			a.expectNothing(t, 100*time.Millisecond) // the second is still held
		}
		if m := mon.ExpectOnly(t, topic(i)); string(m.Payload) != strconv.Itoa(i) {
			t.Fatalf("subscriber got %q; want %d", m.Payload, i)
		}
	}
	// The retained one (last) was applied at delivery.
	mon2, err := e.connectV5(t, e.pki.Issue(t, "monitor"), "monitor-2")
	if err != nil {
		t.Fatal(err)
	}
	mon2.Subscribe(t, "sensors/#", 1)
	if m := mon2.ExpectOnly(t, topic(n-1)); string(m.Payload) != strconv.Itoa(n-1) || !m.Retain {
		t.Fatalf("retained: %q retain=%v; want %d retained", m.Payload, m.Retain, n-1)
	}
}

// TestPipelineDisconnect: a client that goes away with messages in its
// pipeline: no goroutine is left behind, nothing it was not acknowledged for
// is delivered, and after it reconnects and resends, every message is
// acknowledged, queued and delivered.
func TestPipelineDisconnect(t *testing.T) {
	e, q, h, mon := heldPipeline(t)
	cert := e.pki.Issue(t, "sensor-a")
	conn, err := e.dialTLS(t, cert, nil)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	base := runtime.NumGoroutine() // the client's own goroutines are counted in
	a := rawOn(t, conn, "sensor-a", 4)
	const n = 50
	for i := range n {
		a.Publish(t, uint16(i+1), "sensors/sensor-a/t", 1, false, strconv.Itoa(i))
	}
	eventually(t, "all committed", func() bool { return q.Stats().Depth == n })
	conn.Close()
	eventually(t, "broker saw the disconnect", func() bool {
		cl, ok := e.b.srv.Clients.Get("sensor-a")
		return !ok || cl.Closed()
	})
	h.release()
	eventually(t, "client state removed", func() bool { return e.b.Clients() == 1 })
	eventually(t, "goroutines back to "+strconv.Itoa(base), func() bool { return runtime.NumGoroutine() <= base })
	if len(mon.Msgs) != 0 {
		t.Fatalf("subscriber got %d messages whose PUBACK could not be sent; want 0", len(mon.Msgs))
	}
	// Reconnect and resend (3.1.1 [MQTT-4.4.0-1]: DUP, same ids).
	a = e.rawConnect(t, "sensor-a", 4)
	go func() {
		for i := range n {
			a.send(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Dup: true}, PacketID: uint16(i + 1), TopicName: "sensors/sensor-a/t", Payload: []byte(strconv.Itoa(i))})
		}
	}()
	for i := range n {
		if pk, err := a.read(t); err != nil || pk.PacketID != uint16(i+1) {
			t.Fatalf("PUBACK after resend #%d: id %d err %v", i, pk.PacketID, err)
		}
	}
	for i := range n {
		if m := mon.ExpectOnly(t, "sensors/sensor-a/t"); string(m.Payload) != strconv.Itoa(i) {
			t.Fatalf("subscriber #%d: %q", i, m.Payload)
		}
	}
	// At-least-once upstream: the first copies were committed too.
	if d := q.Stats().Depth; d != 2*n {
		t.Fatalf("queue depth %d; want %d (both copies)", d, 2*n)
	}
}

// TestPipelineEnqueueRefused: a route at its limit with overflow reject.
// MQTT 5 gets PUBACK 0x97 in turn for the refused ones, which nobody
// receives; MQTT 3.1.1 is disconnected at the first refused one, without its
// PUBACK or any later one.
func TestPipelineEnqueueRefused(t *testing.T) {
	for _, v := range []byte{4, 5} {
		t.Run(fmt.Sprintf("MQTT v%d", v), func(t *testing.T) {
			e := newEnv(t, nil)
			q := openQueue(t, store.RouteLimits{Name: "up", MaxMessages: 3, Overflow: store.Reject})
			e.b.SetOutbound(q, routeFunc(func(string, byte) []string { return []string{"up"} }))
			mon, err := e.connectV5(t, e.pki.Issue(t, "monitor"), "monitor")
			if err != nil {
				t.Fatal(err)
			}
			mon.Subscribe(t, "sensors/#", 1)
			a := e.rawConnect(t, "sensor-a", v)
			const n = 6
			for i := range n {
				a.Publish(t, uint16(i+1), "sensors/sensor-a/t", 1, false, strconv.Itoa(i))
			}
			for i := range n {
				pk, err := a.read(t)
				if v == 4 && i >= 3 {
					if err == nil && pk.FixedHeader.Type == packets.Disconnect {
						pk, err = a.read(t) // mochi sends it to 3.1.1 clients too; then closes
					}
					if err == nil {
						t.Fatalf("3.1.1: got packet type %d id %d after the refused message; want the connection closed", pk.FixedHeader.Type, pk.PacketID)
					}
					if !errors.Is(err, io.EOF) && !isClosedErr(err) {
						t.Fatalf("3.1.1: read after refusal: %v; want the connection closed", err)
					}
					break
				}
				want := byte(0)
				if i >= 3 {
					want = packets.ErrQuotaExceeded.Code
				}
				if err != nil || pk.PacketID != uint16(i+1) || pk.ReasonCode != want {
					t.Fatalf("PUBACK #%d: id %d rc 0x%02x err %v; want id %d rc 0x%02x", i, pk.PacketID, pk.ReasonCode, err, i+1, want)
				}
			}
			for i := range 3 {
				if m := mon.ExpectOnly(t, "sensors/sensor-a/t"); string(m.Payload) != strconv.Itoa(i) {
					t.Fatalf("subscriber #%d: %q", i, m.Payload)
				}
			}
			eventually(t, "failures counted", func() bool { return e.metrics.EnqueueFailures.Load() == 3 })
			if v == 4 {
				eventually(t, "client gone", func() bool { return e.b.Clients() == 1 })
				if e.metrics.EnqueueDisconnects.Load() != 1 {
					t.Fatalf("EnqueueDisconnects %d; want 1", e.metrics.EnqueueDisconnects.Load())
				}
			}
			if len(mon.Msgs) != 0 {
				t.Fatalf("subscriber got a refused message: %q", (<-mon.Msgs).Payload)
			}
		})
	}
}

func isClosedErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && !ne.Timeout() || errors.Is(err, net.ErrClosed)
}

// TestPipelineMultiRouteRetained: a message on two routes is acknowledged
// after both commits, each route keeps publish order, and retained messages
// are applied in publish order (the last one wins).
func TestPipelineMultiRouteRetained(t *testing.T) {
	e := newEnv(t, nil)
	q := openQueue(t)
	e.b.SetOutbound(q, routeFunc(func(string, byte) []string { return []string{"a", "b"} }))
	a := e.rawConnect(t, "sensor-a", 5)
	const n = 200
	go func() {
		for i := range n {
			a.Publish(t, uint16(i+1), "sensors/sensor-a/status", 1, true, strconv.Itoa(i))
		}
	}()
	for i := range n {
		if pk, err := a.read(t); err != nil || pk.PacketID != uint16(i+1) || pk.ReasonCode != 0 {
			t.Fatalf("PUBACK #%d: id %d rc 0x%02x err %v", i, pk.PacketID, pk.ReasonCode, err)
		}
	}
	next := map[string]int{}
	for _, m := range drainN(t, q, 2*n) {
		if string(m.Payload) != strconv.Itoa(next[m.Route]) || !m.Retain {
			t.Fatalf("route %s: payload %q; want %d (retained)", m.Route, m.Payload, next[m.Route])
		}
		next[m.Route]++
	}
	// A PUBACK goes out before its message is delivered (and retained):
	// wait for the last one to be applied, then check that nothing older
	// replaced it.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if r := e.b.srv.Topics.Messages("sensors/sensor-a/status"); len(r) == 1 && string(r[0].Payload) == strconv.Itoa(n-1) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("retained: %d messages; want %d within 5s", len(e.b.srv.Topics.Messages("sensors/sensor-a/status")), n-1)
		}
	}
	time.Sleep(20 * time.Millisecond)
	mon, err := e.connectV5(t, e.pki.Issue(t, "monitor"), "monitor")
	if err != nil {
		t.Fatal(err)
	}
	mon.Subscribe(t, "sensors/#", 1)
	if m := mon.ExpectOnly(t, "sensors/sensor-a/status"); string(m.Payload) != strconv.Itoa(n-1) {
		t.Fatalf("retained %q; want %d (the last published)", m.Payload, n-1)
	}
	if c, _ := e.b.RetainedStats(); c != 1 {
		t.Fatalf("retained count %d; want 1", c)
	}
}

// TestEnqueueFailCode: the MQTT 5 reason of a refused enqueue.
func TestEnqueueFailCode(t *testing.T) {
	for _, c := range []struct {
		err  error
		want byte
	}{
		{fmt.Errorf("x: %w", store.ErrFull), 0x97},
		{store.ErrQuota, 0x97},
		{store.ErrClosed, 0x80},
		{errors.New("writing to queue: disk I/O"), 0x80},
	} {
		if got := enqueueFailCode(c.err).Code; got != c.want {
			t.Errorf("enqueueFailCode(%v) = 0x%02x; want 0x%02x", c.err, got, c.want)
		}
	}
}

// TestPipelineKeepsPublishProperties: a pipelined MQTT 5 publish reaches a
// local subscriber with its properties (the pipeline keeps them apart from
// the packet), and one without properties with none.
func TestPipelineKeepsPublishProperties(t *testing.T) {
	e, q, mon := monitoredPipeline(t, "a")
	a, err := e.connectV5(t, e.pki.Issue(t, "sensor-a"), "sensor-a")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	props := &paho.PublishProperties{ContentType: "application/json", ResponseTopic: "sensors/sensor-a/reply",
		CorrelationData: []byte{1, 2, 3}, User: paho.UserProperties{{Key: "unit", Value: "celsius"}}}
	if r, err := a.C.Publish(ctx, &paho.Publish{Topic: "sensors/sensor-a/temp", QoS: 1, Payload: []byte("21.5"), Properties: props}); err != nil || r.ReasonCode != 0 {
		t.Fatalf("publish with properties: %v %+v", err, r)
	}
	m := mon.ExpectOnly(t, "sensors/sensor-a/temp")
	if m.Properties == nil || m.Properties.ContentType != props.ContentType || m.Properties.ResponseTopic != props.ResponseTopic ||
		!bytes.Equal(m.Properties.CorrelationData, props.CorrelationData) || m.Properties.User.Get("unit") != "celsius" {
		t.Fatalf("delivered properties %+v; want %+v", m.Properties, props)
	}
	if rc, err := a.Publish(t, "sensors/sensor-a/temp", 1, false, "22.0"); rc != 0 || err != nil {
		t.Fatalf("publish without properties: 0x%02x %v", rc, err)
	}
	m = mon.ExpectOnly(t, "sensors/sensor-a/temp")
	if m.Properties != nil && (m.Properties.ContentType != "" || len(m.Properties.User) > 0 || m.Properties.ResponseTopic != "") {
		t.Fatalf("a publish without properties delivered with %+v", m.Properties)
	}
	if got := drainN(t, q, 2); string(got[0].Payload) != "21.5" || string(got[1].Payload) != "22.0" {
		t.Fatalf("queued %q, %q; want 21.5, 22.0 (through the pipeline)", got[0].Payload, got[1].Payload)
	}
}
