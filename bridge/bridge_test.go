package bridge

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
	"github.com/edgegw/edgegw/store"
)

var telemetry = Route{Name: "telemetry", Topic: "building/#", Direction: Out, QoS: 1, RemotePrefix: "sites/plant-7/"}

func testConfig(m *mosquitto, routes ...Route) Config {
	return Config{
		Upstreams:      []Upstream{{URL: m.url()}},
		ClientID:       gatewayCN,
		TLS:            m.tlsFor(gatewayCN),
		KeepAlive:      5 * time.Second,
		ConnectTimeout: 3 * time.Second,
		BackoffMin:     50 * time.Millisecond,
		BackoffMax:     400 * time.Millisecond,
		Inflight:       256,
		UserProps:      UserProps{DeviceKey: "device", SeqKey: "seq"},
		Routes:         routes,
	}
}

// inMsg is one message handed to the Publisher.
type inMsg struct {
	topic   string
	payload string
	qos     byte
}

type recPublisher struct {
	mu  sync.Mutex
	got []inMsg
	ch  chan inMsg
}

func newRecPublisher() *recPublisher { return &recPublisher{ch: make(chan inMsg, 1024)} }

func (p *recPublisher) PublishLocal(topic string, payload []byte, retain bool, qos byte) error {
	m := inMsg{topic: topic, payload: string(payload), qos: qos}
	p.mu.Lock()
	p.got = append(p.got, m)
	p.mu.Unlock()
	select {
	case p.ch <- m:
	default:
	}
	return nil
}

func (p *recPublisher) all() []inMsg {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]inMsg(nil), p.got...)
}

// runBridge starts b.Run and stops it at cleanup (bounded).
func runBridge(t testing.TB, cfg Config, q Queue, pub Publisher) *Bridge {
	t.Helper()
	if pub == nil {
		pub = newRecPublisher()
	}
	b, err := New(cfg, q, pub, testLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if at, ok := q.(*ackTrace); ok {
		b.tracePuback = at.onPuback
	}
	gatewaytest.RunUntilCleanup(t, 10*time.Second, b.Run)
	return b
}

// eventually polls cond every 20 ms for at most d.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// enqueueSensors enqueues n messages for each of sensors devices,
// interleaved, from one goroutine per sensor (group commit in the real
// store); it returns all seqs.
func enqueueSensors(t testing.TB, q testQueue, sensors, n int, now func() time.Time) []uint64 {
	t.Helper()
	msgs := enqueueSensorMsgs(t, q, sensors, n, now)
	seqs := make([]uint64, len(msgs))
	for i, m := range msgs {
		seqs[i] = m.seq
	}
	return seqs
}

// sentMsg is one enqueued message: the key the cloud must see it under.
type sentMsg struct {
	seq    uint64
	device string
}

// enqueueSensorMsgs is enqueueSensors returning (seq, device) pairs.
func enqueueSensorMsgs(t testing.TB, q testQueue, sensors, n int, now func() time.Time) []sentMsg {
	t.Helper()
	var (
		mu   sync.Mutex
		seqs []sentMsg
		wg   sync.WaitGroup
		errs = make(chan error, sensors)
	)
	payload := make([]byte, 100)
	for s := range sensors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dev := fmt.Sprintf("sensor-%02d", s)
			topic := "building/" + dev + "/temp"
			local := make([]sentMsg, 0, n)
			for range n {
				seq, err := q.Enqueue(context.Background(), store.Message{
					Route: telemetry.Name, Topic: topic, Payload: payload, QoS: 1, Device: dev, Time: now().UnixNano(),
				})
				if err != nil {
					errs <- err
					return
				}
				local = append(local, sentMsg{seq, dev})
			}
			mu.Lock()
			seqs = append(seqs, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("enqueue: %v", err)
	}
	return seqs
}

// checkOrder reports, per device, whether first arrivals are in ascending
// seq order (duplicates from a resend may repeat older seqs; they are
// skipped) and returns the number of out-of-order first arrivals.
func (c *cloud) outOfOrder() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	bad := 0
	for _, seqs := range c.order {
		var hi uint64
		seen := map[uint64]bool{}
		for _, s := range seqs {
			if seen[s] {
				continue
			}
			seen[s] = true
			if s < hi {
				bad++
			}
			hi = max(hi, s)
		}
	}
	return bad
}

