package demo

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	pahopackets "github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/edgegw/edgegw/gateway"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/observe"
	"github.com/edgegw/edgegw/gateway/pki"
)

// Options configure Run.
type Options struct {
	Logger    *slog.Logger // the two gateways' logs; nil discards them
	PerSensor int          // messages per sensor per traffic phase (default 10)
	Live      bool         // redraw one progress line with \r (a terminal)
}

// Summary is what Run counted.
type Summary struct {
	Sent, Acked, Denied int // publishes by the sensors; acked = PUBACK success
	QueuedPeak          int // deepest queue seen while the upstream was cut
	Delivered           int // distinct messages the cloud app received
	Duplicates          int // extra copies (at-least-once delivery)
	Lost                int // acked but not delivered
	RevokedCut          bool
	Steps               []string
	Elapsed             time.Duration
}

const (
	demoSite    = "demo"
	demoRoute   = "telemetry"
	demoGwThing = "demo-gw"
	demoCloud   = "cloud-app"
)

var demoSensors = []struct{ thing, kind, unit string }{
	{"temp-1", "temperature", "C"}, {"light-1", "light", "lx"}, {"lock-1", "lock", "state"},
}

const demoSensorPolicy = `{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Action": "iot:Connect", "Resource": "client/${iot:Connection.Thing.ThingName}"},
 {"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/building/${iot:Connection.Thing.ThingName}/*"}
]}`

const demoGatewayPolicy = `{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Action": "iot:Connect", "Resource": "client/${iot:Connection.Thing.ThingName}"},
 {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": "topic/sites/demo/*"},
 {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "topicfilter/sites/demo/*"}
]}`

const demoCloudPolicy = `{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Action": "iot:Connect", "Resource": "client/cloud-app"},
 {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "topicfilter/sites/#"},
 {"Effect": "Allow", "Action": "iot:Receive", "Resource": "topic/sites/*"}
]}`

// Run runs the demo, writing progress and the summary to w. It returns an
// error if a step did not happen as told or a message was lost.
func Run(ctx context.Context, w io.Writer, o Options) (sum Summary, err error) {
	start := time.Now()
	if o.PerSensor <= 0 {
		o.PerSensor = 10
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithTimeout(ctx, 55*time.Second)
	defer cancel()
	dir, err := os.MkdirTemp("", "edgegw-demo-")
	if err != nil {
		return sum, fmt.Errorf("demo: %w", err)
	}
	d := &demo{w: w, o: o, dir: dir, sum: &sum, received: map[string]int{}}
	defer func() {
		d.shutdown()
		if rerr := os.RemoveAll(dir); rerr != nil && err == nil {
			err = fmt.Errorf("demo: removing %s: %w", dir, rerr)
		}
		sum.Elapsed = time.Since(start)
	}()
	err = d.run(ctx)
	d.stopProgress()
	d.countDelivered()
	fmt.Fprintf(w, "\nsummary: sent %d, acked %d, queued %d (peak during the outage), delivered %d, duplicates %d, lost %d\n",
		sum.Sent, sum.Acked, sum.QueuedPeak, sum.Delivered, sum.Duplicates, sum.Lost)
	fmt.Fprintf(w, "         denied %d, revoked sensor cut off: %v\n", sum.Denied, sum.RevokedCut)
	if err == nil && sum.Lost != 0 {
		err = fmt.Errorf("demo: %d acked messages were not delivered", sum.Lost)
	}
	if err != nil {
		fmt.Fprintf(w, "demo FAILED after %s: %v\n", time.Since(start).Round(100*time.Millisecond), err)
		return sum, err
	}
	fmt.Fprintf(w, "demo finished in %s; the temporary site %s is removed\n", time.Since(start).Round(100*time.Millisecond), dir)
	return sum, nil
}

type demo struct {
	w   io.Writer
	o   Options
	dir string
	sum *Summary

	sitePKI, cloudPKI string
	siteCfg, upCfg    string
	siteSock, upSock  string
	metricsAddr       string
	upAddr            string

	site, up *demoInstance
	link     *demoLink
	sensors  map[string]*demoClient
	cloud    *demoClient

	mu       sync.Mutex
	received map[string]int // payload -> copies at the cloud app
	sent     atomic.Int64
	acked    atomic.Int64
	phase    atomic.Pointer[string]
	progStop chan struct{}
	progDone chan struct{}
}

func (d *demo) run(ctx context.Context) error {
	if err := d.makeSites(ctx); err != nil {
		return err
	}
	d.startProgress()
	var err error
	d.setPhase("starting the upstream")
	if d.up, err = startOnFreePorts(ctx, d.writeUpConfig, &d.upCfg, &d.upSock, d.o.Logger.With("instance", "upstream")); err != nil {
		return fmt.Errorf("starting the upstream: %w", err)
	}
	d.step("upstream broker up: a second edgegw in broker-only mode, mTLS on %s", d.upAddr)
	if d.link, err = newDemoLink(d.upAddr); err != nil {
		return err
	}
	d.setPhase("starting the gateway")
	if d.site, err = startOnFreePorts(ctx, d.writeSiteConfig, &d.siteCfg, &d.siteSock, d.o.Logger.With("instance", "gateway")); err != nil {
		return fmt.Errorf("starting the gateway: %w", err)
	}
	if err := d.waitUpstream(ctx, true); err != nil {
		return err
	}
	d.step("gateway up: site %q, mTLS on %s, bridged to the upstream via %s, metrics on http://%s/metrics", demoSite, d.site.lan, d.link.addr(), d.metricsAddr)
	if d.cloud, err = d.connect(ctx, d.upAddr, d.cloudPKI, demoCloud, d.cloudIn); err != nil {
		return fmt.Errorf("cloud app: %w", err)
	}
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = d.cloud.c.Subscribe(sctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "sites/#", QoS: 1}}})
	scancel()
	if err != nil {
		return fmt.Errorf("cloud app subscribe: %w", err)
	}
	d.sensors = map[string]*demoClient{}
	for _, s := range demoSensors {
		c, err := d.connect(ctx, d.site.lan, d.sitePKI, s.thing, nil)
		if err != nil {
			return fmt.Errorf("sensor %s: %w", s.thing, err)
		}
		d.sensors[s.thing] = c
	}
	for _, step := range []func(context.Context) error{d.normalTraffic, d.deniedPublish, d.revokeLock, d.upstreamOutage} {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return nil
}

