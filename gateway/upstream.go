package gateway

// The durable path and the upstream link, as `edgegw run` wires them:
//
//	config store + bridge.routes ──> store.Options ──> *store.Queue
//	config bridge.tls ──> hw key (file/TPM/HSM/auto) + CA pool ──> *tls.Config
//	config bridge ──> bridge.Config ──> *bridge.Bridge (reads the queue, publishes inbound locally)
//	routes, compiled once by the bridge (Bridge.Routes) ──> routeMatcher (broker.RouteMatcher) ──> Broker.SetOutbound(queue, matcher)
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

	"github.com/edgegw/edgegw/bridge"
	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/gateway/broker"
	"github.com/edgegw/edgegw/gateway/clock"
	"github.com/edgegw/edgegw/gateway/config"
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

// upstream is what Run started for the bridge section: queue, bridge, the
// gateway's key and the goroutine running the bridge.
type upstream struct {
	log    *slog.Logger
	queue  *store.Queue
	bridge *bridge.Bridge
	key    hw.Key
	broker *broker.Broker
	pub    *broker.LocalPublisher

	mu     sync.Mutex     // serialises route reloads
	routes []config.Route // as configured and applied

	cancel context.CancelFunc
	done   chan struct{}
	failed chan error // buffered: bridge.Run stopped with a queue error
}

// Queue returns the running durable queue (nil before Run, or without a
// bridge section).
func (g *Gateway) Queue() *store.Queue {
	if g.run == nil || g.run.up == nil {
		return nil
	}
	return g.run.up.queue
}

// Bridge returns the running upstream bridge (nil before Run, or without a
// bridge section).
func (g *Gateway) Bridge() *bridge.Bridge {
	if g.run == nil || g.run.up == nil {
		return nil
	}
	return g.run.up.bridge
}