func TestForwardSensorsInOrder(t *testing.T) {
	m := startMosquitto(t, mosquittoOpts{maxInflight: 1000})
	c := startCloud(t, m, "sites/#")
	q := newTestQueue(t)
	seqs := enqueueSensors(t, q, 10, 1000, time.Now)
	b := runBridge(t, testConfig(m, telemetry), q, nil)

	if got := c.waitUnique(len(seqs), 60*time.Second); got != len(seqs) {
		t.Fatalf("arrived upstream: got %d distinct; want %d", got, len(seqs))
	}
	distinct, dups, missing := c.report(seqs)
	if len(missing) != 0 || dups != 0 {
		t.Errorf("distinct %d, duplicates %d, missing %d; want 10000, 0, 0", distinct, dups, len(missing))
	}
	if n := c.outOfOrder(); n != 0 {
		t.Errorf("out-of-order arrivals per sensor: got %d; want 0", n)
	}
	c.mu.Lock()
	for seq, topic := range c.topic {
		dev := c.device[seq]
		if want := "sites/plant-7/building/" + dev + "/temp"; topic != want {
			t.Errorf("seq %d: upstream topic %q; want %q", seq, topic, want)
			break
		}
	}
	c.mu.Unlock()
	eventually(t, 10*time.Second, "all acknowledged to the queue", func() bool { return b.State().Acked == uint64(len(seqs)) })
	st := b.State()
	if !st.Connected || st.DeadLettered != 0 || st.Sent != uint64(len(seqs)) {
		t.Errorf("state: %+v; want connected, 0 dead-lettered, %d sent", st, len(seqs))
	}
	t.Logf("window %d, sent %d, acked %d", st.Window, st.Sent, st.Acked)
}

func TestOutageBacklogAllArrive(t *testing.T) {
	const n = 50000
	m := startMosquitto(t, mosquittoOpts{maxInflight: 1000})
	c := startCloud(t, m, "sites/#")
	q := newTestQueue(t)
	b := runBridge(t, testConfig(m, telemetry), q, nil)
	eventually(t, 10*time.Second, "bridge connected", func() bool { return b.State().Connected })

	m.stop()
	eventually(t, 10*time.Second, "bridge noticed the outage", func() bool { return !b.State().Connected })
	seqs := enqueueSensors(t, q, 10, n/10, time.Now)
	m.start()

	if got := c.waitUnique(n, 90*time.Second); got != n {
		t.Fatalf("arrived upstream after the outage: got %d distinct; want %d", got, n)
	}
	distinct, dups, missing := c.report(seqs)
	st := b.State()
	t.Logf("after outage: %d distinct, %d duplicates from the bridge (it resent %d, window %d), %d broker redeliveries to the test subscriber, reconnects %d",
		distinct, dups, st.Resent, st.Window, c.redeliveries(), st.Reconnects)
	if len(missing) != 0 {
		t.Errorf("missing %d messages, first %v", len(missing), missing[:min(5, len(missing))])
	}
	if uint64(dups) > st.Resent {
		t.Errorf("duplicates %d exceed what the bridge resent (%d)", dups, st.Resent)
	}
	if n := c.outOfOrder(); n != 0 {
		t.Errorf("out-of-order first arrivals: got %d; want 0", n)
	}
}

