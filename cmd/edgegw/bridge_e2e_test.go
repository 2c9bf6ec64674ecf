package main

// End-to-end tests of the upstream bridge (issue 8 acceptance): the real
// `edgegw run` binary (built without -race), Debian's mosquitto as the
// upstream requiring client certificates (require_certificate,
// use_identity_as_username, an ACL allowing the gateway only sites/plant-7/#),
// sensors as mosquitto_pub and paho clients over mTLS, and a cloud-side paho
// subscriber with a persistent session that counts what arrived upstream.

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
	"github.com/edgegw/edgegw/store"
)

const bridgeRegistry = `version: 1
default: {policies: []}
things:
  - {name: light-1, policies: [light]}
  - {name: light-2, policies: [light]}
groups:
  - {name: sensors, match: {name: "sensor-*"}, policies: [sensor]}
`

const bridgeSensorPolicy = `{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Action": "iot:Connect", "Resource": "client/${iot:Connection.Thing.ThingName}"},
 {"Effect": "Allow", "Action": "iot:Publish", "Resource": ["topic/sensors/${iot:Connection.Thing.ThingName}/*", "topic/bad/${iot:Connection.Thing.ThingName}"]}
]}`

// A light may subscribe to any command filter, but receives only its own.
const bridgeLightPolicy = `{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Action": "iot:Connect", "Resource": "client/${iot:Connection.Thing.ThingName}"},
 {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "topicfilter/cmd/*"},
 {"Effect": "Allow", "Action": "iot:Receive", "Resource": "topic/cmd/${iot:Connection.Thing.ThingName}"}
]}`

// bridgeRoutes: telemetry to the gateway's own subtree, one route the
// upstream ACL refuses (dead letters), commands both ways (loop test).
const bridgeRoutes = `
    - {name: telemetry, topic: "sensors/#", direction: out, qos: 1, remote_prefix: "sites/plant-7/"}
    - {name: elsewhere, topic: "bad/#", direction: out, qos: 1, remote_prefix: "sites/plant-8/"}
    - {name: commands, topic: "cmd/#", direction: both, qos: 1, remote_prefix: "sites/plant-7/"}`

// cmdUpstream is the cloud broker of these tests (gatewaytest.Upstream):
// no practical queue limit for the cloud subscriber (not 0: see
// UpstreamOptions.MaxQueued), a wide inflight window, TLS 1.2.
var cmdUpstream = gatewaytest.UpstreamOptions{MaxQueued: 10000000, MaxInflight: 1000, TLSVersion: "tlsv1.2"}

// bridgeGW is `edgegw run` with a bridge section; it can be killed and
// restarted on the same config, listener, queue and key.
type bridgeGW struct {
	t       testing.TB
	bin     string
	dir     string
	conf    string
	addr    string
	metrics string // the /metrics address with gwOptions.metrics, else ""
	site    *gatewaytest.PKI
	up      *gatewaytest.Upstream
	cmd     *exec.Cmd
	exited  chan struct{}
	log     *gatewaytest.Buffer
	starts  int

	errMu   sync.Mutex
	pubErrs []string // the first error of each sensor in the last publishAll
}

// publishErrors says why the last publishAll's sensors stopped (a few of
// them), for a failure message.
func (g *bridgeGW) publishErrors() string {
	g.errMu.Lock()
	defer g.errMu.Unlock()
	n := len(g.pubErrs)
	if n > 5 {
		return fmt.Sprintf("%d sensors stopped, e.g. %s", n, strings.Join(g.pubErrs[:5], "; "))
	}
	return fmt.Sprintf("%d sensors stopped: %s", n, strings.Join(g.pubErrs, "; "))
}

type gwOptions struct {
	routes   string // YAML list items under bridge.routes
	inflight int    // bridge.inflight; 0 = 128, < 0 = not set (the product's default)
	extra    string // more YAML under bridge:
	metrics  bool   // serve /metrics on a free loopback port (bridgeGW.metrics)
	stateDir string // state_dir (the queue in it); "" = <dir>/state
}

