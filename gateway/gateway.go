// Package gateway is the composition root of edgegw: it turns a validated
// config.Config into a running local broker (gateway/broker), durable queues
// and upstream bridges (gateway/uplink) and observability (metrics, /healthz,
// admin socket), and reloads them on SIGHUP. It holds only the wiring: New,
// Run, Reload and stop, and the calls into the rooms that own the jobs:
// gateway/brokerconf (config -> broker options, rules, authorizers),
// gateway/uplink (the queues, the bridges, their TLS, the route matcher,
// live route and identity reload, renewal), gateway/enrolrun (the
// enrolment service and its sweeper), gateway/localstate (the store without
// a bridge, offline sessions, the queue-open audit, presence),
// gateway/shadowrun (the shadows and their sync). Only cmd/edgegw imports
// it; it must not import mochi or prometheus itself (gateway/broker and the
// observer own those).
package gateway

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/edgegw/edgegw/gateway/broker"
	"github.com/edgegw/edgegw/gateway/config"
)

// Gateway runs the components a Config describes.
type Gateway struct {
	cfg *config.Config
	log *slog.Logger

	// run is what Run started (see run.go); nil when not running.
	run *running
	lc  Lifecycle // SetLifecycle (lifecycle.go)
}

// New prepares a gateway for cfg, which must come from config.Load or config.Check.
// It starts nothing; Run does.
func New(cfg *config.Config, logger *slog.Logger) (*Gateway, error) {
	if cfg == nil {
		return nil, errors.New("gateway: nil config")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// Every component derives its logger from this one with its own
	// "component" (broker, mochi, audit, queue...): broker.WithComponents makes it
	// replace "gateway" instead of repeating the key.
	return &Gateway{cfg: cfg, log: broker.WithComponents(logger).With("component", "gateway")}, nil
}

// Run runs the gateway until ctx ends, then shuts down and returns nil; an
// error means it could not start or failed while running.
func (g *Gateway) Run(ctx context.Context) error {
	// SIGHUP is caught from here on, before READY: systemd may send it
	// (systemctl reload) as soon as the unit is up, and a SIGHUP nobody
	// has asked for ends the process. One that comes during the start is
	// handled once serving.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if err := g.start(ctx); err != nil {
		return err
	}
	g.log.Info("gateway started", "site", g.cfg.Site, "listeners", len(g.cfg.Listeners))
	g.lc.ready(g.run.obs.Healthy)
	err := g.serve(ctx, hup) // until ctx ends or the bridge fails; SIGHUP reloads (run.go)
	g.lc.stopping()
	g.stop()
	if err != nil {
		g.log.Error("gateway stopped", "err", err)
		return err
	}
	g.log.Info("gateway stopped")
	return nil
}