func TestACLRefusedIsDeadLettered(t *testing.T) {
	m := startMosquitto(t, mosquittoOpts{})
	c := startCloud(t, m, "sites/#")
	q := newTestQueue(t)
	forbidden := Route{Name: "forbidden", Topic: "alarm/#", Direction: Out, QoS: 1, RemotePrefix: "sites/plant-8/"}
	var (
		dlMu sync.Mutex
		dls  []DeadLetter
	)
	cfg := testConfig(m, telemetry, forbidden)
	cfg.OnDeadLetter = func(d DeadLetter) { dlMu.Lock(); dls = append(dls, d); dlMu.Unlock() }

	var want []uint64
	put := func(route, topic string) uint64 {
		seq, err := q.Enqueue(context.Background(), store.Message{Route: route, Topic: topic, Payload: []byte("x"), QoS: 1, Device: "sensor-01", Time: time.Now().UnixNano()})
		if err != nil {
			t.Fatal(err)
		}
		return seq
	}
	for i := range 200 {
		if i == 100 {
			put(forbidden.Name, "alarm/fire")
		}
		want = append(want, put(telemetry.Name, "building/sensor-01/temp"))
	}
	b := runBridge(t, cfg, q, nil)

	if got := c.waitUnique(len(want), 30*time.Second); got != len(want) {
		t.Fatalf("allowed messages upstream: got %d; want %d", got, len(want))
	}
	eventually(t, 10*time.Second, "one dead letter", func() bool { return b.State().DeadLettered == 1 })
	dlMu.Lock()
	defer dlMu.Unlock()
	if len(dls) != 1 || dls[0].Topic != "sites/plant-8/alarm/fire" || dls[0].Code != 0x87 {
		t.Fatalf("dead letters: %+v; want one for sites/plant-8/alarm/fire with PUBACK 0x87", dls)
	}
	t.Logf("mosquitto's answer to an ACL-denied QoS 1 publish from an MQTT 5 client: %s; bridge reconnects since: %d", dls[0].Reason, b.State().Reconnects)
	eventually(t, 10*time.Second, "everything acknowledged", func() bool { return b.State().Acked == uint64(len(want)) })
	if sq, ok := q.(*store.Queue); ok {
		d, err := sq.DeadLetters("", 0)
		if err != nil || len(d) != 1 || d[0].Route != forbidden.Name || !strings.Contains(d[0].Reason, "0x87") {
			t.Errorf("queue dead letters: %+v, %v; want 1 on route forbidden with reason 0x87", d, err)
		}
	}
}

