package gateway

import (
	"context"

	"github.com/edgegw/edgegw/bridge"
	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/gateway/broker"
	"github.com/edgegw/edgegw/gateway/config"
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