func newBridgeGW(t testing.TB, up *gatewaytest.Upstream, o gwOptions) *bridgeGW {
	t.Helper()
	if o.routes == "" {
		o.routes = bridgeRoutes
	}
	if o.inflight == 0 {
		o.inflight = 128
	}
	g := &bridgeGW{t: t, bin: gatewaytest.Edgegw(t), dir: t.TempDir(), site: gatewaytest.NewPKI(t, "site"), up: up, log: new(gatewaytest.Buffer)}
	g.addr = gatewaytest.FreeAddr(t)
	if o.metrics {
		g.metrics = gatewaytest.FreeAddr(t)
	}
	g.conf = filepath.Join(g.dir, "edgegw.yaml")
	state := filepath.Join(g.dir, "state")
	if o.stateDir != "" {
		state = o.stateDir
	}
	// key: auto finds the gateway's existing file key in state_dir.
	keyPEM, err := os.ReadFile(up.Gateway.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(state, "gateway.key")); err != nil || !bytes.Equal(b, keyPEM) { // a power-cut test synced it
		gatewaytest.WriteFile(t, filepath.Join(state, "gateway.key"), keyPEM, 0o600)
	}
	inflight := fmt.Sprintf("  inflight: %d", o.inflight)
	if o.inflight < 0 {
		inflight = ""
	}
	cfg := fmt.Sprintf(`version: 1
site: plant-7
state_dir: %[1]s
listeners:
  - name: lan
    address: %[2]q
    tls: {ca: %[3]s, cert: %[4]s, key: "file:%[5]s", crl: %[6]s}
devices: devices.yaml
policies: policies/
store: {dir: %[1]s/queue, min_free: 16MiB}
metrics: {address: %[14]q}
admin: {socket: ""}
audit: {file: %[7]s/audit.log}
bridge:
  upstreams: [{url: "mqtts://%[8]s", server_name: localhost}]
  client_id: plant-7-gw
  tls: {ca: %[9]s, cert: %[10]s, key: auto}
  keepalive: 5s
  connect_timeout: 3s
  backoff: {min: 100ms, max: 500ms}
%[11]s
%[12]s
  routes:%[13]s
`, state, g.addr, g.site.CAFile, g.site.ServerCert, g.site.ServerKey, g.site.CRLFile, g.dir,
		up.Addr, up.PKI.CAFile, up.Gateway.CertFile, inflight, o.extra, o.routes, g.metrics)
	gatewaytest.WriteFile(t, g.conf, []byte(cfg), 0o644)
	gatewaytest.WriteSiteFiles(t, g.dir, bridgeRegistry, map[string]string{"sensor": bridgeSensorPolicy, "light": bridgeLightPolicy})
	g.launch(t, 6144)
	return g
}