// TestFlappingUpstreamLosesNothing streams from 10 sensors for about 20 s
// while the upstream is stopped (SIGTERM) and started 10 times. Every
// enqueued (device, seq) must reach the cloud subscriber with its device and
// rewritten topic. A missing message is attributed from the ack trace: never
// acknowledged to the queue (bridge/store), acknowledged without a PUBACK
// (bridge), PUBACK 0x10 (no subscriber session: harness), or PUBACK success
// and then lost by Mosquitto; every case fails the test, by name.
func TestFlappingUpstreamLosesNothing(t *testing.T) {
	m := startMosquitto(t, mosquittoOpts{maxInflight: 1000})
	c := startCloud(t, m, "sites/#")
	q := newAckTrace(newTestQueue(t))
	b := runBridge(t, testConfig(m, telemetry), q, nil)
	eventually(t, 10*time.Second, "bridge connected", func() bool { return b.State().Connected })
	var flaps []time.Time

	stopProd := startProducer(t, q)
	for range 10 {
		time.Sleep(1200 * time.Millisecond)
		flaps = append(flaps, time.Now())
		m.stop()
		flaps = append(flaps, time.Now())
		time.Sleep(500 * time.Millisecond)
		m.start()
	}
	time.Sleep(time.Second)
	sent := stopProd()
	all := make([]uint64, len(sent))
	for i, s := range sent {
		all[i] = s.seq
	}
	// The upstream is up and stays up: what is still missing after this
	// bound is lost, not late (the whole backlog drains in about a second).
	got := c.waitUnique(len(all), 15*time.Second)
	distinct, dups, missing := c.report(all)
	st := b.State()
	t.Logf("flapping: enqueued %d, distinct upstream %d, duplicates from the bridge %d (it resent %d), broker redeliveries to the test subscriber %d, reconnects %d, PUBACK 0x10 %d",
		len(all), distinct, dups, st.Resent, c.redeliveries(), st.Reconnects, st.NoSubscribers)
	if got != len(all) || len(missing) != 0 {
		var flapLog strings.Builder
		for i := 0; i+1 < len(flaps); i += 2 {
			fmt.Fprintf(&flapLog, "\n  stop %d: SIGTERM at %s, exited at %s", i/2, flaps[i].Format("15:04:05.000"), flaps[i+1].Format("15:04:05.000"))
		}
		t.Fatalf("lost across flapping: %d of %d missing, by cause:%s\nsubscriber reconnects without a session: %v\nupstream restarts:%s",
			len(missing), len(all), q.explain(missing), c.lostSessions(), flapLog.String())
	}
	c.mu.Lock()
	for _, s := range sent {
		want := "sites/plant-7/building/" + s.device + "/temp"
		if dev, topic := c.device[s.seq], c.topic[s.seq]; dev != s.device || topic != want {
			t.Errorf("seq %d upstream: device %q, topic %q; want %q, %q", s.seq, dev, topic, s.device, want)
			break
		}
	}
	c.mu.Unlock()
	if uint64(dups) > st.Resent {
		t.Errorf("duplicates %d exceed what the bridge resent (%d)", dups, st.Resent)
	}
	if n := c.outOfOrder(); n != 0 {
		t.Errorf("out-of-order first arrivals: got %d; want 0", n)
	}
	// Harness preconditions: the subscriber's session survived every
	// restart, so no message was published to nobody.
	if ls := c.lostSessions(); len(ls) != 0 {
		t.Errorf("the test subscriber reconnected without its session %d times (%v): the upstream dropped it across a restart", len(ls), ls)
	}
	if st.NoSubscribers != 0 || st.UnknownPubacks != 0 {
		t.Errorf("PUBACKs: %d with 0x10 no matching subscribers, %d for unknown packet ids; want 0, 0", st.NoSubscribers, st.UnknownPubacks)
	}
	eventually(t, 10*time.Second, "bridge connected at the end", func() bool { return b.State().Connected })
	if st.Reconnects == 0 {
		t.Errorf("reconnects: got 0; want > 0")
	}
}

func TestInboundCommandReachesPublisher(t *testing.T) {
	m := startMosquitto(t, mosquittoOpts{})
	c := startCloud(t, m, "sites/#")
	q := newTestQueue(t)
	cmd := Route{Name: "cmd", Topic: "cmd/#", Direction: Both, QoS: 1, RemotePrefix: "sites/plant-7/"}
	pub := newRecPublisher()
	b := runBridge(t, testConfig(m, telemetry, cmd), q, pub)
	eventually(t, 10*time.Second, "bridge connected", func() bool { return b.State().Connected })

	first := awaitInbound(t, c, pub, "sites/plant-7/cmd/light-1", "on")
	if first.topic != "cmd/light-1" || first.payload != "on" || first.qos != 1 {
		t.Fatalf("local publish: %+v; want topic cmd/light-1, payload on, qos 1", first)
	}

	// Loop prevention: an out message on a both route goes up, and the
	// upstream must not echo it back down (No Local).
	if _, err := q.Enqueue(context.Background(), store.Message{Route: cmd.Name, Topic: "cmd/echo-test", Payload: []byte("up"), QoS: 1, Device: "node-red", Time: time.Now().UnixNano()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the out message upstream", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, tp := range c.topic {
			if tp == "sites/plant-7/cmd/echo-test" {
				return true
			}
		}
		return false
	})
	if err := c.publish("sites/plant-7/cmd/light-2", []byte("off")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "cmd/light-2 locally", func() bool {
		for _, m := range pub.all() {
			if m.topic == "cmd/light-2" {
				return true
			}
		}
		return false
	})
	for _, m := range pub.all() {
		if m.topic == "cmd/echo-test" {
			t.Fatalf("the gateway's own upstream message came back down: %+v", m)
		}
		if m.topic != "cmd/light-1" && m.topic != "cmd/light-2" {
			t.Errorf("unexpected local publish %+v", m)
		}
	}
}