// normalTraffic: every sensor publishes; everything arrives upstream.
func (d *demo) normalTraffic(ctx context.Context) error {
	d.setPhase("normal traffic")
	if err := d.traffic(ctx, []string{"temp-1", "light-1", "lock-1"}, 0); err != nil {
		return err
	}
	if err := d.waitDelivered(ctx); err != nil {
		return err
	}
	d.step("normal traffic: 3 sensors, %d messages acked by the gateway, all delivered upstream", d.acked.Load())
	return nil
}

// deniedPublish: a publish to a neighbour's topic is refused (0x87) and shows
// in edgegw status.
func (d *demo) deniedPublish(ctx context.Context) error {
	d.setPhase("denied publish")
	rc, perr := d.publish(ctx, d.sensors["temp-1"], "building/lock-1/state", `{"state":"open"}`, false)
	if rc != 0x87 {
		return fmt.Errorf("temp-1 publishing to building/lock-1/state: reason 0x%02x (%v); want 0x87 not authorized", rc, perr)
	}
	d.sum.Denied++
	var st observe.Status
	if err := observe.AdminGet(ctx, d.siteSock, "/status", &st); err != nil {
		return err
	}
	if len(st.Denials) == 0 || st.Denials[0].Resource != "topic/building/lock-1/state" {
		return fmt.Errorf("the denial is not in edgegw status: %+v", st.Denials)
	}
	d.step("denied: temp-1 -> building/lock-1/state (a neighbour's topic): PUBACK 0x87 not authorized, in edgegw status")
	return nil
}

