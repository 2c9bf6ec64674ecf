package gateway

// The calls the wiring (run.go, upstream.go) makes into the rooms that own
// the jobs: the shadows (gateway/shadowrun) and the local state
// (gateway/localstate: the store without a bridge, the offline sessions,
// the queue-open audit, presence).

import (
	"context"
	"time"

	"github.com/edgegw/edgegw/bridge"
	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/gateway/broker"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/localstate"
	"github.com/edgegw/edgegw/gateway/shadowrun"
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

func (s *shadows) inbound(next bridge.Publisher) bridge.Publisher {
	if s == nil {
		return next
	}
	return s.Inbound(next)
}

func (s *shadows) start(br *bridge.Bridge) {
	if s != nil && br != nil {
		s.Start(br)
	}
}

func (s *shadows) close() {
	if s != nil {
		s.Close()
	}
}

// shadows returns the shadows opened with the bridge's queue (nil: none).
func (u *upstream) shadows() *shadows {
	if u == nil {
		return nil
	}
	return u.shadow
}

func shadowRoutes(cfg *config.Config) []bridge.Route { return shadowrun.Routes(cfg) }

func shadowRouteLimits(cfg *config.Config) []store.RouteLimits { return shadowrun.RouteLimits(cfg) }

// reportQueueOpen audits what store.Open repaired or salvaged.
func reportQueueOpen(aud *audit.Log, r store.OpenReport) { localstate.ReportQueueOpen(aud, r) }

// openLocalStore opens the store at store.dir when no bridge does: it holds
// the offline sessions and the shadows.
func (g *Gateway) openLocalStore(ctx context.Context, aud *audit.Log, onSync func(time.Duration)) (*store.Queue, error) {
	if err := ensureQueueKey(ctx, g.cfg, g.log); err != nil {
		return nil, err
	}
	so, err := StoreOptionsFromConfig(ctx, g.cfg)
	if err != nil {
		return nil, err
	}
	so.Logger = g.log.With("component", "queue")
	so.OnSync = onSync
	return localstate.OpenStore(so, aud)
}

// firstQueue is the queue of the first bridge (nil: no bridge).
func (u *upstream) firstQueue() *store.Queue {
	if u == nil || len(u.links) == 0 {
		return nil
	}
	return u.links[0].queue
}