// flakyPublisher answers ErrLocalUnavailable to its first fails calls (the
// local broker stopping), then records like recPublisher.
type flakyPublisher struct {
	*recPublisher
	mu     sync.Mutex
	fails  int
	failed []string // payloads refused
}

func (p *flakyPublisher) PublishLocal(topic string, payload []byte, retain bool, qos byte) error {
	p.mu.Lock()
	if len(p.failed) < p.fails {
		p.failed = append(p.failed, string(payload))
		p.mu.Unlock()
		return fmt.Errorf("test: %w", ErrLocalUnavailable)
	}
	p.mu.Unlock()
	return p.recPublisher.PublishLocal(topic, payload, retain, qos)
}

// TestInboundRedeliveredWhenLocalUnavailable: a command that comes down
// while the local broker cannot take it is not acknowledged upstream; the
// session ends, and the upstream redelivers it after the reconnect. The
// first refused command is the one that must arrive, and nothing is counted
// as dropped.
func TestInboundRedeliveredWhenLocalUnavailable(t *testing.T) {
	m := startMosquitto(t, mosquittoOpts{})
	c := startCloud(t, m, "sites/#")
	q := newTestQueue(t)
	cmd := Route{Name: "cmd", Topic: "cmd/#", Direction: In, QoS: 1, RemotePrefix: "sites/plant-7/"}
	pub := &flakyPublisher{recPublisher: newRecPublisher(), fails: 2}
	b := runBridge(t, testConfig(m, telemetry, cmd), q, pub)
	eventually(t, 10*time.Second, "bridge connected", func() bool { return b.State().Connected })

	// Publish until the first refusal (the subscription follows CONNACK).
	for i := 1; ; i++ {
		if err := c.publish("sites/plant-7/cmd/light-1", fmt.Appendf(nil, "on-%d", i)); err != nil {
			t.Fatal(err)
		}
		pub.mu.Lock()
		refused := len(pub.failed)
		pub.mu.Unlock()
		if refused > 0 {
			break
		}
		if i == 50 {
			t.Fatal("no inbound message reached the publisher after 50 publishes")
		}
		time.Sleep(200 * time.Millisecond)
	}
	pub.mu.Lock()
	first := pub.failed[0]
	pub.mu.Unlock()
	eventually(t, 20*time.Second, "the refused command redelivered", func() bool {
		for _, m := range pub.all() {
			if m.payload == first {
				return true
			}
		}
		return false
	})
	st := b.State()
	if st.InboundDropped != 0 {
		t.Errorf("inbound dropped: %d; want 0", st.InboundDropped)
	}
	if st.Reconnects < 2 {
		t.Errorf("reconnects: %d; want at least 2 (one per refusal)", st.Reconnects)
	}
	for _, m := range pub.all() {
		if m.topic != "cmd/light-1" {
			t.Errorf("unexpected local publish %+v", m)
		}
	}
}

func TestDrainRatePacesOnlyBacklog(t *testing.T) {
	m := startMosquitto(t, mosquittoOpts{})
	c := startCloud(t, m, "sites/#")
	q := newTestQueue(t)
	old := func() time.Time { return time.Now().Add(-time.Hour) }
	backlog := enqueueSensors(t, q, 2, 20, old)
	cfg := testConfig(m, telemetry)
	cfg.DrainRate = 200
	b := runBridge(t, cfg, q, nil)
	if got := c.waitUnique(len(backlog), 20*time.Second); got != len(backlog) {
		t.Fatalf("backlog upstream: got %d; want %d", got, len(backlog))
	}
	if st := b.State(); st.Paced != uint64(len(backlog)) {
		t.Fatalf("paced: got %d; want %d (every backlog message)", st.Paced, len(backlog))
	}
	live := enqueueSensors(t, q, 2, 20, time.Now)
	if got := c.waitUnique(len(backlog)+len(live), 20*time.Second); got != len(backlog)+len(live) {
		t.Fatalf("live upstream: got %d; want %d", got, len(backlog)+len(live))
	}
	if st := b.State(); st.Paced != uint64(len(backlog)) {
		t.Fatalf("paced after live messages: got %d; want %d (live messages are not paced)", st.Paced, len(backlog))
	}
}