// revokeLock: lock-1's certificate is revoked; it is cut at once, nobody else.
func (d *demo) revokeLock(ctx context.Context) error {
	d.setPhase("revoking lock-1")
	if _, err := pki.Revoke(ctx, pki.Options{Dir: d.sitePKI}, "lock-1", "keyCompromise"); err != nil {
		return fmt.Errorf("revoking lock-1: %w", err)
	}
	select {
	case <-d.sensors["lock-1"].gone:
	case <-time.After(15 * time.Second):
		return errors.New("lock-1 still connected 15s after its certificate was revoked")
	case <-ctx.Done():
		return ctx.Err()
	}
	if c, err := d.connect(ctx, d.site.lan, d.sitePKI, "lock-1", nil); err == nil {
		c.close()
		return errors.New("lock-1 reconnected after its certificate was revoked")
	}
	// The client sees its connection closed before the gateway's read loop
	// for it has ended and the session left the device list: give that a
	// moment.
	var st observe.Status
	for deadline := time.Now().Add(5 * time.Second); ; {
		if err := observe.AdminGet(ctx, d.siteSock, "/status", &st); err != nil {
			return err
		}
		if st.Devices.Count == 2 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after revoking lock-1: %d devices connected 5s later; want temp-1 and light-1", st.Devices.Count)
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.sum.RevokedCut = true
	d.step("revoked: lock-1 cut off at once (CRL reloaded, reconnect refused); temp-1 and light-1 stay connected")
	return nil
}

// upstreamOutage: the link is cut while sensors publish (acked and queued),
// then restored (drained, nothing lost).
func (d *demo) upstreamOutage(ctx context.Context) error {
	d.setPhase("upstream outage")
	d.link.cut()
	if err := d.waitUpstream(ctx, false); err != nil {
		return err
	}
	before := d.acked.Load()
	if err := d.traffic(ctx, []string{"temp-1", "light-1"}, 1); err != nil {
		return err
	}
	queued := d.acked.Load() - before
	depth, err := d.queueDepth(ctx)
	if err != nil {
		return err
	}
	d.sum.QueuedPeak = int(depth)
	if depth < queued {
		return fmt.Errorf("upstream down: %d messages acked but the queue holds %d", queued, depth)
	}
	metric := d.scrapeDepth()
	d.step("upstream outage: link cut, %d messages acked by the gateway and queued on disk (%s)", queued, metric)
	d.setPhase("upstream back, draining")
	d.link.restore()
	if err := d.waitUpstream(ctx, true); err != nil {
		return err
	}
	if err := d.waitDelivered(ctx); err != nil {
		return err
	}
	// The cloud subscriber can see a message before the upstream's PUBACK
	// for it reaches the gateway, and only that PUBACK removes it from the
	// queue: give the last acknowledgements a bounded moment.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if depth, err = d.queueDepth(ctx); err != nil {
			return err
		}
		if depth == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after the drain the queue still holds %d (5 s after the last delivery)", depth)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	d.step("upstream back: the queue drained, every message delivered (queue depth 0)")
	return nil
}

// makeSites creates the two throwaway PKIs, the sensors' and the gateway's
// certificates; the configs are written by writeUpConfig and
// writeSiteConfig when their gateways start (startOnFreePorts).
func (d *demo) makeSites(ctx context.Context) error {
	d.sitePKI, d.cloudPKI = filepath.Join(d.dir, "site", "pki"), filepath.Join(d.dir, "cloud", "pki")
	hosts := []string{"localhost", "127.0.0.1"}
	for _, p := range []string{d.sitePKI, d.cloudPKI} {
		if _, err := pki.Init(ctx, pki.Options{Dir: p}, pki.InitOptions{CN: "edgegw demo " + filepath.Base(filepath.Dir(p)) + " CA", Hosts: hosts}); err != nil {
			return fmt.Errorf("demo PKI %s: %w", p, err)
		}
	}
	var reqs []pki.IssueRequest
	for _, s := range demoSensors {
		reqs = append(reqs, pki.IssueRequest{Thing: s.thing, Type: s.kind})
	}
	if _, err := pki.Issue(ctx, pki.Options{Dir: d.sitePKI}, filepath.Join(d.dir, "site", "certs"), reqs...); err != nil {
		return fmt.Errorf("issuing sensor certificates: %w", err)
	}
	if _, err := pki.Issue(ctx, pki.Options{Dir: d.cloudPKI}, filepath.Join(d.dir, "cloud", "certs"),
		pki.IssueRequest{Thing: demoGwThing, Type: "gateway"}, pki.IssueRequest{Thing: demoCloud, Type: "app"}); err != nil {
		return fmt.Errorf("issuing the gateway's upstream certificate: %w", err)
	}
	d.step("throwaway site in %s: two CAs (site, cloud), certificates for temp-1, light-1, lock-1, %s, %s", d.dir, demoGwThing, demoCloud)

	return nil
}