func (g *bridgeGW) start() {
	g.t.Helper()
	g.starts++
	fmt.Fprintf(g.log, "----- start %d -----\n", g.starts)
	cmd := exec.Command(g.bin, "run", "-c", g.conf)
	cmd.Stdout, cmd.Stderr = g.log, g.log
	if err := cmd.Start(); err != nil {
		g.t.Fatal(err)
	}
	g.cmd, g.exited = cmd, make(chan struct{})
	go func(ch chan struct{}) { _ = cmd.Wait(); close(ch) }(g.exited)
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", g.addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-g.exited:
			g.t.Fatalf("edgegw run exited at start:\n%s", g.log.String())
		default:
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("edgegw run not listening on %s after 20s:\n%s", g.addr, g.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill: SIGKILL, no chance to flush anything.
func (g *bridgeGW) kill() {
	if g.cmd == nil {
		return
	}
	_ = g.cmd.Process.Kill()
	<-g.exited
	g.cmd = nil
}

// stop: SIGTERM, as systemd does; an error if it takes more than 15 s.
func (g *bridgeGW) stop() {
	if g.cmd == nil {
		return
	}
	if !gatewaytest.Terminate(g.cmd.Process, g.exited, 15*time.Second) {
		g.t.Errorf("edgegw run did not stop within 15s of SIGTERM")
	}
	g.cmd = nil
}

// queueStats opens the stopped gateway's queue and returns its stats and
// dead letters.
func (g *bridgeGW) queueStats() (store.Stats, []store.DeadLetter) {
	g.t.Helper()
	if g.cmd != nil {
		g.t.Fatal("queueStats needs the gateway stopped")
	}
	q, err := store.Open(store.Options{Dir: filepath.Join(g.dir, "state", "queue"), MinFreeBytes: 16 << 20})
	if err != nil {
		g.t.Fatalf("opening the queue: %v", err)
	}
	defer q.Close()
	dl, err := q.DeadLetters("", 0)
	if err != nil {
		g.t.Fatal(err)
	}
	return q.Stats(), dl
}

// msgID names one sensor message; payloads are "<sensor> <seq>".
type msgID struct {
	sensor string
	seq    int
}

func (m msgID) payload() string { return fmt.Sprintf("%s %06d", m.sensor, m.seq) }

func parseMsgID(p []byte) (msgID, bool) {
	s, n, ok := strings.Cut(string(p), " ")
	if !ok {
		return msgID{}, false
	}
	seq, err := strconv.Atoi(n)
	return msgID{s, seq}, err == nil
}

// cloudSub is a cloud-side MQTT 5 subscriber on the upstream with a
// persistent session that reconnects through outages.
type cloudSub struct {
	mu       sync.Mutex
	count    map[msgID]int
	arrivals map[string][]int // sensor -> seqs in arrival order
	topics   map[string]int
	badProps int
	other    []string // topic and payload of messages that are not "<sensor> <seq>"
	total    int
	conns    int
	dupInfo  []string // the first duplicates, for the log
}

func startCloudSub(t testing.TB, up *gatewaytest.Upstream, filter string) *cloudSub {
	t.Helper()
	c := &cloudSub{count: map[msgID]int{}, arrivals: map[string][]int{}, topics: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	ready := make(chan struct{})
	var once sync.Once
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if c.session(ctx, up, filter, func() { once.Do(func() { close(ready) }) }) != nil {
				select {
				case <-ctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(15 * time.Second):
		t.Fatal("cloud subscriber not connected within 15s")
	}
	return c
}

// session runs one connection until it drops or ctx ends.
func (c *cloudSub) session(ctx context.Context, up *gatewaytest.Upstream, filter string, subscribed func()) error {
	cl, conn, gone, err := cloudSession(ctx, up, "cloud-sub", c.record)
	if err != nil {
		return err
	}
	defer conn.Close()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := cl.Subscribe(cctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}}); err != nil {
		_ = cl.Disconnect(&paho.Disconnect{})
		return err
	}
	c.mu.Lock()
	c.conns++
	c.mu.Unlock()
	subscribed()
	select {
	case <-ctx.Done():
		_ = cl.Disconnect(&paho.Disconnect{})
		return nil
	case <-gone:
	case <-cl.Done():
	}
	return fmt.Errorf("connection lost")
}

func (c *cloudSub) record(p *paho.Publish) {
	id, ok := parseMsgID(p.Payload)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total++
	c.topics[p.Topic]++
	if !ok {
		if len(c.other) < 10 {
			c.other = append(c.other, fmt.Sprintf("%s %q", p.Topic, p.Payload))
		}
		return
	}
	if p.Properties == nil || p.Properties.User.Get("edgegw-device") != id.sensor || p.Properties.User.Get("edgegw-seq") == "" {
		c.badProps++
	}
	c.count[id]++
	if c.count[id] > 1 && len(c.dupInfo) < 5 {
		c.dupInfo = append(c.dupInfo, fmt.Sprintf("%s (edgegw-seq %s, dup flag %v)", id.payload(), p.Properties.User.Get("edgegw-seq"), p.Duplicate()))
	}
	c.arrivals[id.sensor] = append(c.arrivals[id.sensor], id.seq)
}

func (c *cloudSub) distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.count)
}

