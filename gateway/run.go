package gateway

import (
	"context"
	"net"
	"os"

	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/gateway/broker"
	"github.com/edgegw/edgegw/gateway/brokerconf"
	"github.com/edgegw/edgegw/gateway/localstate"
	"github.com/edgegw/edgegw/gateway/observe"
	"github.com/edgegw/edgegw/gateway/presence"
	"github.com/edgegw/edgegw/hw"
	"github.com/edgegw/edgegw/store"
)

// running is what Gateway.Run started.
type running struct {
	broker *broker.Broker
	audit  *audit.Log
	keys   []hw.Key
	up     *upstream         // queue + bridge (upstream.go); nil without a bridge section
	shadow *shadows          // gateway/shadowrun; nil without a shadows section
	own    *store.Queue      // store.dir opened for the sessions and shadows when no bridge does (gateway/localstate)
	sessKV *store.KV         // the offline sessions' key space (gateway/localstate)
	enrol  *enrolment        // enrol.go; nil without an enrolment section
	obs    *observe.Observer // metrics, /healthz, admin socket

	presence *presence.Tracker // gateway/localstate
}

func (g *Gateway) start(ctx context.Context) error {
	// The checks `edgegw check` makes, first: a refusal reads the same in both.
	if err := Preflight(ctx, g.cfg); err != nil {
		return err
	}
	obs := observe.New(g.cfg, g.log)
	aud, err := audit.New(audit.Options{File: g.cfg.Audit.File, Journal: g.cfg.Audit.Journal, Site: g.cfg.Site, Log: g.log, OnEvent: obs.Record})
	if err != nil {
		return err
	}
	o, keys, err := brokerconf.Options(ctx, g.cfg)
	if err != nil {
		aud.Close()
		return err
	}
	o.Logger, o.Audit = g.log, aud
	set, err := brokerconf.CompileRules(g.cfg)
	var pres *presence.Tracker
	if err == nil {
		pres, err = localstate.OpenPresence(g.cfg.StateDir, g.log)
	}
	if err != nil {
		for _, k := range keys {
			_ = k.Close()
		}
		aud.Close()
		return err
	}
	o.Presence = localstate.PresenceSink{T: pres}
	b, err := broker.New(o)
	if err == nil {
		b.SetRules(set)
	}
	var up *upstream
	if err == nil {
		up, err = g.openUpstream(ctx, b, aud, obs.FsyncObserved) // queue open before listeners accept
	}
	sh := up.shadows()
	q := up.firstQueue()
	var own *store.Queue
	if err == nil && q == nil {
		own, err = g.openLocalStore(ctx, aud, obs.FsyncObserved) // components.go: store.dir for the sessions and shadows
		q = own
	}
	if err == nil && up == nil {
		sh, err = g.openShadows(ctx, b, own, aud)
	}
	var sessKV *store.KV
	if err == nil {
		sessKV, err = localstate.OpenSessions(ctx, b, q, g.log) // before the listeners accept
	}
	var en *enrolment
	if err == nil {
		en, err = openEnrolment(g.cfg, b, aud, g.log) // enrol.go
	}
	if err == nil {
		err = b.Start()
	}
	if err != nil {
		en.close()
		if sessKV != nil {
			sessKV.Close()
		}
		sh.close()
		up.close()
		if own != nil {
			_ = own.Close()
		}
		for _, k := range keys {
			_ = k.Close()
		}
		_ = pres.Close()
		aud.Close()
		return err
	}
	g.run = &running{broker: b, audit: aud, keys: keys, obs: obs, up: up, shadow: sh, own: own, sessKV: sessKV, enrol: en, presence: pres}
	up.start()
	src := observe.Sources{Broker: b, Presence: localstate.PresenceView{T: pres, B: b}, Audit: aud, Things: b}
	if up != nil {
		src.Bridges = up.sources() // upstream.go
	}
	if sh != nil {
		src.Shadow = sh
	}
	if err := obs.Start(src); err != nil {
		g.stop()
		return err
	}
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
		case err := <-g.run.up.failedCh():
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
	_ = r.broker.Close() // writes the sessions its disconnects keep offline
	r.enrol.close()
	if r.sessKV != nil {
		r.sessKV.Close()
	}
	r.shadow.close() // before its store
	r.up.close()     // after the broker: no more enqueues
	if r.own != nil {
		if err := r.own.Close(); err != nil {
			g.log.Error("closing store", "err", err)
		}
	}
	if err := r.presence.Close(); err != nil {
		g.log.Warn("device presence not saved", "err", err)
	}
	for _, k := range r.keys {
		_ = k.Close()
	}
	_ = r.audit.Close()
	g.run = nil
}

// MetricsAddr is the bound metrics address (nil when disabled or not running).
func (g *Gateway) MetricsAddr() net.Addr {
	if g.run == nil {
		return nil
	}
	return g.run.obs.MetricsAddr()
}