// writeUpConfig writes the upstream's registry, policies and config, on a
// newly picked loopback port.
func (d *demo) writeUpConfig() error {
	var err error
	if d.upAddr, err = pickAddr(); err != nil {
		return err
	}
	up := filepath.Join(d.dir, "cloud")
	d.upSock = filepath.Join(up, "admin.sock")
	files := map[string]string{
		"devices.yaml": `version: 1
default: {policies: []}
things:
  - {name: ` + demoGwThing + `, type: gateway, policies: [gateway]}
  - {name: ` + demoCloud + `, type: app, policies: [cloud]}
`,
		"policies/gateway.json": demoGatewayPolicy,
		"policies/cloud.json":   demoCloudPolicy,
		"edgegw.yaml": fmt.Sprintf(`version: 1
site: cloud
state_dir: state
listeners:
  - name: mqtts
    address: "%s"
    tls: {ca: pki/ca.crt, cert: pki/server.crt, key: "file:pki/server.key"}
devices: devices.yaml
policies: policies
store: {dir: state/queue}
metrics: {address: ""}
admin: {socket: %s}
audit: {file: ""}
`, d.upAddr, d.upSock),
	}
	if err := writeDemoFiles(up, files); err != nil {
		return err
	}
	d.upCfg = filepath.Join(up, "edgegw.yaml")
	return nil
}

func (d *demo) writeSiteConfig() error {
	site := filepath.Join(d.dir, "site")
	lan, err := pickAddr()
	if err != nil {
		return err
	}
	if d.metricsAddr, err = pickAddr(); err != nil {
		return err
	}
	d.siteSock = filepath.Join(site, "admin.sock")
	var things strings.Builder
	for _, s := range demoSensors {
		fmt.Fprintf(&things, "  - {name: %s, type: %s, policies: [sensor]}\n", s.thing, s.kind)
	}
	files := map[string]string{
		"devices.yaml":         "version: 1\ndefault: {policies: []}\nthings:\n" + things.String(),
		"policies/sensor.json": demoSensorPolicy,
		"edgegw.yaml": fmt.Sprintf(`version: 1
site: %s
state_dir: state
listeners:
  - name: lan
    address: "%s"
    tls: {ca: pki/ca.crt, cert: pki/server.crt, key: "file:pki/server.key", crl: pki/crl.pem}
devices: devices.yaml
policies: policies
store: {dir: state/queue, min_free: 16MiB}
bridge:
  upstreams: [{url: "mqtts://%s"}]
  client_id: %s
  tls: {ca: ../cloud/pki/ca.crt, cert: ../cloud/certs/%s.crt, key: "file:../cloud/certs/%s.key"}
  keepalive: 5s
  connect_timeout: 3s
  backoff: {min: 100ms, max: 500ms}
  routes:
    - {name: %s, topic: "building/#", direction: out, qos: 1, remote_prefix: "sites/demo/"}
metrics: {address: "%s"}
admin: {socket: %s}
audit: {file: ""}
`, demoSite, lan, d.link.addr(), demoGwThing, demoGwThing, demoGwThing, demoRoute, d.metricsAddr, d.siteSock),
	}
	if err := writeDemoFiles(site, files); err != nil {
		return err
	}
	d.siteCfg = filepath.Join(site, "edgegw.yaml")
	return nil
}

func writeDemoFiles(dir string, files map[string]string) error {
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	return nil
}

// pickAddr picks the loopback address of a listener the demo configures
// (a variable for the test of startOnFreePorts).
var pickAddr = freeLoopbackAddr

// portTries bounds the starts of one demo gateway on newly picked ports.
const portTries = 5

// startOnFreePorts writes an instance's config (write picks its ports and
// sets *cfg and *sock) and starts it; when a port was taken between the
// pick and the bind (any process on the machine may take a port the demo
// found free: parallel test runs did), it writes the config again with
// other ports and starts again, at most portTries times.
func startOnFreePorts(ctx context.Context, write func() error, cfg, sock *string, log *slog.Logger) (*demoInstance, error) {
	for try := 1; ; try++ {
		if err := write(); err != nil {
			return nil, err
		}
		g, err := startDemoGateway(ctx, *cfg, *sock, log)
		if err == nil || try == portTries || !errors.Is(err, syscall.EADDRINUSE) {
			return g, err
		}
		log.Info("a port the demo picked was taken before its gateway bound it; picking others", "err", err)
	}
}