// waitDistinct waits until want distinct messages arrived; it fails after
// stall without progress, or after max in total.
func (c *cloudSub) waitDistinct(t testing.TB, want int, stall, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	last, lastAt := -1, time.Now()
	for {
		n := c.distinct()
		if n >= want {
			return time.Since(start)
		}
		if n != last {
			last, lastAt = n, time.Now()
		}
		if time.Since(lastAt) > stall || time.Since(start) > limit {
			t.Fatalf("upstream has %d of %d distinct messages after %v (no progress for %v)", n, want, time.Since(start).Round(time.Millisecond), time.Since(lastAt).Round(time.Millisecond))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// missing lists (up to 10) acked messages that did not arrive, and counts
// duplicates.
func (c *cloudSub) check(acked map[msgID]bool) (missing []msgID, nMissing, dups int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id := range acked {
		if c.count[id] == 0 {
			nMissing++
			if len(missing) < 10 {
				missing = append(missing, id)
			}
		}
	}
	for _, n := range c.count {
		dups += n - 1
	}
	return missing, nMissing, dups
}

// mosqPubLines publishes lines (one message each) with mosquitto_pub -l.
func (g *bridgeGW) mosqPubLines(t testing.TB, sensor, topic string, lines []string) error {
	bin := gatewaytest.Need(t, "mosquitto_pub", "mosquitto-clients")
	c := g.cert(t, sensor)
	args := append(g.site.MosqTLSArgs(g.addr, c), "-V", "mqttv5", "-i", sensor, "-q", "1", "-t", topic, "-l")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil || len(out) > 0 {
		return fmt.Errorf("mosquitto_pub %s: %v %s", sensor, err, out)
	}
	return nil
}

var certMu sync.Mutex

func (g *bridgeGW) cert(t testing.TB, name string) *gatewaytest.Client {
	certMu.Lock()
	defer certMu.Unlock()
	return g.site.Issue(t, name)
}

// sensor is a paho MQTT 5 client on the gateway's mTLS listener.
type sensor struct {
	name string
	c    *paho.Client
	conn net.Conn
	msgs chan *paho.Publish
}

func (g *bridgeGW) sensor(t testing.TB, name string, cert *gatewaytest.Client) (*sensor, error) {
	if cert == nil {
		cert = g.cert(t, name)
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", g.addr, g.site.ClientTLS(cert))
	if err != nil {
		return nil, err
	}
	s := &sensor{name: name, conn: conn, msgs: make(chan *paho.Publish, 1024)}
	s.c = paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn),
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			select {
			case s.msgs <- pr.Packet:
			default:
			}
			return true, nil
		}},
		OnClientError: func(error) {}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.c.Connect(ctx, &paho.Connect{ClientID: name, KeepAlive: 30, CleanStart: true}); err != nil {
		conn.Close()
		return nil, err
	}
	return s, nil
}

// sensorReconnecting connects as a real sensor does after a gateway restart:
// a refused connect is tried again (every 100-400 ms, for at most 30 s).
// Right after a restart every source address is unproven to the listener's
// fair admission (gateway/broker/admission.go), so of the sensors that
// queued up in the listen backlog while the queue opened, all from
// 127.0.0.1, only a share may handshake at once and the rest are refused
// until the first handshake proves the address.
func (g *bridgeGW) sensorReconnecting(t testing.TB, name string) (*sensor, error) {
	deadline := time.Now().Add(30 * time.Second)
	for try := 0; ; try++ {
		s, err := g.sensor(t, name, nil)
		if err == nil || time.Now().After(deadline) {
			return s, err
		}
		time.Sleep(time.Duration(100+try%4*100) * time.Millisecond)
	}
}

func (s *sensor) close() {
	_ = s.c.Disconnect(&paho.Disconnect{})
	s.conn.Close()
}

// publishAll publishes todo (QoS 1) from one paho client per sensor with
// workers concurrent publishes each. A message counts as acked only on a
// PUBACK with a success code (the gateway synced it). After the first error
// a sensor stops; what it did not get acked is returned as failed.
func (g *bridgeGW) publishAll(t testing.TB, todo []msgID, workers int, onAck func(int64)) (acked, failed []msgID) {
	t.Helper()
	bySensor := map[string][]msgID{}
	for _, m := range todo {
		bySensor[m.sensor] = append(bySensor[m.sensor], m)
	}
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		count atomic.Int64
	)
	g.errMu.Lock()
	g.pubErrs = nil
	g.errMu.Unlock()
	stopped := func(name string, err error) {
		g.errMu.Lock()
		g.pubErrs = append(g.pubErrs, name+": "+err.Error())
		g.errMu.Unlock()
	}
	for name, msgs := range bySensor {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := g.sensorReconnecting(t, name)
			if err != nil {
				stopped(name, fmt.Errorf("connect: %w", err))
				mu.Lock()
				failed = append(failed, msgs...)
				mu.Unlock()
				return
			}
			defer s.close()
			work := make(chan msgID)
			var broken atomic.Bool
			var ww sync.WaitGroup
			for range workers {
				ww.Add(1)
				go func() {
					defer ww.Done()
					for m := range work {
						ok := false
						if !broken.Load() {
							ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
							pr, err := s.c.Publish(ctx, &paho.Publish{Topic: "sensors/" + m.sensor + "/t", QoS: 1, Payload: []byte(m.payload())})
							cancel()
							ok = err == nil && pr != nil && pr.ReasonCode < 0x80
							if !ok && !broken.Swap(true) {
								if err == nil {
									err = fmt.Errorf("PUBACK reason code 0x%02x", pr.ReasonCode)
								}
								stopped(name, fmt.Errorf("publish %d: %w", m.seq, err))
							}
						}
						mu.Lock()
						if ok {
							acked = append(acked, m)
						} else {
							failed = append(failed, m)
						}
						mu.Unlock()
						if ok && onAck != nil {
							onAck(count.Add(1))
						}
					}
				}()
			}
			for _, m := range msgs {
				work <- m
			}
			close(work)
			ww.Wait()
		}()
	}
	wg.Wait()
	return acked, failed
}

