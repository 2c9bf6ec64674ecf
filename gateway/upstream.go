package gateway

// The durable path and the upstream links, as `edgegw run` wires them, for
// each bridge of the config (bridge: is one named default; bridges: a list):
//
//	config store + the bridge's routes ──> store.Options ──> *store.Queue (its own directory: config.BridgeQueueDir)
//	config <bridge>.tls ──> hw key (file/TPM/HSM/auto) + CA pool ──> *tls.Config
//	config <bridge> ──> bridge.Config ──> *bridge.Bridge (reads its queue, publishes inbound locally)
//	every bridge's routes, compiled once by its bridge (Bridge.Routes) ──> routeMatcher (broker.RouteMatcher)
//	route name ──> its bridge's queue (queueMux, or the one queue) ──> Broker.SetOutbound(queues, matcher)
//
// A message matching routes of two bridges is queued once per bridge (the
// broker submits once per route, the route names the queue) and each
// bridge's upstream acknowledges its copy: one bridge's outage holds back and
// resends only its own queue.
//
// Start order: the queue is open and the outbound path installed before the
// listeners accept (so no early publish escapes the queue); the bridge starts
// after. Stop order: listeners and clients (Broker.Close), then the bridge,
// then the queue, then the key.

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"reflect"
	"sync"
	"time"

	"github.com/edgegw/edgegw/bridge"
	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/gateway/broker"
	"github.com/edgegw/edgegw/gateway/clock"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/observe"
	"github.com/edgegw/edgegw/gateway/renew"
	"github.com/edgegw/edgegw/hw"
	"github.com/edgegw/edgegw/store"
)

// Compile-time fit of the pieces.
var (
	_ broker.Enqueuer     = (*store.Queue)(nil)
	_ bridge.Queue        = (*store.Queue)(nil)
	_ bridge.Publisher    = (*broker.LocalPublisher)(nil)
	_ broker.RouteMatcher = (*routeMatcher)(nil)
)

// upstream is what Run started for the bridges: one link per bridge, the
// local publisher they share, and the goroutines running the bridges.
type upstream struct {
	log    *slog.Logger
	broker *broker.Broker
	pub    *broker.LocalPublisher
	links  []*link
	shadow *shadows // the shadows section, when set (shadows.go); synced through the first bridge

	mu sync.Mutex // serialises route reloads

	cancel context.CancelFunc
	wg     sync.WaitGroup
	failed chan error // buffered: a bridge.Run stopped with a queue error
}

// link is one bridge: its queue, the bridge and the key of its identity.
type link struct {
	name   string
	queue  *store.Queue
	bridge *bridge.Bridge
	key    hw.Key         // nil when renewer owns it
	routes []config.Route // as configured and applied
	// renewer renews the identity (tls.renew; upstream_renew.go).
	renewer *renew.Renewer
}

// Queue returns the first bridge's running durable queue (nil before Run,
// or without a bridge).
func (g *Gateway) Queue() *store.Queue {
	if g.run == nil || g.run.up == nil || len(g.run.up.links) == 0 {
		return nil
	}
	return g.run.up.links[0].queue
}

// Bridge returns the first running upstream bridge (nil before Run, or
// without a bridge).
func (g *Gateway) Bridge() *bridge.Bridge {
	if g.run == nil || g.run.up == nil || len(g.run.up.links) == 0 {
		return nil
	}
	return g.run.up.links[0].bridge
}

// Bridges returns the running bridges in config order.
func (g *Gateway) Bridges() []*bridge.Bridge {
	if g.run == nil || g.run.up == nil {
		return nil
	}
	out := make([]*bridge.Bridge, len(g.run.up.links))
	for i, l := range g.run.up.links {
		out[i] = l.bridge
	}
	return out
}