func TestFailoverSkipsDeadAndSilentUpstreams(t *testing.T) {
	m := startMosquitto(t, mosquittoOpts{})
	c := startCloud(t, m, "sites/#")
	// A listener that accepts and never answers: only our own
	// ConnectTimeout gets us past it.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	var conns []net.Conn
	var cmu sync.Mutex
	go func() {
		for {
			cn, err := silent.Accept()
			if err != nil {
				return
			}
			cmu.Lock()
			conns = append(conns, cn)
			cmu.Unlock()
		}
	}()
	defer func() {
		cmu.Lock()
		for _, cn := range conns {
			cn.Close()
		}
		cmu.Unlock()
	}()
	closed := freePort(t)
	cfg := testConfig(m, telemetry)
	cfg.ConnectTimeout = 500 * time.Millisecond
	good := &url.URL{Scheme: "mqtts", Host: m.url().Host}
	cfg.Upstreams = []Upstream{
		{URL: &url.URL{Scheme: "mqtts", Host: silent.Addr().String()}},
		{URL: &url.URL{Scheme: "mqtts", Host: fmt.Sprintf("127.0.0.1:%d", closed)}},
		{URL: good, ServerName: "upstream.test"}, // a name from the server certificate's SANs
	}
	q := newTestQueue(t)
	seqs := enqueueSensors(t, q, 1, 10, time.Now)
	b := runBridge(t, cfg, q, nil)
	if got := c.waitUnique(len(seqs), 20*time.Second); got != len(seqs) {
		t.Fatalf("through the third upstream: got %d; want %d", got, len(seqs))
	}
	st := b.State()
	if st.Upstream != good.Redacted() {
		t.Errorf("upstream: got %q; want %q", st.Upstream, good.Redacted())
	}
	if st.LastError == "" {
		t.Errorf("last error empty; want the failure of an upstream before the third")
	}
	t.Logf("last error before failover succeeded: %s", st.LastError)
}

// TestQoS0OnlyUpstreamKeepsQoS1Queued: an upstream whose CONNACK says
// Maximum QoS 0 cannot acknowledge anything; a QoS 1 route's messages are
// not sent to it (they would leave the queue on write), the error says what
// to change, and nothing is lost. Set to qos: 0, the route forwards there.
func TestQoS0OnlyUpstreamKeepsQoS1Queued(t *testing.T) {
	m := startMosquitto(t, mosquittoOpts{qos0Only: true})
	c := startCloud(t, m, "sites/#")
	q := newTestQueue(t)
	seqs := enqueueSensors(t, q, 2, 5, time.Now)
	b := runBridge(t, testConfig(m, telemetry), q, nil)
	eventually(t, 10*time.Second, "the refusal in the bridge state", func() bool {
		return strings.Contains(b.State().LastError, "Maximum QoS 0")
	})
	st := b.State()
	if !strings.Contains(st.LastError, `route "`+telemetry.Name+`"`) || !strings.Contains(st.LastError, "qos: 0") {
		t.Errorf("last error %q; want it to name the route and say qos: 0", st.LastError)
	}
	if st.Connected || st.Sent != 0 || st.Acked != 0 {
		t.Errorf("state %+v; want not connected, 0 sent, 0 acked", st)
	}
	if got := c.waitUnique(1, 500*time.Millisecond); got != 0 {
		t.Errorf("upstream got %d messages; want 0", got)
	}
	if depth := q.(interface{ Stats() store.Stats }).Stats().Depth; depth != int64(len(seqs)) {
		t.Errorf("queued: got %d; want all %d", depth, len(seqs))
	}

	r0 := telemetry
	r0.QoS = 0
	if err := b.SetRoutes([]Route{r0}); err != nil {
		t.Fatal(err)
	}
	if got := c.waitUnique(len(seqs), 20*time.Second); got != len(seqs) {
		t.Fatalf("after qos: 0: got %d upstream; want %d", got, len(seqs))
	}
}

