package uplink

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/edgegw/edgegw/bridge"
	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/gateway/broker"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/localstate"
	"github.com/edgegw/edgegw/gateway/observe"
	"github.com/edgegw/edgegw/gateway/renew"
	"github.com/edgegw/edgegw/gateway/shadowrun"
	"github.com/edgegw/edgegw/hw"
	"github.com/edgegw/edgegw/store"
)

// Broker is what the links need of the local broker: the outbound path
// (queues and route matcher) and, for the shadows the first bridge
// carries, shadowrun's needs. *broker.Broker satisfies it.
type Broker interface {
	shadowrun.Broker
	SetOutbound(q broker.Enqueuer, routes broker.RouteMatcher)
}

// Publisher is the bridges' way into the local broker, closed when the
// links close. *broker.LocalPublisher satisfies it.
type Publisher interface {
	bridge.Publisher
	Close()
}

// Auditor records the links' events (drops, dead letters, renewals, what
// opening a queue repaired). *audit.Log satisfies it.
type Auditor interface{ Record(audit.Event) }

var (
	_ Broker    = (*broker.Broker)(nil)
	_ Publisher = (*broker.LocalPublisher)(nil)
	_ Auditor   = (*audit.Log)(nil)
)

// Options is what Open needs.
type Options struct {
	Config *config.Config // validated (config.Check)
	Log    *slog.Logger   // the gateway's; each part adds its component
	Broker Broker
	// NewPublisher makes the local publisher the bridges share (once, when
	// there is a bridge).
	NewPublisher func() Publisher
	Audit        Auditor
	// OnSync receives the duration of every queue's group-commit fsyncs
	// (the metrics' histogram); may be nil.
	OnSync func(time.Duration)
}

// Uplink is what Run started for the bridges: one link per bridge, the
// local publisher they share, and the goroutines running the bridges.
// Its methods are safe on nil (no bridge).
type Uplink struct {
	cfg    *config.Config // the config the links were opened with
	log    *slog.Logger   // the gateway's
	ulog   *slog.Logger   // component upstream
	broker Broker
	pub    Publisher
	links  []*link
	shadow *shadowrun.Shadows // the shadows section, when set; synced through the first bridge

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
	// renewer renews the identity (tls.renew; renew.go).
	renewer *renew.Renewer
}