func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("demo: finding a free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// demoInstance is one Gateway.Run in this process.
type demoInstance struct {
	lan    string
	socket string
	cancel context.CancelFunc
	done   chan error
}

func startDemoGateway(ctx context.Context, cfgPath, socket string, log *slog.Logger) (*demoInstance, error) {
	cfg, err := config.Check(cfgPath)
	if err != nil {
		return nil, err
	}
	g, err := gateway.New(cfg, log)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	dg := &demoInstance{lan: cfg.Listeners[0].Address, socket: socket, cancel: cancel, done: make(chan error, 1)}
	go func() { dg.done <- g.Run(rctx) }()
	for {
		var h observe.Health
		if err := observe.AdminGet(ctx, socket, "/healthz", &h); err == nil && h.Status == "ok" {
			return dg, nil
		}
		select {
		case err := <-dg.done:
			cancel()
			if err == nil {
				err = errors.New("stopped at once")
			}
			return nil, err
		case <-ctx.Done():
			dg.stop()
			return nil, fmt.Errorf("not healthy: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (g *demoInstance) stop() {
	if g == nil || g.cancel == nil {
		return
	}
	g.cancel()
	g.cancel = nil
	select {
	case <-g.done:
	case <-time.After(20 * time.Second):
	}
}

// demoLink forwards TCP to the upstream; cut closes every connection and
// refuses new ones until restore: an upstream outage as the gateway sees it.
type demoLink struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func newDemoLink(target string) (*demoLink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo link: %w", err)
	}
	l := &demoLink{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	l.wg.Add(1)
	go l.accept()
	return l, nil
}

func (l *demoLink) addr() string { return l.ln.Addr().String() }

func (l *demoLink) accept() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		down := l.down
		l.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		u, err := net.DialTimeout("tcp", l.target, 3*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		l.mu.Lock()
		l.conns[c], l.conns[u] = struct{}{}, struct{}{}
		l.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			defer l.wg.Done()
			_, _ = io.Copy(dst, src)
			dst.Close()
			src.Close()
			l.mu.Lock()
			delete(l.conns, dst)
			delete(l.conns, src)
			l.mu.Unlock()
		}
		l.wg.Add(2)
		go pipe(c, u)
		go pipe(u, c)
	}
}

func (l *demoLink) cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = true
	for c := range l.conns {
		c.Close()
	}
}

func (l *demoLink) restore() {
	l.mu.Lock()
	l.down = false
	l.mu.Unlock()
}

func (l *demoLink) close() {
	if l == nil {
		return
	}
	l.ln.Close()
	l.cut()
	l.wg.Wait()
}

// demoClient is an MQTT 5 client over mutual TLS (a sensor or the cloud app).
type demoClient struct {
	thing string
	c     *paho.Client
	conn  net.Conn
	gone  chan struct{}
	seq   int
}

func (d *demo) connect(ctx context.Context, addr, pkiDir, thing string, onMsg func(*paho.Publish)) (*demoClient, error) {
	certDir := filepath.Join(filepath.Dir(pkiDir), "certs")
	cert, err := tls.LoadX509KeyPair(filepath.Join(certDir, thing+".crt"), filepath.Join(certDir, thing+".key"))
	if err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(filepath.Join(pkiDir, pki.CACertFile))
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := (&tls.Dialer{Config: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, ServerName: "127.0.0.1"}}).DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	dc := &demoClient{thing: thing, conn: conn, gone: make(chan struct{})}
	var once sync.Once
	gone := func() { once.Do(func() { close(dc.gone) }) }
	cfg := paho.ClientConfig{
		// paho serializes a packet's several Writes only on a sync.Locker.
		Conn:               pahopackets.NewThreadSafeConn(conn),
		OnClientError:      func(error) { gone() },
		OnServerDisconnect: func(*paho.Disconnect) { gone() },
	}
	if onMsg != nil {
		cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			onMsg(pr.Packet)
			return true, nil
		}}
	}
	dc.c = paho.NewClient(cfg)
	if _, err := dc.c.Connect(dctx, &paho.Connect{ClientID: thing, KeepAlive: 30, CleanStart: true}); err != nil {
		conn.Close()
		return nil, err
	}
	return dc, nil
}

func (c *demoClient) close() {
	if c == nil {
		return
	}
	select {
	case <-c.gone:
	default:
		_ = c.c.Disconnect(&paho.Disconnect{})
	}
	c.conn.Close()
}

func (d *demo) cloudIn(p *paho.Publish) {
	d.mu.Lock()
	d.received[string(p.Payload)]++
	d.mu.Unlock()
}