// StoreOptionsFromConfig translates the store section and the out routes of
// the bridge named default into the options of the queue in store.dir (the
// `edgegw queue` commands' queue). The encryption key is read through
// hw.OpenSecret (file: or tpm-sealed:, created on first use in the TPM case).
func StoreOptionsFromConfig(ctx context.Context, cfg *config.Config) (store.Options, error) {
	var def *config.BridgeConfig
	for _, b := range cfg.BridgeList() {
		if b.BridgeName() == config.DefaultBridgeName {
			def = b
		}
	}
	return StoreOptionsForBridge(ctx, cfg, def)
}

// StoreOptionsForBridge is the queue options of bridge b (nil: a queue with
// no routes in store.dir): its own directory (config.BridgeQueueDir), its
// out routes, and the store section's limits and key, which every bridge's
// queue shares (store.max_bytes caps each queue; store.min_free guards the
// one disk).
func StoreOptionsForBridge(ctx context.Context, cfg *config.Config, b *config.BridgeConfig) (store.Options, error) {
	o := store.Options{
		Dir:          cfg.Store.Dir,
		MaxBytes:     cfg.Store.MaxBytes.Bytes(),
		MinFreeBytes: uint64(max(cfg.Store.MinFree.Bytes(), 0)),
		Clock:        clock.Process().AgeNow,
	}
	if b != nil {
		o.Dir = cfg.BridgeQueueDir(b.BridgeName())
		o.Routes = RouteLimitsFromConfig(b.Routes)
		if shadowBridge(cfg, b) {
			o.Routes = append(o.Routes, shadowRouteLimits(cfg)...)
		}
	}
	if uri := cfg.Store.EncryptionKey; uri != "" {
		k, err := hw.OpenSecret(ctx, uri)
		if err != nil {
			return store.Options{}, fmt.Errorf("store.encryption_key: %w", err)
		}
		o.EncryptionKey = k
	}
	return o, nil
}

// ensureQueueKey creates the queue's encryption key on the daemon's first
// start: only when no bridge's queue directory exists yet or all are empty,
// so a lost key file next to an existing queue stays an error (a fresh key
// could not read it) instead of being silently replaced. The edgegw queue
// commands never create a key; they use StoreOptionsFromConfig alone.
func ensureQueueKey(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	uri := cfg.Store.EncryptionKey
	if uri == "" {
		return nil
	}
	dirs := []string{cfg.Store.Dir}
	for _, b := range cfg.BridgeList() {
		dirs = append(dirs, cfg.BridgeQueueDir(b.BridgeName()))
	}
	for _, dir := range dirs {
		if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
			return nil
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("store.dir: %w", err)
		}
	}
	_, created, err := hw.OpenOrCreateSecret(ctx, uri)
	if err != nil {
		return fmt.Errorf("store.encryption_key: %w", err)
	}
	if created {
		log.Info("created a new queue encryption key; back it up with the queue if you move it", "component", "queue", "key", hw.Redact(uri))
	}
	return nil
}

// RouteLimitsFromConfig returns the queue limits of the routes that own a
// queue (direction out or both).
func RouteLimitsFromConfig(routes []config.Route) []store.RouteLimits {
	var out []store.RouteLimits
	for _, r := range routes {
		if r.Direction != config.DirectionOut && r.Direction != config.DirectionBoth {
			continue
		}
		ov := store.DropOldest
		if r.Overflow == config.OverflowReject {
			ov = store.Reject
		}
		out = append(out, store.RouteLimits{
			Name: r.ID(), MaxBytes: r.MaxBytes.Bytes(), MaxMessages: r.MaxMessages,
			MaxAge: r.MaxAge.D(), Overflow: ov, Priority: r.Priority,
		})
	}
	return out
}

// BridgeRoutesFromConfig translates config routes into bridge routes.
func BridgeRoutesFromConfig(routes []config.Route) ([]bridge.Route, error) {
	out := make([]bridge.Route, 0, len(routes))
	for i, r := range routes {
		d, err := bridge.ParseDirection(r.Direction)
		if err != nil {
			return nil, fmt.Errorf("bridge.routes[%d]: %w", i, err)
		}
		out = append(out, bridge.Route{
			Name: r.ID(), Topic: r.Topic, Direction: d, QoS: byte(min(max(r.QoS, 0), 2)),
			LocalPrefix: r.LocalPrefix, RemotePrefix: r.RemotePrefix, Priority: r.Priority,
		})
	}
	return out, nil
}

