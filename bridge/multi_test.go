package bridge

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/store"
)

// siteBridge is one bridge of a multi-bridge site as the gateway wires it:
// its own queue (here its own store, see the package doc on queues), its
// routes, and the cloud-side subscriber of its upstream.
type siteBridge struct {
	name   string
	m      *mosquitto
	cloud  *cloud
	q      *store.Queue
	routes *Routes
	b      *Bridge
}

func openQueue(t testing.TB, routes []Route) *store.Queue {
	t.Helper()
	var lims []store.RouteLimits
	for _, r := range routes {
		if r.Direction.out() {
			lims = append(lims, store.RouteLimits{Name: r.Name})
		}
	}
	return openStore(t, lims)
}

// fanOut does what the gateway's OnPublish does with several bridges: the
// message is queued once for every matching out route of every bridge.
// It returns, per bridge name, the seq it got there.
func fanOut(t testing.TB, bridges []*siteBridge, m store.Message) map[string]uint64 {
	t.Helper()
	got := map[string]uint64{}
	var buf [4]Route
	for _, sb := range bridges {
		for _, r := range sb.routes.MatchOut(buf[:0], m.Topic) {
			m.Route = r.Name
			seq, err := sb.q.Enqueue(context.Background(), m)
			if err != nil {
				t.Fatalf("enqueue for bridge %s: %v", sb.name, err)
			}
			got[sb.name] = seq
		}
	}
	return got
}

// TestTwoBridgesSplitRoutesAndOneOutage: two bridges with their own client
// IDs, CAs and certificates, to two Mosquitto upstreams. Telemetry goes to
// A, energy to B, alarms to both (queued once per bridge). Then B's
// upstream stops: A keeps delivering everything produced during B's outage
// (counted while B is down), and B delivers its backlog once back. Every
// message arrives where its routes say, in order per device, none lost.
func TestTwoBridgesSplitRoutesAndOneOutage(t *testing.T) {
	mA := startMosquitto(t, mosquittoOpts{maxInflight: 1000})
	mB := startMosquitto(t, mosquittoOpts{maxInflight: 1000})
	route := func(name, topic string) Route {
		return Route{Name: name, Topic: topic, Direction: Out, QoS: 1, RemotePrefix: "sites/plant-7/"}
	}
	specs := []struct {
		name, clientID string
		m              *mosquitto
		routes         []Route
	}{
		{"cloud-a", "plant-7-gw-a", mA, []Route{route("a-telemetry", "building/#"), route("a-alarm", "alarm/#")}},
		{"scada-b", "plant-7-gw-b", mB, []Route{route("b-energy", "energy/#"), route("b-alarm", "alarm/#")}},
	}
	var (
		bridges []*siteBridge
		cfgs    []Config
	)
	for _, s := range specs {
		cfg := testConfig(s.m, s.routes...)
		cfg.Name, cfg.ClientID = s.name, s.clientID
		cfgs = append(cfgs, cfg)
		sb := &siteBridge{name: s.name, m: s.m, cloud: startCloud(t, s.m, "sites/#"), q: openQueue(t, s.routes)}
		sb.b = runBridge(t, cfg, sb.q, nil)
		sb.routes = sb.b.Routes()
		bridges = append(bridges, sb)
	}
	if errs := CheckBridges(cfgs); len(errs) != 0 {
		t.Fatalf("CheckBridges: %v", errs)
	}
	a, b := bridges[0], bridges[1]
	for _, sb := range bridges {
		eventually(t, 10*time.Second, sb.name+" connected", func() bool { return sb.b.State().Connected })
	}

	// want[bridge] lists (seq, device, upstream topic) it must deliver.
	want := map[string][]sentMsg{}
	topicOf := map[string]map[uint64]string{a.name: {}, b.name: {}}
	produce := func(round, n int) {
		for i := range n {
			for _, fam := range []string{"building", "energy", "alarm"} {
				dev := fmt.Sprintf("%s-%02d", fam, i%5)
				topic := fmt.Sprintf("%s/%s/r%d", fam, dev, round)
				for name, seq := range fanOut(t, bridges, store.Message{Topic: topic, Payload: []byte("v"), QoS: 1, Device: dev, Time: time.Now().UnixNano()}) {
					want[name] = append(want[name], sentMsg{seq, dev})
					topicOf[name][seq] = "sites/plant-7/" + topic
				}
			}
		}
	}
	seqsOf := func(name string) []uint64 {
		var s []uint64
		for _, m := range want[name] {
			s = append(s, m.seq)
		}
		return s
	}
	waitAll := func(sb *siteBridge, what string) {
		t.Helper()
		eventually(t, 60*time.Second, what, func() bool {
			_, _, missing := sb.cloud.report(seqsOf(sb.name))
			return len(missing) == 0
		})
	}

	// phase produces 10 rounds of 100 per family and returns A's delivery
	// rate over it (acknowledged messages per second, until all of A's
	// messages arrived). The producer enqueues one synced message at a
	// time, so both phases are bounded by it; the point is that they match.
	round := 0
	phase := func(what string) float64 {
		acked0 := a.b.State().Acked
		start := time.Now()
		for range 10 {
			round++
			produce(round, 100)
			time.Sleep(50 * time.Millisecond)
		}
		waitAll(a, "every A message "+what)
		d := a.b.State().Acked - acked0
		return float64(d) / time.Since(start).Seconds()
	}
	rateUp := phase("with both upstreams up")
	waitAll(b, "B's messages with both upstreams up")
	if n := len(want[a.name]); n != 2000 || len(want[b.name]) != 2000 {
		t.Fatalf("queued per bridge: A %d, B %d; want 2000 each (telemetry+alarm, energy+alarm)", n, len(want[b.name]))
	}

	// B's upstream goes away; A must not notice.
	b.m.stop()
	eventually(t, 10*time.Second, "B noticed its outage", func() bool { return !b.b.State().Connected })
	rateDown := phase("produced during B's outage")
	if b.b.State().Connected {
		t.Fatalf("B reconnected before the check: the outage did not last")
	}
	if depth := b.q.Stats().Depth; depth != 2000 {
		t.Errorf("B's queue during its outage: %d; want its 2000 (energy+alarm, 10 rounds)", depth)
	}
	t.Logf("A's delivery rate: %.0f/s with B up, %.0f/s with B's upstream down (producer-bound; measured, not asserted)", rateUp, rateDown)

	b.m.start()
	waitAll(b, "B's backlog after its upstream came back")

	for _, sb := range bridges {
		distinct, dups, missing := sb.cloud.report(seqsOf(sb.name))
		st := sb.b.State()
		t.Logf("%s: %d distinct, %d duplicates, reconnects %d, state name %q", sb.name, distinct, dups, st.Reconnects, st.Name)
		if len(missing) != 0 {
			t.Errorf("%s: %d missing", sb.name, len(missing))
		}
		if distinct != len(want[sb.name]) || distinct != 4000 {
			t.Errorf("%s: %d distinct upstream; want exactly its %d (nothing of the other bridge's routes), 4000", sb.name, distinct, len(want[sb.name]))
		}
		if n := sb.cloud.outOfOrder(); n != 0 {
			t.Errorf("%s: out of order per device: %d; want 0", sb.name, n)
		}
		if st.Name != sb.name {
			t.Errorf("state name %q; want %q", st.Name, sb.name)
		}
		sb.cloud.mu.Lock()
		for seq, topic := range sb.cloud.topic {
			if w := topicOf[sb.name][seq]; topic != w {
				t.Errorf("%s seq %d: topic %q; want %q", sb.name, seq, topic, w)
				break
			}
			if other := map[string]string{a.name: "energy/", b.name: "building/"}[sb.name]; strings.Contains(topic, other) {
				t.Errorf("%s got %q, a topic of the other bridge's routes", sb.name, topic)
				break
			}
		}
		sb.cloud.mu.Unlock()
	}
}