func sensorNames(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("sensor-%02d", i))
	}
	return out
}

// TestBridgeE2EStream: 10 sensors x 1,000 QoS 1 messages (mosquitto_pub)
// arrive upstream complete, rewritten to sites/plant-7/, in order per
// sensor, with the dedup user properties; meanwhile messages on a route the
// upstream ACL refuses end in the dead-letter area without blocking the rest.
func TestBridgeE2EStream(t *testing.T) {
	up := gatewaytest.NewUpstream(t, cmdUpstream)
	cloud := startCloudSub(t, up, "sites/#")
	g := newBridgeGW(t, up, gwOptions{})
	const sensors, per, bad = 10, 1000, 10
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, sensors+1)
	for _, name := range sensorNames(sensors) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lines := make([]string, per)
			for i := range lines {
				lines[i] = msgID{name, i}.payload()
			}
			errs <- g.mosqPubLines(t, name, "sensors/"+name+"/t", lines)
		}()
	}
	wg.Add(1)
	go func() { // refused upstream, interleaved with the stream
		defer wg.Done()
		var lines []string
		for i := range bad {
			lines = append(lines, msgID{"sensor-99", i}.payload())
		}
		errs <- g.mosqPubLines(t, "sensor-99", "bad/sensor-99", lines)
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	published := time.Since(start)
	took := cloud.waitDistinct(t, sensors*per, 20*time.Second, 90*time.Second)
	t.Logf("%d x %d published in %v (mosquitto_pub -l, mTLS, QoS 1); all upstream %v later", sensors, per, published.Round(time.Millisecond), took.Round(time.Millisecond))

	cloud.mu.Lock()
	for _, name := range sensorNames(sensors) {
		topic := "sites/plant-7/sensors/" + name + "/t"
		if cloud.topics[topic] < per {
			t.Errorf("%s: %d messages; want %d", topic, cloud.topics[topic], per)
		}
		seen := map[int]bool{}
		next := 0
		for _, s := range cloud.arrivals[name] {
			if seen[s] {
				continue // a duplicate (resend) may repeat an earlier one
			}
			seen[s] = true
			if s != next {
				t.Errorf("%s: message %d arrived where %d was next (order per sensor)", name, s, next)
				break
			}
			next++
		}
	}
	for topic, n := range cloud.topics {
		if !strings.HasPrefix(topic, "sites/plant-7/sensors/") {
			t.Errorf("upstream got %d messages on %q", n, topic)
		}
	}
	if cloud.badProps != 0 {
		t.Errorf("%d messages without the edgegw-device/edgegw-seq user properties", cloud.badProps)
	}
	other := cloud.other
	cloud.mu.Unlock()
	_, _, dups := cloud.check(nil)
	t.Logf("duplicates: %d %q", dups, cloud.dupInfo)
	if len(other) > 0 {
		t.Errorf("unexpected messages upstream: %q", other)
	}

	// The refused ones: dead letters, audited, counted in the queue.
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(readFile(t, filepath.Join(g.dir, "audit.log")), `"event":"dead_letter"`) < bad {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d dead_letter audit lines after 20s:\n%s", bad, readFile(t, filepath.Join(g.dir, "audit.log")))
		}
		time.Sleep(50 * time.Millisecond)
	}
	g.stop()
	st, dl := g.queueStats()
	var routeDead int64
	for _, r := range st.Routes {
		if r.Name == "elsewhere" {
			routeDead = r.DeadLetters
		}
		// Delivered upstream but not yet acknowledged to the gateway when
		// it was stopped: kept, sent again at the next start (at most the
		// window).
		if r.Name == "telemetry" && r.Depth > 128 {
			t.Errorf("telemetry depth %d after everything arrived; want at most the in-flight window 128", r.Depth)
		}
	}
	if st.DeadLetters != bad || routeDead != bad || len(dl) != bad {
		t.Fatalf("dead letters: stats %d, route elsewhere %d, listed %d; want %d", st.DeadLetters, routeDead, len(dl), bad)
	}
	if !strings.Contains(dl[0].Reason, "0x87") || dl[0].Topic != "bad/sensor-99" {
		t.Errorf("dead letter %+v; want the upstream's 0x87 on bad/sensor-99", dl[0])
	}
	t.Logf("dead letters: %d on route elsewhere, reason %q", len(dl), dl[0].Reason)
}