// UpstreamTLS is BridgeTLS for the first bridge (bridge: or bridges[0]).
func UpstreamTLS(ctx context.Context, cfg *config.Config, log *slog.Logger) (*tls.Config, hw.Key, error) {
	bs := cfg.BridgeList()
	if len(bs) == 0 {
		return nil, nil, nil
	}
	return BridgeTLS(ctx, cfg, bs[0], cfg.BridgePath(0), log)
}

// BridgeTLS builds bridge b's client TLS config towards its upstream: the
// gateway's certificate (chain) from tls.cert with its private key behind
// the key URI (file, TPM, PKCS#11, or "auto": TPM when one answers, else a
// 0600 file in state_dir; the choice and its reason are logged), the
// upstream CA bundle (system roots when tls.ca is empty), TLS 1.2 at least,
// and the clock guard for certificate validity. Without tls.cert (a bridge
// that logs in with a username) the config only verifies the server.
// ServerName is set per upstream by the bridge. p is the key path in
// errors (bridge or bridges[i]). The returned key (nil without a
// certificate) must be closed by the caller.
// The identity is tls.cert and tls.key, or the renewed one in state_dir
// when it is newer (renew.Current).
func BridgeTLS(ctx context.Context, cfg *config.Config, b *config.BridgeConfig, p string, log *slog.Logger) (*tls.Config, hw.Key, error) {
	if b == nil || b.TLS == nil {
		return nil, nil, nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := b.TLS
	tc := &tls.Config{MinVersion: tls.VersionTLS12, Time: clock.Process().Now}
	if t.CA != "" {
		data, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, nil, fmt.Errorf("%s.tls.ca: %w", p, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(data) {
			return nil, nil, fmt.Errorf("%s.tls.ca: %s holds no PEM certificate", p, t.CA)
		}
		tc.RootCAs = pool
	}
	if t.Cert == "" {
		return tc, nil, nil
	}
	id, err := renew.Current(cfg.StateDir, b.BridgeName(), t.Cert, t.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("%s.tls: %w", p, err)
	}
	if id.Renewed {
		t = &config.ClientTLS{CA: t.CA, Cert: id.Cert, Key: id.Key}
		log.Info("upstream identity: the renewed one", "bridge", b.BridgeName(), "cert", id.Cert)
	}
	certs, err := broker.ReadCertChain(t.Cert)
	if err != nil {
		return nil, nil, fmt.Errorf("%s.tls.cert: %w", p, err)
	}
	leaf := certs[0]
	chain := make([][]byte, len(certs))
	for i, c := range certs {
		chain[i] = c.Raw
	}
	uri := t.Key
	if uri == "" {
		uri = "auto"
	}
	opts := []hw.Option{hw.WithStateDir(cfg.StateDir)}
	if uri == "auto" {
		c, err := hw.Auto(ctx, opts...)
		if err != nil {
			return nil, nil, fmt.Errorf("%s.tls.key: %w", p, err)
		}
		log.Info("upstream key: auto", "bridge", b.BridgeName(), "key", hw.Redact(c.URI), "reason", c.Reason, "exists", c.Exists)
		if !c.Exists {
			// No key yet, so the certificate on disk cannot be its. Not
			// created here: `edgegw check` runs this too (gateway.Preflight),
			// often as root, and a key root made is one the daemon cannot read.
			return nil, nil, fmt.Errorf("%s.tls.key: auto: there is no key yet (it will be %s), so %s cannot belong to it: make the key and its CSR as the daemon's user (sudo -u edgegw edgegw key csr --key auto --cn %s), have the upstream's CA sign it and install the certificate as %s",
				p, hw.Redact(c.URI), t.Cert, b.ClientID, t.Cert)
		}
		uri = c.URI
	}
	key, err := hw.Open(ctx, uri, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("%s.tls.key: %w", p, err)
	}
	if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(leaf.PublicKey) {
		_ = key.Close()
		return nil, nil, fmt.Errorf("%s.tls: the certificate %s (CN %q) does not belong to the key %s: install the certificate issued for this key (its CSR: `edgegw key csr --key %s --cn %s`)",
			p, t.Cert, leaf.Subject.CommonName, hw.Redact(uri), hw.Redact(t.Key), b.ClientID)
	}
	tc.Certificates = []tls.Certificate{{Certificate: chain, PrivateKey: key, Leaf: leaf}}
	log.Info("upstream identity", "bridge", b.BridgeName(), "cert", t.Cert, "cn", leaf.Subject.CommonName, "serial", leaf.SerialNumber.Text(16),
		"not_after", leaf.NotAfter.UTC().Format("2006-01-02"), "key", hw.Redact(uri))
	return tc, key, nil
}

// BridgeConfigFromConfig translates a bridge section (tc from BridgeTLS).
// What the file left out stays zero: the bridge and its profile own the
// defaults.
func BridgeConfigFromConfig(b *config.BridgeConfig, tc *tls.Config) (bridge.Config, error) {
	bc := bridge.Config{
		Name:           b.Name,
		ClientID:       b.ClientID,
		TLS:            tc,
		KeepAlive:      b.Keepalive.D(),
		ConnectTimeout: b.ConnectTimeout.D(),
		BackoffMin:     b.Backoff.Min.D(),
		BackoffMax:     b.Backoff.Max.D(),
		Inflight:       b.Inflight,
		DrainRate:      float64(b.DrainRate),
		UserProps:      bridge.UserProps{DeviceKey: b.UserProperties.Device, SeqKey: b.UserProperties.Seq},
		Username:       b.Username,
		PasswordFile:   b.PasswordFile,
		Envelope:       bridge.Envelope(b.Envelope),
		ALPN:           b.ALPN,
		MaxPayload:     int(b.MaxPayload.Bytes()),
		MaxRate:        float64(b.MaxRate),
	}
	name := b.BridgeName()
	if b.Profile != "" {
		pr, err := bridge.ParseProfile(b.Profile)
		if err != nil {
			return bridge.Config{}, fmt.Errorf("bridge %s: %w", name, err)
		}
		bc.Profile = pr
	}
	if b.Protocol != "" {
		pr, err := bridge.ParseProtocol(b.Protocol)
		if err != nil {
			return bridge.Config{}, fmt.Errorf("bridge %s: %w", name, err)
		}
		bc.Protocol = pr
	}
	if b.Proxy != "" {
		pu, err := url.Parse(b.Proxy)
		if err != nil {
			return bridge.Config{}, fmt.Errorf("bridge %s: proxy: %w", name, err)
		}
		bc.Proxy = pu
	}
	for i, u := range b.Upstreams {
		pu, err := url.Parse(u.URL)
		if err != nil {
			return bridge.Config{}, fmt.Errorf("bridge %s: upstreams[%d].url: %w", name, i, err)
		}
		bc.Upstreams = append(bc.Upstreams, bridge.Upstream{URL: pu, ServerName: u.ServerName, ALPN: u.ALPN})
	}
	routes, err := BridgeRoutesFromConfig(b.Routes)
	if err != nil {
		return bridge.Config{}, err
	}
	bc.Routes = routes
	return bc, nil
}

// CheckBridges is what `edgegw check` (and `edgegw run`, before it opens
// anything) asks package bridge about the config's bridges: together
// (bridge.CheckBridges: unique names, route names, client IDs per
// upstream), then each one's Check (the profile's defaults, settings and
// routes the cloud would refuse, naming its rule, and the password file's
// mode). Nothing is opened: the TLS identity is not loaded here
// (config.CheckFiles checks its files). It returns a *config.Error with the
// file:line of each bridge's section, or nil, and the bridges' warnings
// (bridge.Config.Warnings).
func CheckBridges(cfg *config.Config) (warnings []string, err error) {
	var cfgs []bridge.Config
	var fes []*config.FieldError
	add := func(p string, e error) {
		var ce *config.Error
		if errors.As(cfg.Errorf(p, "%v", e), &ce) {
			fes = append(fes, ce.Errors...)
		}
	}
	for i, b := range cfg.BridgeList() {
		p := cfg.BridgePath(i)
		var tc *tls.Config
		if b.TLS != nil {
			tc = &tls.Config{} // the identity's files are config.CheckFiles'
		}
		bc, err := BridgeConfigFromConfig(b, tc)
		if err != nil {
			add(p, err)
			continue
		}
		cfgs = append(cfgs, bc)
		if err := bc.Check(); err != nil {
			add(p, err)
			continue
		}
		warnings = append(warnings, bc.Warnings()...)
	}
	for _, e := range bridge.CheckBridges(cfgs) {
		add("bridges", e)
	}
	if w := strandedQueue(cfg); w != "" {
		warnings = append(warnings, w)
	}
	if len(fes) > 0 {
		return warnings, &config.Error{Errors: fes}
	}
	return warnings, nil
}

// strandedQueue warns when store.dir holds a queue (a site that had a
// bridge section, or a bridge named default) and no bridge is named
// default any more: nothing would send its messages.
func strandedQueue(cfg *config.Config) string {
	bs := cfg.BridgeList()
	if len(bs) == 0 {
		return ""
	}
	for _, b := range bs {
		if b.BridgeName() == config.DefaultBridgeName {
			return ""
		}
	}
	if ents, err := os.ReadDir(cfg.Store.Dir); err != nil || len(ents) == 0 {
		return ""
	}
	return fmt.Sprintf("store.dir %s holds the queue of the bridge named default (a bridge section's), but no bridge is named default: its messages are not sent; name the bridge that takes its place default", cfg.Store.Dir)
}

// routeMatcher answers the broker's OnPublish: which out routes, of every
// bridge, queue this publication. It matches with the routes each bridge
// compiled (bridge.Routes), so a route is compiled once, and adds what only
// the config knows (queue_qos0). It is immutable; a reload installs a new
// one.
type routeMatcher struct {
	rs   []*bridge.Routes     // one per bridge
	info map[string]matchInfo // out route name -> its answer
}

type matchInfo struct {
	names []string // []string{name}: returned as is, so one match costs no allocation
	qos0  bool     // queue_qos0
}

// newRouteMatcher matches with rs, compiled from routes (Bridge.Routes after
// bridge.New or SetRoutes).
func newRouteMatcher(rs *bridge.Routes, routes []config.Route) *routeMatcher {
	return newBridgesMatcher([]*bridge.Routes{rs}, routes)
}

// newBridgesMatcher matches with the routes of several bridges; routes are
// all of them, as configured (route names are unique across bridges).
func newBridgesMatcher(rs []*bridge.Routes, routes []config.Route) *routeMatcher {
	m := &routeMatcher{rs: rs, info: make(map[string]matchInfo, len(routes))}
	for _, r := range routes {
		if r.Direction == config.DirectionOut || r.Direction == config.DirectionBoth {
			n := r.ID()
			m.info[n] = matchInfo{names: []string{n}, qos0: r.QueueQoS0}
		}
	}
	return m
}

// OutboundRoutes implements RouteMatcher. The caller must not modify the
// result. Zero allocations unless more than one route matches.
func (m *routeMatcher) OutboundRoutes(topic string, qos byte) []string {
	var buf [4]bridge.Route
	matched := buf[:0]
	for _, rs := range m.rs {
		matched = rs.MatchOut(matched, topic)
	}
	var first []string
	var all []string
	for i := range matched {
		mi := m.info[matched[i].Name]
		if mi.names == nil || qos == 0 && !mi.qos0 {
			// (no names: a route of the gateway's own, e.g. shadow sync,
			// that takes no local publications)
			continue
		}
		switch {
		case first == nil:
			first = mi.names
		case all == nil:
			all = append(append(make([]string, 0, len(matched)), first...), mi.names[0])
		default:
			all = append(all, mi.names[0])
		}
	}
	if all != nil {
		return all
	}
	return first
}

// queueMux is the broker's Enqueuer when several bridges run: the route a
// message was matched to (store.Message.Route) names the queue of its
// bridge. The broker submits once per matching route, so a message of routes
// in two bridges is written to both queues, and its PUBACK waits for both
// commits. It is immutable; a reload installs a new one.
type queueMux map[string]*store.Queue // route name -> its bridge's queue

var (
	_ broker.Enqueuer  = queueMux(nil)
	_ broker.Submitter = queueMux(nil)
)

func (m queueMux) queue(route string) (*store.Queue, error) {
	q := m[route]
	if q == nil {
		return nil, fmt.Errorf("route %q belongs to no running bridge", route)
	}
	return q, nil
}

// Enqueue implements broker.Enqueuer.
func (m queueMux) Enqueue(ctx context.Context, msg store.Message) (uint64, error) {
	q, err := m.queue(msg.Route)
	if err != nil {
		return 0, err
	}
	return q.Enqueue(ctx, msg)
}

// Submit implements broker.Submitter (pipelined PUBACKs).
func (m queueMux) Submit(ctx context.Context, msg store.Message) (broker.Waiter, error) {
	q, err := m.queue(msg.Route)
	if err != nil {
		return nil, err
	}
	t, err := q.Submit(ctx, msg)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// setOutbound installs the outbound path of the links on the broker: with
// one bridge its queue itself (the path of a single-bridge gateway is
// unchanged), with several a queueMux.
func (u *upstream) setOutbound() {
	var all []config.Route
	rs := make([]*bridge.Routes, len(u.links))
	mux := queueMux{}
	for i, l := range u.links {
		all = append(all, l.routes...)
		rs[i] = l.bridge.Routes()
		for _, r := range l.routes {
			mux[r.ID()] = l.queue
		}
	}
	var q broker.Enqueuer = mux
	if len(u.links) == 1 {
		q = u.links[0].queue
	}
	u.broker.SetOutbound(q, newBridgesMatcher(rs, all))
}

// openUpstream opens, for every bridge of the config, its queue, the key of
// its identity and the bridge, and installs the outbound path on b. It
// returns nil, nil without a bridge. The bridges run only after start.
// onSync receives the duration of every queue's group-commit fsyncs (the
// metrics' histogram).
func (g *Gateway) openUpstream(ctx context.Context, b *broker.Broker, aud *audit.Log, onSync func(time.Duration)) (u *upstream, err error) {
	cfg := g.cfg
	bcs := cfg.BridgeList()
	if len(bcs) == 0 {
		return nil, nil
	}
	warnings, err := CheckBridges(cfg) // what `edgegw check` refuses
	if err != nil {
		return nil, err
	}
	log := g.log.With("component", "upstream")
	for _, w := range warnings {
		log.Warn(w)
	}
	u = &upstream{log: log, broker: b, failed: make(chan error, len(bcs))}
	defer func() {
		if err != nil {
			u.close()
			u = nil
		}
	}()
	if err := ensureQueueKey(ctx, cfg, g.log); err != nil {
		return nil, err
	}
	u.pub = broker.NewLocalPublisher(b)
	for i, bc := range bcs {
		l, err := g.openLink(ctx, u, bc, cfg.BridgePath(i), aud, onSync)
		if l != nil {
			u.links = append(u.links, l)
		}
		if err != nil {
			return nil, err
		}
	}
	u.setOutbound()
	return u, nil
}

// openLink opens one bridge's queue, key and bridge. On error it returns
// what it opened so far, for closing.
// The first bridge also carries shadow sync (its queue holds the shadows).
func (g *Gateway) openLink(ctx context.Context, u *upstream, bc *config.BridgeConfig, p string, aud *audit.Log, onSync func(time.Duration)) (*link, error) {
	name := bc.BridgeName()
	log := g.log.With("component", "upstream", "bridge", name)
	l := &link{name: name, routes: bc.Routes}
	so, err := StoreOptionsForBridge(ctx, g.cfg, bc)
	if err != nil {
		return nil, err
	}
	so.Logger = g.log.With("component", "queue", "bridge", name)
	so.OnDrop = func(route, reason string, n int) {
		aud.Record(audit.Event{Event: audit.EventDrop, Resource: "route/" + route, Reason: "queue: " + reason, Count: int64(n)})
	}
	so.OnSync = onSync
	if l.queue, err = store.Open(so); err != nil {
		return nil, fmt.Errorf("%s: opening queue %q: %w", p, so.Dir, err)
	}
	reportQueueOpen(aud, l.queue.OpenReport()) // queuereport.go
	var pub bridge.Publisher = u.pub
	carriesShadows := shadowBridge(g.cfg, bc)
	if carriesShadows {
		if u.shadow, err = g.openShadows(ctx, u.broker, l.queue, aud); err != nil {
			return l, err
		}
		pub = u.shadow.inbound(pub)
	}
	tc, key, err := BridgeTLS(ctx, g.cfg, bc, p, log)
	if err != nil {
		return l, err
	}
	l.key = key
	cfg, err := BridgeConfigFromConfig(bc, tc)
	if err != nil {
		return l, err
	}
	if carriesShadows {
		cfg.Routes = append(cfg.Routes, shadowRoutes(g.cfg)...)
	}
	cfg.OnDeadLetter = func(d bridge.DeadLetter) {
		aud.Record(audit.Event{Event: audit.EventDeadLetter, Device: d.Device, Resource: "topic/" + d.Topic,
			Reason: fmt.Sprintf("bridge %s route %s seq %d: %s", name, d.Route, d.Seq, d.Reason)})
	}
	if l.bridge, err = bridge.New(cfg, l.queue, pub, g.log); err != nil {
		return l, err
	}
	if err := g.openRenewer(ctx, l, bc, tc, key, aud); err != nil {
		return l, err
	}
	log.Info("upstream bridge ready", "upstreams", len(cfg.Upstreams), "client_id", cfg.ClientID,
		"routes", len(cfg.Routes), "queue", so.Dir, "encrypted", so.EncryptionKey != nil)
	return l, nil
}

// shadowBridge reports whether b is the bridge that carries shadow sync: the
// first of the config's bridges.
func shadowBridge(cfg *config.Config, b *config.BridgeConfig) bool {
	bl := cfg.BridgeList()
	return len(bl) > 0 && bl[0] == b
}

// sources are the bridges and their queues for the observer.
func (u *upstream) sources() []observe.BridgeSource {
	out := make([]observe.BridgeSource, len(u.links))
	for i, l := range u.links {
		out[i] = observe.BridgeSource{Name: l.name, Queue: l.queue, Bridge: l.bridge}
		if l.renewer != nil {
			out[i].Renewer = l.renewer
		}
	}
	return out
}

// start runs the bridges until close.
func (u *upstream) start() {
	if u == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	u.cancel = cancel
	for _, l := range u.links {
		u.wg.Add(1)
		go func() {
			defer u.wg.Done()
			if err := l.bridge.Run(ctx); err != nil {
				u.log.Error("bridge stopped", "bridge", l.name, "err", err)
				u.failed <- fmt.Errorf("bridge %s: %w", l.name, err)
			}
		}()
	}
	if len(u.links) > 0 {
		u.shadow.start(u.links[0].bridge)
	}
	u.startRenewers(ctx) // upstream_renew.go
}

// failedCh reports a bridge that stopped by itself (nil channel: never).
func (u *upstream) failedCh() <-chan error {
	if u == nil {
		return nil
	}
	return u.failed
}

// close stops the bridges, then closes the queues and the keys. The broker
// must already be closed (no more enqueues).
func (u *upstream) close() {
	if u == nil {
		return
	}
	if u.broker != nil {
		u.broker.SetOutbound(nil, nil)
	}
	if u.pub != nil {
		u.pub.Close()
	}
	if u.cancel != nil {
		u.cancel()
	}
	u.wg.Wait()
	u.shadow.close() // before its queue
	for _, l := range u.links {
		if l.queue != nil {
			if err := l.queue.Close(); err != nil {
				u.log.Error("closing queue", "bridge", l.name, "err", err)
			}
		}
		if l.key != nil {
			_ = l.key.Close()
		}
		if l.renewer != nil {
			_ = l.renewer.Close()
		}
	}
}

// reloadRoutes applies nc's bridge routes live when the bridges are the
// same ones (names, in order) and, in each, only the routes changed: queue
// limits (store.SetRoutes), bridge routes and upstream subscriptions
// (bridge.SetRoutes), and the OnPublish matcher. It returns nc with the
// running config's routes put back, so that nonLiveChanges does not report
// what was applied; on error nc is returned as is and nothing was changed.
func (g *Gateway) reloadRoutes(nc *config.Config) (*config.Config, error) {
	if g.run == nil || g.run.up == nil {
		return nc, nil
	}
	u := g.run.up
	u.mu.Lock()
	defer u.mu.Unlock()
	olds, news := g.cfg.BridgeList(), nc.BridgeList()
	if len(olds) != len(news) || len(news) != len(u.links) || (g.cfg.Bridge == nil) != (nc.Bridge == nil) {
		return nc, nil // not live: nonLiveChanges reports it
	}
	for i := range news {
		oldRest, newRest := *olds[i], *news[i]
		oldRest.Routes, newRest.Routes = nil, nil
		oldRest.TLS, newRest.TLS = liveTLS(oldRest.TLS), liveTLS(newRest.TLS)
		if !reflect.DeepEqual(oldRest, newRest) {
			return nc, nil
		}
	}
	g.reloadIdentities(nc) // tls.cert and tls.key apply live (upstream_renew.go)
	// same is nc with the running routes put back (a copy: nc is the
	// caller's).
	same := func() *config.Config {
		c := *nc
		if nc.Bridge != nil {
			b := *nc.Bridge
			b.Routes, b.TLS = g.cfg.Bridge.Routes, g.cfg.Bridge.TLS
			c.Bridge = &b
		} else {
			c.Bridges = append([]config.BridgeConfig(nil), nc.Bridges...)
			for i := range c.Bridges {
				c.Bridges[i].Routes, c.Bridges[i].TLS = g.cfg.Bridges[i].Routes, g.cfg.Bridges[i].TLS
			}
		}
		return &c
	}
	changed := false
	brs := make([][]bridge.Route, len(news))
	for i, nb := range news {
		if reflect.DeepEqual(u.links[i].routes, nb.Routes) {
			continue
		}
		changed = true
		var err error
		if brs[i], err = BridgeRoutesFromConfig(nb.Routes); err != nil {
			return nc, err
		}
		if i == 0 {
			// The shadows section needs a restart: its routes stay.
			brs[i] = append(brs[i], shadowRoutes(g.cfg)...)
		}
	}
	if !changed {
		return same(), nil
	}
	// Check every bridge's new routes (each against its cloud, names across
	// bridges) before changing any: all or nothing.
	if _, err := CheckBridges(nc); err != nil {
		return nc, err
	}
	for i, l := range u.links {
		if brs[i] == nil {
			continue
		}
		if err := l.bridge.SetRoutes(brs[i]); err != nil {
			return nc, fmt.Errorf("%s.routes: %w", nc.BridgePath(i), err)
		}
		limits := RouteLimitsFromConfig(news[i].Routes)
		if i == 0 {
			limits = append(limits, shadowRouteLimits(g.cfg)...)
		}
		l.queue.SetRoutes(limits)
		l.routes = news[i].Routes
		u.log.Info("routes reloaded", "bridge", l.name, "routes", len(brs[i]))
	}
	u.setOutbound()
	return same(), nil
}