func (c *cloud) redeliveries() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.redeliv
}

// refusingPublisher refuses (a plain error: dropped, not redelivered) the
// local topics in refuse, and records the rest like recPublisher.
type refusingPublisher struct {
	*recPublisher
	refuse map[string]bool
}

func (p *refusingPublisher) PublishLocal(topic string, payload []byte, retain bool, qos byte) error {
	if p.refuse[topic] {
		return fmt.Errorf("test: %s refused", topic)
	}
	return p.recPublisher.PublishLocal(topic, payload, retain, qos)
}

// TestInboundByRoute: State.InboundRoutes lists every in and both route,
// zero before the first message, and counts what each delivered or dropped
// (a drop counts in InboundDropped too); the counts survive SetRoutes.
func TestInboundByRoute(t *testing.T) {
	m := startMosquitto(t, mosquittoOpts{})
	c := startCloud(t, m, "sites/#")
	q := newTestQueue(t)
	cmd := Route{Name: "cmd", Topic: "cmd/#", Direction: In, QoS: 1, RemotePrefix: "sites/plant-7/"}
	cfg := Route{Name: "cfg", Topic: "cfg/#", Direction: Both, QoS: 1, RemotePrefix: "sites/plant-7/"}
	pub := &refusingPublisher{recPublisher: newRecPublisher(), refuse: map[string]bool{"cmd/bad": true}}
	b := runBridge(t, testConfig(m, telemetry, cmd, cfg), q, pub)

	want := func(cmdDel, cmdDrop, cfgDel uint64) []RouteInbound {
		return []RouteInbound{{Route: "cmd", Delivered: cmdDel, Dropped: cmdDrop}, {Route: "cfg", Delivered: cfgDel}}
	}
	if got := b.State().InboundRoutes; fmt.Sprint(got) != fmt.Sprint(want(0, 0, 0)) {
		t.Fatalf("InboundRoutes before any message: %v; want %v (every in and both route, none of the out)", got, want(0, 0, 0))
	}
	eventually(t, 10*time.Second, "bridge connected", func() bool { return b.State().Connected })
	// The subscriptions follow CONNACK: publish until one arrives on each.
	awaitInbound(t, c, pub.recPublisher, "sites/plant-7/cmd/warm", "w")
	awaitInbound(t, c, pub.recPublisher, "sites/plant-7/cfg/warm", "w")
	eventually(t, 10*time.Second, "the warm-up counted", func() bool {
		for _, r := range b.State().InboundRoutes {
			if r.Delivered == 0 {
				return false
			}
		}
		return true
	})
	base := b.State()
	cmd0, cfg0 := base.InboundRoutes[0].Delivered, base.InboundRoutes[1].Delivered
	for _, tp := range []string{"cmd/a", "cmd/b", "cmd/bad", "cfg/x"} {
		if err := c.publish("sites/plant-7/"+tp, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "the four messages counted by route", func() bool {
		return fmt.Sprint(b.State().InboundRoutes) == fmt.Sprint(want(cmd0+2, 1, cfg0+1))
	})
	if st := b.State(); st.InboundDropped != base.InboundDropped+1 {
		t.Errorf("InboundDropped: %d; want %d (the refused cmd/bad)", st.InboundDropped, base.InboundDropped+1)
	}

	// A reload that keeps cmd and removes cfg: cmd's counts stay, cfg's
	// series goes.
	if err := b.SetRoutes([]Route{telemetry, cmd}); err != nil {
		t.Fatal(err)
	}
	if got, w := b.State().InboundRoutes, want(cmd0+2, 1, 0)[:1]; fmt.Sprint(got) != fmt.Sprint(w) {
		t.Errorf("InboundRoutes after a reload without cfg: %v; want %v", got, w)
	}
}