func readFile(t testing.TB, path string) string {
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// TestBridgeE2EOutageKill: with the upstream down, 50,000 QoS 1 messages are
// published by 10 sensors; the gateway is SIGKILLed in the middle of it and
// restarted; the sensors publish what was not acknowledged; then the
// upstream comes back: every acknowledged message arrives.
func TestBridgeE2EOutageKill(t *testing.T) {
	up := gatewaytest.NewUpstream(t, cmdUpstream)
	cloud := startCloudSub(t, up, "sites/#")
	g := newBridgeGW(t, up, gwOptions{})
	up.Stop()
	// mochi handles one client's packets in order and each PUBACK waits for
	// the queue's fsync, so throughput grows with publishers: 40 of them.
	const sensors, per, workers = 40, 1250, 4
	todo := sensorMessages(sensors, per)
	start := time.Now()
	acked1, failed := g.publishKilled(t, todo, workers)
	phase1 := time.Since(start)
	g.start()
	acked2, failed2 := g.publishAll(t, failed, workers, nil)
	if len(failed2) > 0 {
		t.Fatalf("%d publishes failed after the restart: %s\n%s", len(failed2), g.publishErrors(), g.log.String())
	}
	published := time.Since(start)
	acked := map[msgID]bool{}
	for _, m := range append(acked1, acked2...) {
		acked[m] = true
	}
	if len(acked) != len(todo) {
		t.Fatalf("%d distinct messages acked; want %d", len(acked), len(todo))
	}
	t.Logf("upstream down: %d acked, SIGKILL after %v, restart, %d more acked (%d distinct, %v in all)",
		len(acked1), phase1.Round(time.Millisecond), len(acked2), len(acked), published.Round(time.Millisecond))

	up.Start()
	took := cloud.waitDistinct(t, len(todo), 30*time.Second, 120*time.Second)
	missing, nMissing, dups := cloud.check(acked)
	if nMissing > 0 {
		t.Fatalf("%d acknowledged messages never arrived upstream, e.g. %v", nMissing, missing)
	}
	// Duplicates: messages the gateway synced but whose PUBACK the kill cut
	// off were published again by their sensor (at most the unacked ones
	// in flight at the kill); the bridge adds at most its window per lost
	// connection.
	t.Logf("all %d arrived %v after the upstream came back; duplicates %d (sensor resends of unacked in-flight publishes at the kill: <= %d)",
		len(todo), took.Round(time.Millisecond), dups, sensors*workers)
	if dups > sensors*workers+128 {
		t.Errorf("%d duplicates; want at most %d (in-flight publishes at the kill + one bridge window)", dups, sensors*workers+128)
	}
}

// TestBridgeE2ECommands: a command published upstream on
// sites/plant-7/cmd/light-1 reaches light-1 and not light-2 (both subscribe
// to cmd/#; each may receive only its own), and is not sent back upstream
// although the route is both ways (loop prevention). /metrics counts the
// commands by route (edgegw_route_inbound_messages_total).
func TestBridgeE2ECommands(t *testing.T) {
	up := gatewaytest.NewUpstream(t, cmdUpstream)
	cloud := startCloudSub(t, up, "sites/#")
	g := newBridgeGW(t, up, gwOptions{metrics: true})
	// Before the first command: the in route's series at 0, none for the out
	// routes. (The metrics listener opens just after the MQTT one.)
	for i := 0; ; i++ {
		if code, _ := health(g.metrics); code != 0 {
			break
		}
		if i == 500 {
			t.Fatalf("no /healthz on %s 10s after the MQTT listener opened", g.metrics)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s := scrape(t, g.metrics)
	for _, series := range []string{`edgegw_route_inbound_messages_total{result="delivered",route="commands"}`,
		`edgegw_route_inbound_messages_total{result="dropped",route="commands"}`} {
		if v := sample(s, series); v != 0 {
			t.Errorf("%s before any command = %v; want 0", series, v)
		}
	}
	if strings.Contains(s, `edgegw_route_inbound_messages_total{result="delivered",route="telemetry"}`) {
		t.Errorf("edgegw_route_inbound_messages_total for the out route telemetry; want only in and both routes")
	}
	lights := map[string]*sensor{}
	for _, name := range []string{"light-1", "light-2"} {
		s, err := g.sensor(t, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		sa, err := s.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "cmd/#", QoS: 1}}})
		cancel()
		if err != nil || sa.Reasons[0] != 1 {
			t.Fatalf("%s subscribe cmd/#: %v %v", name, sa, err)
		}
		lights[name] = s
	}
	// The gateway's upstream subscription lands after it connects.
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(g.log.String(), "upstream connected") {
		if time.Now().After(deadline) {
			t.Fatal("gateway not connected upstream after 15s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	pubCloud := func(topic, payload string) {
		t.Helper()
		out, err := gatewaytest.Run(t, 15*time.Second, gatewaytest.Need(t, "mosquitto_pub", "mosquitto-clients"),
			append(up.PKI.MosqTLSArgs(up.Addr, up.Cloud), "-V", "mqttv5", "-i", "cloud-pub", "-q", "1", "-t", topic, "-m", payload)...)
		if err != nil {
			t.Fatalf("cloud mosquitto_pub %s: %v %s", topic, err, out)
		}
	}
	recv := func(s *sensor) *paho.Publish {
		t.Helper()
		select {
		case m := <-s.msgs:
			return m
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no command within 10s", s.name)
		}
		return nil
	}
	// The upstream subscription is made right after the connect; retry the
	// first command until it comes through (bounded).
	var m *paho.Publish
	for i := 0; m == nil; i++ {
		pubCloud("sites/plant-7/cmd/light-1", "on")
		select {
		case m = <-lights["light-1"].msgs:
		case <-time.After(time.Second):
			if i == 10 {
				t.Fatalf("light-1 got no command:\n%s", g.log.String())
			}
		}
	}
	if m.Topic != "cmd/light-1" || string(m.Payload) != "on" {
		t.Fatalf("light-1 got %q %q; want cmd/light-1 on", m.Topic, m.Payload)
	}
	pubCloud("sites/plant-7/cmd/light-2", "off")
	if m := recv(lights["light-2"]); m.Topic != "cmd/light-2" || string(m.Payload) != "off" {
		t.Fatalf("light-2 got %q %q first; want only its own command cmd/light-2", m.Topic, m.Payload)
	}
	// light-1 may have more copies of its own command (the retries above),
	// never light-2's.
	for len(lights["light-1"].msgs) > 0 {
		if m := <-lights["light-1"].msgs; m.Topic != "cmd/light-1" {
			t.Fatalf("light-1 got %q; want only cmd/light-1", m.Topic)
		}
	}
	// Loop prevention: the upstream saw each command once (the cloud's own
	// publish), never a copy from the gateway.
	time.Sleep(500 * time.Millisecond)
	cloud.mu.Lock()
	n1, n2 := cloud.topics["sites/plant-7/cmd/light-1"], cloud.topics["sites/plant-7/cmd/light-2"]
	cloud.mu.Unlock()
	if n2 != 1 || n1 < 1 || n1 > 11 {
		t.Fatalf("upstream saw cmd/light-1 %d times, cmd/light-2 %d times; want each only from the cloud (no echo from the gateway)", n1, n2)
	}
	// Every command that reached the gateway was delivered on its route:
	// at least the two the lights got, at most what the cloud published.
	s = scrape(t, g.metrics)
	delivered := sample(s, `edgegw_route_inbound_messages_total{result="delivered",route="commands"}`)
	if delivered < 2 || delivered > float64(n1+n2) {
		t.Errorf(`edgegw_route_inbound_messages_total{result="delivered",route="commands"} = %v; want 2..%d`, delivered, n1+n2)
	}
	if all := sample(s, `edgegw_inbound_messages_total{result="delivered"}`); all != delivered {
		t.Errorf(`edgegw_inbound_messages_total{result="delivered"} = %v; want %v, the commands route's (the only in route)`, all, delivered)
	}
	if v := sample(s, `edgegw_route_inbound_messages_total{result="dropped",route="commands"}`); v != 0 {
		t.Errorf(`edgegw_route_inbound_messages_total{result="dropped",route="commands"} = %v; want 0`, v)
	}
	g.stop()
	st, _ := g.queueStats()
	for _, r := range st.Routes {
		if r.Name == "commands" && r.Enqueued+uint64(r.Depth) != 0 {
			t.Errorf("route commands queued %d messages; inbound commands must never be queued upstream", r.Enqueued+uint64(r.Depth))
		}
	}
}

// TestBridgeE2EFlapping: the upstream is stopped and started 10 times while
// 4 sensors stream; nothing acknowledged is lost and edgegw is not restarted.
func TestBridgeE2EFlapping(t *testing.T) {
	up := gatewaytest.NewUpstream(t, cmdUpstream)
	cloud := startCloudSub(t, up, "sites/#")
	g := newBridgeGW(t, up, gwOptions{})
	const sensors, flaps = 4, 10
	stop := make(chan struct{})
	var (
		mu    sync.Mutex
		acked = map[msgID]bool{}
		wg    sync.WaitGroup
	)
	for _, name := range sensorNames(sensors) {
		s, err := g.sensor(t, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(4 * time.Millisecond) // ~250 msg/s per sensor
			defer tick.Stop()
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				id := msgID{name, seq}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				pr, err := s.c.Publish(ctx, &paho.Publish{Topic: "sensors/" + name + "/t", QoS: 1, Payload: []byte(id.payload())})
				cancel()
				if err != nil || pr.ReasonCode >= 0x80 {
					t.Errorf("%s seq %d: %v (the gateway must keep accepting during upstream outages)", name, seq, err)
					return
				}
				mu.Lock()
				acked[id] = true
				mu.Unlock()
			}
		}()
	}
	pid := g.cmd.Process.Pid
	start := time.Now()
	for i := range flaps {
		time.Sleep(1500 * time.Millisecond)
		up.Stop()
		time.Sleep(time.Duration(500+100*i) * time.Millisecond)
		up.Start()
	}
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	streamed := time.Since(start)
	mu.Lock()
	n := len(acked)
	mu.Unlock()
	took := cloud.waitDistinct(t, n, 30*time.Second, 90*time.Second)
	missing, nMissing, dups := cloud.check(acked)
	if nMissing > 0 {
		t.Fatalf("%d acknowledged messages lost, e.g. %v", nMissing, missing)
	}
	if g.cmd == nil || g.cmd.Process.Pid != pid || g.starts != 1 {
		t.Fatal("edgegw was restarted")
	}
	select {
	case <-g.exited:
		t.Fatal("edgegw exited during the flapping")
	default:
	}
	reconnects := strings.Count(g.log.String(), "upstream connected")
	t.Logf("%d flaps in %v: %d messages acked by the gateway, all upstream %v after the stream; %d upstream connections; duplicates %d (<= %d connections x window 128)",
		flaps, streamed.Round(time.Millisecond), n, took.Round(time.Millisecond), reconnects, dups, reconnects*128)
	if reconnects < flaps+1 {
		t.Errorf("%d upstream connections; want >= %d (one per flap)", reconnects, flaps+1)
	}
	if dups > reconnects*128 {
		t.Errorf("%d duplicates; want <= %d", dups, reconnects*128)
	}
}
