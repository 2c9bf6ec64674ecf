package gateway

// The calls the wiring (run.go) makes into the rooms that own the jobs: the
// upstream links (gateway/uplink), the shadows (gateway/shadowrun) and the
// local state (gateway/localstate: the store without a bridge, the offline
// sessions, presence).

import (
	"context"
	"time"

	"github.com/edgegw/edgegw/bridge"
	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/gateway/broker"
	"github.com/edgegw/edgegw/gateway/localstate"
	"github.com/edgegw/edgegw/gateway/renew"
	"github.com/edgegw/edgegw/gateway/shadowrun"
	"github.com/edgegw/edgegw/gateway/uplink"
	"github.com/edgegw/edgegw/store"
)

// shadows is what Run started for the shadows section (gateway/shadowrun);
// its nil-safe methods are the calls the wiring makes.
type shadows struct{ *shadowrun.Shadows }

// openShadows opens the shadows on q's database and installs them on b
// (nil, nil without a shadows section).
func (g *Gateway) openShadows(ctx context.Context, b *broker.Broker, q *store.Queue, aud *audit.Log) (*shadows, error) {
	s, err := shadowrun.Open(ctx, g.cfg, b, q, aud, g.log)
	if s == nil || err != nil {
		return nil, err
	}
	return &shadows{s}, nil
}

func (s *shadows) close() {
	if s != nil {
		s.Close()
	}
}

// wrapShadows is s as the wiring's nil-safe shadows (nil: none).
func wrapShadows(s *shadowrun.Shadows) *shadows {
	if s == nil {
		return nil
	}
	return &shadows{s}
}

// openLocalStore opens the store at store.dir when no bridge does: it holds
// the offline sessions and the shadows.
func (g *Gateway) openLocalStore(ctx context.Context, aud *audit.Log, onSync func(time.Duration)) (*store.Queue, error) {
	if err := uplink.EnsureQueueKey(ctx, g.cfg, g.log); err != nil {
		return nil, err
	}
	so, err := uplink.StoreOptionsFromConfig(ctx, g.cfg)
	if err != nil {
		return nil, err
	}
	so.Logger = g.log.With("component", "queue")
	so.OnSync = onSync
	return localstate.OpenStore(so, aud)
}

// openUpstream opens the bridges' queues, keys and bridges and installs
// the outbound path on b (gateway/uplink; nil, nil without a bridge).
// onSync receives every queue's group-commit fsync durations.
func (g *Gateway) openUpstream(ctx context.Context, b *broker.Broker, aud *audit.Log, onSync func(time.Duration)) (*uplink.Uplink, error) {
	return uplink.Open(ctx, uplink.Options{
		Config: g.cfg, Log: g.log, Broker: b, Audit: aud, OnSync: onSync,
		NewPublisher: func() uplink.Publisher { return broker.NewLocalPublisher(b) },
	})
}

// up is the running links (nil: not running, or no bridge).
func (g *Gateway) up() *uplink.Uplink {
	if g.run == nil {
		return nil
	}
	return g.run.up
}

// Queue returns the first bridge's running durable queue (nil before Run,
// or without a bridge).
func (g *Gateway) Queue() *store.Queue { return g.up().Queue() }

// Bridge returns the first running upstream bridge (nil before Run, or
// without a bridge).
func (g *Gateway) Bridge() *bridge.Bridge { return g.up().Bridge() }

// Bridges returns the running bridges in config order.
func (g *Gateway) Bridges() []*bridge.Bridge { return g.up().Bridges() }

// Renewals returns the state of every bridge whose certificate renews
// itself (tls.renew), in config order.
func (g *Gateway) Renewals() []renew.State { return g.up().Renewals() }

// ErrNoRenewal: the bridge has no tls.renew.
var ErrNoRenewal = uplink.ErrNoRenewal

// RenewIdentity renews bridge's certificate now (`edgegw key rotate`); ""
// is the first bridge.
func (g *Gateway) RenewIdentity(ctx context.Context, bridgeName string) error {
	return g.up().RenewIdentity(ctx, bridgeName)
}