// TestBridgeNamesInLogsAndState: each bridge's log lines carry bridge=<name>.
func TestBridgeNamesInLogsAndState(t *testing.T) {
	var mu sync.Mutex
	var lines []string
	cfg := Config{Name: "scada-b", ClientID: "gw", Upstreams: []Upstream{{URL: mustURL(t, fmt.Sprintf("mqtt://127.0.0.1:%d", freePort(t)))}},
		BackoffMin: 10 * time.Millisecond, BackoffMax: 20 * time.Millisecond}
	b, err := New(cfg, newMemQueue(t), newRecPublisher(), newLineLogger(func(s string) { mu.Lock(); lines = append(lines, s); mu.Unlock() }))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	eventually(t, 10*time.Second, "a failed connection logged", func() bool { mu.Lock(); defer mu.Unlock(); return len(lines) > 0 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, l := range lines {
		if !strings.Contains(l, "bridge=scada-b") {
			t.Errorf("log line without bridge=scada-b: %s", l)
		}
	}
	if st := b.State(); st.Name != "scada-b" || st.Protocol != "5" {
		t.Errorf("state name %q protocol %q; want scada-b 5", st.Name, st.Protocol)
	}
}

// lineWriter hands every log line to a func.
type lineWriter func(string)

func (w lineWriter) Write(p []byte) (int, error) { w(string(p)); return len(p), nil }

func newLineLogger(f func(string)) *slog.Logger {
	return slog.New(slog.NewTextHandler(lineWriter(f), nil))
}
