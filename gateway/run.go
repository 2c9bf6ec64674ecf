package gateway

import (
	"context"
	"log/slog"
	"net"
	"os"

	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/gateway/broker"
	"github.com/edgegw/edgegw/gateway/brokerconf"
	"github.com/edgegw/edgegw/gateway/enrolrun"
	"github.com/edgegw/edgegw/gateway/localstate"
	"github.com/edgegw/edgegw/gateway/observe"
	"github.com/edgegw/edgegw/gateway/presence"
	"github.com/edgegw/edgegw/gateway/uplink"
	"github.com/edgegw/edgegw/hw"
	"github.com/edgegw/edgegw/store"
)

// running is what Gateway.Run started.
type running struct {
	broker *broker.Broker
	audit  *audit.Log
	keys   []hw.Key
	up     *uplink.Uplink      // queues + bridges (gateway/uplink); nil without a bridge section
	shadow *shadows            // gateway/shadowrun; nil without a shadows section
	own    *store.Queue        // store.dir opened for the sessions and shadows when no bridge does (gateway/localstate)
	sessKV *store.KV           // the offline sessions' key space (gateway/localstate)
	enrol  *enrolrun.Enrolment // gateway/enrolrun; nil without an enrolment section
	obs    *observe.Observer   // metrics, /healthz, admin socket

	presence *presence.Tracker // gateway/localstate
}

// start opens every component and starts serving: the broker's listeners
// accept only once the queues, the shadows, the offline sessions and the
// enrolment are in place; the bridges and the observer start after.
func (g *Gateway) start(ctx context.Context) error {
	// The checks `edgegw check` makes, first: a refusal reads the same in both.
	if err := Preflight(ctx, g.cfg); err != nil {
		return err
	}
	r := &running{obs: observe.New(g.cfg, g.log)}
	if err := g.open(ctx, r); err != nil {
		r.close(g.log)
		return err
	}
	g.run = r
	r.up.Start()
	src := observe.Sources{Broker: r.broker, Presence: localstate.PresenceView{T: r.presence, B: r.broker}, Audit: r.audit, Things: r.broker}
	if r.up != nil {
		src.Bridges = r.up.Sources() // gateway/uplink
	}
	if r.shadow != nil {
		src.Shadow = r.shadow
	}
	if r.enrol != nil {
		src.Enrol = r.enrol.Service() // status: the enrolment figures
	}
	if err := r.obs.Start(src); err != nil {
		g.stop()
		return err
	}
	return nil
}

// open opens the components into r, in the order the broker needs them,
// and starts the broker's listeners last. On error r holds what was opened,
// for r.close; r.broker is set only once it serves.
func (g *Gateway) open(ctx context.Context, r *running) (err error) {
	if r.audit, err = audit.New(audit.Options{File: g.cfg.Audit.File, Journal: g.cfg.Audit.Journal, Site: g.cfg.Site, Log: g.log, OnEvent: r.obs.Record}); err != nil {
		return err
	}
	o, keys, err := brokerconf.Options(ctx, g.cfg)
	if r.keys = keys; err != nil {
		return err
	}
	o.Logger, o.Audit = g.log, r.audit
	set, err := brokerconf.CompileRules(g.cfg)
	if err != nil {
		return err
	}
	if r.presence, err = localstate.OpenPresence(g.cfg.StateDir, g.log); err != nil {
		return err
	}
	o.Presence = localstate.PresenceSink{T: r.presence}
	b, err := broker.New(o)
	if err != nil {
		return err
	}
	b.SetRules(set)
	// The queues open before the listeners accept.
	if r.up, err = g.openUpstream(ctx, b, r.audit, r.obs.FsyncObserved); err != nil {
		return err
	}
	r.shadow = wrapShadows(r.up.Shadows())
	q := r.up.Queue()
	if q == nil {
		// components.go: store.dir for the sessions and shadows
		if r.own, err = g.openLocalStore(ctx, r.audit, r.obs.FsyncObserved); err != nil {
			return err
		}
		q = r.own
	}
	if r.up == nil {
		if r.shadow, err = g.openShadows(ctx, b, r.own, r.audit); err != nil {
			return err
		}
	}
	if r.sessKV, err = localstate.OpenSessions(ctx, b, q, g.log); err != nil {
		return err
	}
	if r.enrol, err = enrolrun.Open(g.cfg, b, r.audit, g.log); err != nil {
		return err
	}
	if err = b.Start(); err != nil {
		return err
	}
	r.broker = b
	return nil
}

// Broker returns the running local broker (nil before Run starts it).
func (g *Gateway) Broker() *broker.Broker {
	if g.run == nil {
		return nil
	}
	return g.run.broker
}

func (g *Gateway) serve(ctx context.Context, hup <-chan os.Signal) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-g.run.up.Failed():
			g.run.obs.QueueFailed(err)
			return err
		case <-hup:
			g.reloadOnSignal() // Reload between the Lifecycle callbacks (lifecycle.go)
		}
	}
}

func (g *Gateway) stop() {
	r := g.run
	if r == nil {
		return
	}
	r.obs.Stop()
	r.close(g.log)
	g.run = nil
}

// close releases what r holds: the broker first (its disconnects write the
// sessions it keeps offline), then what it used, each store after its
// users (the bridges after the broker: no more enqueues), the audit log
// last. Every part may be missing (a start that failed half way).
func (r *running) close(log *slog.Logger) {
	if r.broker != nil {
		_ = r.broker.Close()
	}
	r.enrol.Close()
	if r.sessKV != nil {
		r.sessKV.Close()
	}
	r.shadow.close() // before its store
	r.up.Close()
	if r.own != nil {
		if err := r.own.Close(); err != nil {
			log.Error("closing store", "err", err)
		}
	}
	if r.presence != nil {
		if err := r.presence.Close(); err != nil {
			log.Warn("device presence not saved", "err", err)
		}
	}
	for _, k := range r.keys {
		_ = k.Close()
	}
	_ = r.audit.Close()
}

// MetricsAddr is the bound metrics address (nil when disabled or not running).
func (g *Gateway) MetricsAddr() net.Addr {
	if g.run == nil {
		return nil
	}
	return g.run.obs.MetricsAddr()
}