// Open opens, for every bridge of the config, its queue, the key of its
// identity and the bridge, and installs the outbound path on the broker.
// It returns nil, nil without a bridge. The bridges run only after Start.
func Open(ctx context.Context, o Options) (u *Uplink, err error) {
	cfg := o.Config
	bcs := cfg.BridgeList()
	if len(bcs) == 0 {
		return nil, nil
	}
	warnings, err := CheckBridges(cfg) // what `edgegw check` refuses
	if err != nil {
		return nil, err
	}
	log := o.Log.With("component", "upstream")
	for _, w := range warnings {
		log.Warn(w)
	}
	u = &Uplink{cfg: cfg, log: o.Log, ulog: log, broker: o.Broker, failed: make(chan error, len(bcs))}
	defer func() {
		if err != nil {
			u.Close()
			u = nil
		}
	}()
	if err := EnsureQueueKey(ctx, cfg, o.Log); err != nil {
		return nil, err
	}
	u.pub = o.NewPublisher()
	for i, bc := range bcs {
		l, err := u.openLink(ctx, bc, cfg.BridgePath(i), o.Audit, o.OnSync)
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
func (u *Uplink) openLink(ctx context.Context, bc *config.BridgeConfig, p string, aud Auditor, onSync func(time.Duration)) (*link, error) {
	name := bc.BridgeName()
	log := u.log.With("component", "upstream", "bridge", name)
	l := &link{name: name, routes: bc.Routes}
	so, err := StoreOptionsForBridge(ctx, u.cfg, bc)
	if err != nil {
		return nil, err
	}
	so.Logger = u.log.With("component", "queue", "bridge", name)
	so.OnDrop = func(route, reason string, n int) {
		aud.Record(audit.Event{Event: audit.EventDrop, Resource: "route/" + route, Reason: "queue: " + reason, Count: int64(n)})
	}
	so.OnSync = onSync
	if l.queue, err = store.Open(so); err != nil {
		return nil, fmt.Errorf("%s: opening queue %q: %w", p, so.Dir, err)
	}
	localstate.ReportQueueOpen(aud, l.queue.OpenReport()) // what opening repaired, audited
	var pub bridge.Publisher = u.pub
	carriesShadows := shadowBridge(u.cfg, bc)
	if carriesShadows {
		if u.shadow, err = shadowrun.Open(ctx, u.cfg, u.broker, l.queue, aud, u.log); err != nil {
			u.shadow = nil
			return l, err
		}
		if u.shadow != nil {
			pub = u.shadow.Inbound(pub)
		}
	}
	tc, key, err := BridgeTLS(ctx, u.cfg, bc, p, log)
	if err != nil {
		return l, err
	}
	l.key = key
	cfg, err := BridgeConfigFromConfig(bc, tc)
	if err != nil {
		return l, err
	}
	if carriesShadows {
		cfg.Routes = append(cfg.Routes, shadowrun.Routes(u.cfg)...)
	}
	cfg.OnDeadLetter = func(d bridge.DeadLetter) {
		aud.Record(audit.Event{Event: audit.EventDeadLetter, Device: d.Device, Resource: "topic/" + d.Topic,
			Reason: fmt.Sprintf("bridge %s route %s seq %d: %s", name, d.Route, d.Seq, d.Reason)})
	}
	if l.bridge, err = bridge.New(cfg, l.queue, pub, u.log); err != nil {
		return l, err
	}
	if err := u.openRenewer(ctx, l, bc, tc, key, aud); err != nil { // renew.go
		return l, err
	}
	log.Info("upstream bridge ready", "upstreams", len(cfg.Upstreams), "client_id", cfg.ClientID,
		"routes", len(cfg.Routes), "queue", so.Dir, "encrypted", so.EncryptionKey != nil)
	return l, nil
}

// setOutbound installs the outbound path of the links on the broker: with
// one bridge its queue itself (the path of a single-bridge gateway is
// unchanged), with several a queueMux.
func (u *Uplink) setOutbound() {
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

// Sources are the bridges and their queues for the observer.
func (u *Uplink) Sources() []observe.BridgeSource {
	if u == nil {
		return nil
	}
	out := make([]observe.BridgeSource, len(u.links))
	for i, l := range u.links {
		out[i] = observe.BridgeSource{Name: l.name, Queue: l.queue, Bridge: l.bridge}
		if l.renewer != nil {
			out[i].Renewer = l.renewer
		}
	}
	return out
}

// Start runs the bridges (and the shadows' sync, and the renewers) until
// Close.
func (u *Uplink) Start() {
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
				u.ulog.Error("bridge stopped", "bridge", l.name, "err", err)
				u.failed <- fmt.Errorf("bridge %s: %w", l.name, err)
			}
		}()
	}
	if len(u.links) > 0 && u.shadow != nil && u.links[0].bridge != nil {
		u.shadow.Start(u.links[0].bridge)
	}
	u.startRenewers(ctx) // renew.go
}

// Failed reports a bridge that stopped by itself (nil channel: never).
func (u *Uplink) Failed() <-chan error {
	if u == nil {
		return nil
	}
	return u.failed
}

// Close stops the bridges, then closes the queues and the keys. The broker
// must already be closed (no more enqueues).
func (u *Uplink) Close() {
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
	if u.shadow != nil {
		u.shadow.Close() // before its queue
	}
	for _, l := range u.links {
		if l.queue != nil {
			if err := l.queue.Close(); err != nil {
				u.ulog.Error("closing queue", "bridge", l.name, "err", err)
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

// Shadows returns the shadows opened with the first bridge's queue (nil:
// none).
func (u *Uplink) Shadows() *shadowrun.Shadows {
	if u == nil {
		return nil
	}
	return u.shadow
}

// Queue returns the first bridge's durable queue (nil: no bridge).
func (u *Uplink) Queue() *store.Queue {
	if u == nil || len(u.links) == 0 {
		return nil
	}
	return u.links[0].queue
}

// Bridge returns the first bridge (nil: no bridge).
func (u *Uplink) Bridge() *bridge.Bridge {
	if u == nil || len(u.links) == 0 {
		return nil
	}
	return u.links[0].bridge
}

// Bridges returns the bridges in config order.
func (u *Uplink) Bridges() []*bridge.Bridge {
	if u == nil {
		return nil
	}
	out := make([]*bridge.Bridge, len(u.links))
	for i, l := range u.links {
		out[i] = l.bridge
	}
	return out
}