// StoreOptionsFromConfig translates the store section and the out routes
// into queue options. The encryption key is read through hw.OpenSecret
// (file: or tpm-sealed:, created on first use in the TPM case).
func StoreOptionsFromConfig(ctx context.Context, cfg *config.Config) (store.Options, error) {
	o := store.Options{
		Dir:          cfg.Store.Dir,
		MaxBytes:     cfg.Store.MaxBytes.Bytes(),
		MinFreeBytes: uint64(max(cfg.Store.MinFree.Bytes(), 0)),
		Clock:        clock.Process().AgeNow,
	}
	if cfg.Bridge != nil {
		o.Routes = RouteLimitsFromConfig(cfg.Bridge.Routes)
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
// start: only when the queue directory does not exist yet or is empty, so a
// lost key file next to an existing queue stays an error (a fresh key could
// not read it) instead of being silently replaced. The edgegw queue commands
// never create a key; they use StoreOptionsFromConfig alone.
func ensureQueueKey(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	uri := cfg.Store.EncryptionKey
	if uri == "" {
		return nil
	}
	if ents, err := os.ReadDir(cfg.Store.Dir); err == nil && len(ents) > 0 {
		return nil
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store.dir: %w", err)
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

// UpstreamTLS builds the client TLS config towards the upstream: the
// gateway's certificate (chain) from bridge.tls.cert with its private key
// behind the key URI (file, TPM, PKCS#11, or "auto": TPM when one answers,
// else a 0600 file in state_dir; the choice and its reason are logged), the
// upstream CA bundle (system roots when bridge.tls.ca is empty), TLS 1.2 at
// least, and the clock guard for certificate validity. ServerName is set per
// upstream by the bridge. The returned key must be closed by the caller.
func UpstreamTLS(ctx context.Context, cfg *config.Config, log *slog.Logger) (*tls.Config, hw.Key, error) {
	b := cfg.Bridge
	if b == nil || b.TLS == nil {
		return nil, nil, nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := b.TLS
	certs, err := broker.ReadCertChain(t.Cert)
	if err != nil {
		return nil, nil, fmt.Errorf("bridge.tls.cert: %w", err)
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
			return nil, nil, fmt.Errorf("bridge.tls.key: %w", err)
		}
		log.Info("upstream key: auto", "key", hw.Redact(c.URI), "reason", c.Reason, "exists", c.Exists)
		if !c.Exists {
			// A new key cannot match the certificate on disk: create it
			// now so its CSR can be made, and say what to do.
			k, err := hw.Open(ctx, "auto", opts...)
			if err != nil {
				return nil, nil, fmt.Errorf("bridge.tls.key: %w", err)
			}
			_ = k.Close()
			return nil, nil, fmt.Errorf("bridge.tls.key: auto created a new key at %s; %s does not belong to it: make a CSR with `edgegw key csr --key auto --cn %s`, have the upstream's CA sign it and install the certificate as %s",
				hw.Redact(c.URI), t.Cert, b.ClientID, t.Cert)
		}
		uri = c.URI
	}
	key, err := hw.Open(ctx, uri, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("bridge.tls.key: %w", err)
	}
	if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(leaf.PublicKey) {
		_ = key.Close()
		return nil, nil, fmt.Errorf("bridge.tls: the certificate %s (CN %q) does not belong to the key %s: install the certificate issued for this key (its CSR: `edgegw key csr --key %s --cn %s`)",
			t.Cert, leaf.Subject.CommonName, hw.Redact(uri), hw.Redact(t.Key), b.ClientID)
	}
	tc := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{{Certificate: chain, PrivateKey: key, Leaf: leaf}},
		Time:         clock.Process().Now,
	}
	if t.CA != "" {
		data, err := os.ReadFile(t.CA)
		if err != nil {
			_ = key.Close()
			return nil, nil, fmt.Errorf("bridge.tls.ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(data) {
			_ = key.Close()
			return nil, nil, fmt.Errorf("bridge.tls.ca: %s holds no PEM certificate", t.CA)
		}
		tc.RootCAs = pool
	}
	log.Info("upstream identity", "cert", t.Cert, "cn", leaf.Subject.CommonName, "serial", leaf.SerialNumber.Text(16),
		"not_after", leaf.NotAfter.UTC().Format("2006-01-02"), "key", hw.Redact(uri))
	return tc, key, nil
}

// BridgeConfigFromConfig translates the bridge section (tc from UpstreamTLS).
func BridgeConfigFromConfig(b *config.BridgeConfig, tc *tls.Config) (bridge.Config, error) {
	bc := bridge.Config{
		ClientID:       b.ClientID,
		TLS:            tc,
		KeepAlive:      b.Keepalive.D(),
		ConnectTimeout: b.ConnectTimeout.D(),
		BackoffMin:     b.Backoff.Min.D(),
		BackoffMax:     b.Backoff.Max.D(),
		Inflight:       b.Inflight,
		DrainRate:      float64(b.DrainRate),
		UserProps:      bridge.UserProps{DeviceKey: b.UserProperties.Device, SeqKey: b.UserProperties.Seq},
	}
	for i, u := range b.Upstreams {
		pu, err := url.Parse(u.URL)
		if err != nil {
			return bridge.Config{}, fmt.Errorf("bridge.upstreams[%d].url: %w", i, err)
		}
		bc.Upstreams = append(bc.Upstreams, bridge.Upstream{URL: pu, ServerName: u.ServerName})
	}
	routes, err := BridgeRoutesFromConfig(b.Routes)
	if err != nil {
		return bridge.Config{}, err
	}
	bc.Routes = routes
	return bc, nil
}

// routeMatcher answers the broker's OnPublish: which out routes queue this
// publication. It matches with the routes the bridge compiled
// (bridge.Routes), so a route is compiled once, and adds what only the
// config knows (queue_qos0). It is immutable; a reload installs a new one.
type routeMatcher struct {
	rs   *bridge.Routes
	info map[string]matchInfo // out route name -> its answer
}

type matchInfo struct {
	names []string // []string{name}: returned as is, so one match costs no allocation
	qos0  bool     // queue_qos0
}

// newRouteMatcher matches with rs, compiled from routes (Bridge.Routes after
// bridge.New or SetRoutes).
func newRouteMatcher(rs *bridge.Routes, routes []config.Route) *routeMatcher {
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
	matched := m.rs.MatchOut(buf[:0], topic)
	var first []string
	var all []string
	for i := range matched {
		mi := m.info[matched[i].Name]
		if qos == 0 && !mi.qos0 {
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

// openUpstream opens the queue, the gateway's key and the bridge for the
// bridge section and installs the outbound path on b. It returns nil, nil
// without a bridge section. The bridge runs only after start.
func (g *Gateway) openUpstream(ctx context.Context, b *broker.Broker, aud *audit.Log) (u *upstream, err error) {
	cfg := g.cfg
	if cfg.Bridge == nil {
		return nil, nil
	}
	log := g.log.With("component", "upstream")
	u = &upstream{log: log, broker: b, routes: cfg.Bridge.Routes, done: make(chan struct{}), failed: make(chan error, 1)}
	defer func() {
		if err != nil {
			u.close()
			u = nil
		}
	}()
	if err := ensureQueueKey(ctx, cfg, g.log); err != nil {
		return nil, err
	}
	so, err := StoreOptionsFromConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	so.Logger = g.log.With("component", "queue")
	so.OnDrop = func(route, reason string, n int) {
		aud.Record(audit.Event{Event: audit.EventDrop, Resource: "route/" + route, Reason: "queue: " + reason, Count: int64(n)})
	}
	if u.queue, err = store.Open(so); err != nil {
		return nil, fmt.Errorf("opening queue %q: %w", so.Dir, err)
	}
	reportQueueOpen(aud, u.queue.OpenReport())
	tc, key, err := UpstreamTLS(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	u.key = key
	bc, err := BridgeConfigFromConfig(cfg.Bridge, tc)
	if err != nil {
		return nil, err
	}
	bc.OnDeadLetter = func(d bridge.DeadLetter) {
		aud.Record(audit.Event{Event: audit.EventDeadLetter, Device: d.Device, Resource: "topic/" + d.Topic,
			Reason: fmt.Sprintf("route %s seq %d: %s", d.Route, d.Seq, d.Reason)})
	}
	u.pub = broker.NewLocalPublisher(b)
	if u.bridge, err = bridge.New(bc, u.queue, u.pub, g.log); err != nil {
		return nil, err
	}
	b.SetOutbound(u.queue, newRouteMatcher(u.bridge.Routes(), cfg.Bridge.Routes))
	log.Info("upstream bridge ready", "upstreams", len(bc.Upstreams), "client_id", bc.ClientID,
		"routes", len(bc.Routes), "queue", so.Dir, "encrypted", so.EncryptionKey != nil)
	return u, nil
}

// start runs the bridge until close.
func (u *upstream) start() {
	if u == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	u.cancel = cancel
	go func() {
		defer close(u.done)
		if err := u.bridge.Run(ctx); err != nil {
			u.log.Error("bridge stopped", "err", err)
			u.failed <- err
		}
	}()
}

// failedCh reports a bridge that stopped by itself (nil channel: never).
func (u *upstream) failedCh() <-chan error {
	if u == nil {
		return nil
	}
	return u.failed
}

// close stops the bridge, then closes the queue and the key. The broker
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
		<-u.done
	}
	if u.queue != nil {
		if err := u.queue.Close(); err != nil {
			u.log.Error("closing queue", "err", err)
		}
	}
	if u.key != nil {
		_ = u.key.Close()
	}
}

// reloadRoutes applies nc's bridge routes live when, in the bridge section,
// only the routes changed: queue limits (store.SetRoutes), bridge routes and
// upstream subscriptions (bridge.SetRoutes), and the OnPublish matcher. It
// returns nc with the running config's routes put back, so that
// nonLiveChanges does not report what was applied; on error nc is returned
// as is and nothing was changed.
func (g *Gateway) reloadRoutes(nc *config.Config) (*config.Config, error) {
	if g.run == nil || g.run.up == nil || nc.Bridge == nil || g.cfg.Bridge == nil {
		return nc, nil
	}
	u := g.run.up
	u.mu.Lock()
	defer u.mu.Unlock()
	oldRest, newRest := *g.cfg.Bridge, *nc.Bridge
	oldRest.Routes, newRest.Routes = nil, nil
	if !reflect.DeepEqual(oldRest, newRest) {
		return nc, nil // not live: nonLiveChanges reports "bridge"
	}
	same := func() *config.Config {
		c, b := *nc, *nc.Bridge
		b.Routes = g.cfg.Bridge.Routes
		c.Bridge = &b
		return &c
	}
	if reflect.DeepEqual(u.routes, nc.Bridge.Routes) {
		return same(), nil
	}
	brs, err := BridgeRoutesFromConfig(nc.Bridge.Routes)
	if err != nil {
		return nc, err
	}
	if err := u.bridge.SetRoutes(brs); err != nil { // compiles them, or changes nothing
		return nc, fmt.Errorf("bridge.routes: %w", err)
	}
	u.queue.SetRoutes(RouteLimitsFromConfig(nc.Bridge.Routes))
	u.broker.SetOutbound(u.queue, newRouteMatcher(u.bridge.Routes(), nc.Bridge.Routes))
	u.routes = nc.Bridge.Routes
	u.log.Info("routes reloaded", "routes", len(brs))
	return same(), nil
}