// traffic publishes PerSensor messages from each named sensor, QoS 1.
func (d *demo) traffic(ctx context.Context, things []string, phase int) error {
	for i := 0; i < d.o.PerSensor; i++ {
		for _, th := range things {
			c := d.sensors[th]
			c.seq++
			var kind, value string
			for _, s := range demoSensors {
				if s.thing == th {
					kind = s.kind
					value = fmt.Sprintf("%d %s", 20+phase*5+c.seq%7, s.unit)
				}
			}
			payload := fmt.Sprintf(`{"device":%q,"n":%d,"value":%q}`, th, c.seq, value)
			rc, err := d.publish(ctx, c, "building/"+th+"/"+kind, payload, true)
			if err != nil || rc >= 0x80 {
				return fmt.Errorf("%s publishing: reason 0x%02x: %v", th, rc, err)
			}
		}
	}
	return nil
}

func (d *demo) publish(ctx context.Context, c *demoClient, topic, payload string, count bool) (byte, error) {
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if count {
		d.sent.Add(1)
	}
	r, err := c.c.Publish(pctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(payload)})
	var rc byte
	if r != nil {
		rc = r.ReasonCode
	}
	if count && err == nil && rc < 0x80 {
		d.acked.Add(1)
	}
	return rc, err
}

func (d *demo) countDelivered() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sum.Sent, d.sum.Acked = int(d.sent.Load()), int(d.acked.Load())
	d.sum.Delivered, d.sum.Duplicates = len(d.received), 0
	for _, n := range d.received {
		d.sum.Duplicates += n - 1
	}
	d.sum.Lost = max(d.sum.Acked-d.sum.Delivered, 0)
}

// waitDelivered waits until the cloud app has every acked message.
func (d *demo) waitDelivered(ctx context.Context) error {
	for {
		d.mu.Lock()
		n := len(d.received)
		d.mu.Unlock()
		if int64(n) >= d.acked.Load() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for delivery upstream (%d of %d arrived): %w", n, d.acked.Load(), ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitUpstream waits until the gateway reports the upstream connected (or down).
func (d *demo) waitUpstream(ctx context.Context, connected bool) error {
	want := map[bool]string{true: "connected", false: "down"}[connected]
	for {
		var h observe.Health
		err := observe.AdminGet(ctx, d.siteSock, "/healthz", &h)
		if err == nil && h.Upstream == want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the upstream to be %s (now %q, %v): %w", want, h.Upstream, err, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (d *demo) queueDepth(ctx context.Context) (int64, error) {
	var st observe.Status
	if err := observe.AdminGet(ctx, d.siteSock, "/status", &st); err != nil {
		return 0, err
	}
	if st.Queue == nil {
		return 0, errors.New("the gateway reports no queue")
	}
	return st.Queue.Depth, nil
}

// scrapeDepth reads the route's queue depth from /metrics, as Prometheus would.
func (d *demo) scrapeDepth() string {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + d.metricsAddr + "/metrics")
	if err != nil {
		return "metrics: " + err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	series := `edgegw_queue_depth{route="` + demoRoute + `"}`
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, series+" ") {
			return l
		}
	}
	return "metrics: no " + series
}

func (d *demo) step(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	d.sum.Steps = append(d.sum.Steps, line)
	if d.o.Live {
		fmt.Fprintf(d.w, "\r\033[K")
	}
	fmt.Fprintf(d.w, "  ok  %s\n", line)
}

func (d *demo) setPhase(p string) { d.phase.Store(&p) }

// startProgress redraws one status line while a terminal is watching.
func (d *demo) startProgress() {
	if !d.o.Live {
		return
	}
	d.progStop, d.progDone = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(d.progDone)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-d.progStop:
				fmt.Fprintf(d.w, "\r\033[K")
				return
			case <-t.C:
				phase := "starting"
				if p := d.phase.Load(); p != nil {
					phase = *p
				}
				d.mu.Lock()
				n := len(d.received)
				d.mu.Unlock()
				queued := "-"
				if d.site != nil {
					var st observe.Status
					if observe.AdminGet(context.Background(), d.siteSock, "/status", &st) == nil && st.Queue != nil {
						queued = fmt.Sprint(st.Queue.Depth)
					}
				}
				fmt.Fprintf(d.w, "\r\033[K  ..  %s: sent %d, acked %d, queued %s, delivered %d", phase, d.sent.Load(), d.acked.Load(), queued, n)
			}
		}
	}()
}

func (d *demo) stopProgress() {
	if d.progStop != nil {
		close(d.progStop)
		<-d.progDone
		d.progStop = nil
	}
}

func (d *demo) shutdown() {
	d.stopProgress()
	for _, c := range d.sensors {
		c.close()
	}
	d.cloud.close()
	d.site.stop()
	d.link.close()
	d.up.stop()
}
