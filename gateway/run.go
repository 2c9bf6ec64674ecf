package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"reflect"
	"strings"

	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/gateway/broker"
	"github.com/edgegw/edgegw/gateway/config"
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

// BrokerOptionsFromConfig translates the config into broker options. Keys
// are opened through hw (file, TPM, PKCS#11) and returned for closing.
func BrokerOptionsFromConfig(ctx context.Context, cfg *config.Config) (broker.Options, []hw.Key, error) {
	o := broker.Options{Registry: cfg.Devices, Policies: cfg.Policies}
	var keys []hw.Key
	fail := func(err error) (broker.Options, []hw.Key, error) {
		for _, k := range keys {
			_ = k.Close()
		}
		return broker.Options{}, nil, err
	}
	for i, l := range cfg.Listeners {
		src, err := broker.ParseIdentitySource(l.Identity)
		if err != nil {
			return fail(fmt.Errorf("listeners[%d] (%s): %w", i, l.Name, err))
		}
		lo := broker.ListenerOptions{Name: l.Name, Address: l.Address, Identity: src, PasswordFile: l.PasswordFile, Thing: l.Thing}
		if t := l.TLS; t != nil {
			k, err := hw.Open(ctx, t.Key, hw.WithStateDir(cfg.StateDir))
			if err != nil {
				return fail(fmt.Errorf("listeners[%d] (%s): opening server key: %w", i, l.Name, err))
			}
			keys = append(keys, k)
			minV := uint16(tls.VersionTLS12)
			if t.MinVersion == "1.3" {
				minV = tls.VersionTLS13
			}
			lo.Key = k
			lo.TLS = &broker.TLSFiles{CA: t.CA, Cert: t.Cert, CRL: t.CRL, MinVersion: minV, RequireClientCert: t.ClientAuth != "none"}
		}
		if l.Authorizer != nil {
			ac := AuthorizerFromConfig(l.Authorizer) // rules.go
			lo.Authorizer = &ac
		}
		o.Listeners = append(o.Listeners, lo)
	}
	o.Limits = brokerLimits(cfg.Limits)
	return o, keys, nil
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
	o, keys, err := BrokerOptionsFromConfig(ctx, g.cfg)
	if err != nil {
		aud.Close()
		return err
	}
	o.Logger, o.Audit = g.log, aud
	set, err := CompileRules(g.cfg) // rules.go
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

// ErrRestartRequired reports config changes that only take effect after a restart.
var ErrRestartRequired = errors.New("restart required")

// Reload is the SIGHUP path. It re-reads the config file: settings that
// cannot change live (listeners, store, limits, ...) are not applied and the
// error says to restart. In every case the trust bundles, CRLs, password
// files, registry and policies named by the running config are reloaded
// (Broker.Reload: all or nothing, old state kept on error).
func (g *Gateway) Reload() error {
	b := g.Broker()
	if b == nil {
		return errors.New("gateway not running")
	}
	// logrotate moved the audit file away and sent SIGHUP: write a new one.
	if err := g.run.audit.Reopen(); err != nil {
		g.log.Error("reload: reopening the audit log, still writing the old file", "err", err)
	}
	var cfgErr error
	var changed []string // sections that need a restart
	if g.cfg.File != "" {
		nc, err := config.Check(g.cfg.File)
		switch {
		case err != nil:
			cfgErr = fmt.Errorf("config %s invalid, keeping the running one: %w", g.cfg.File, err)
		default:
			var rerr, rulesErr error
			nc, rerr = g.reloadRoutes(nc)       // bridge routes apply live
			nc, rulesErr = g.reloadRules(b, nc) // and rules (rules.go)
			cfgErr = rulesErr
			if changed = nonLiveChanges(g.cfg, nc); len(changed) > 0 {
				cfgErr = errors.Join(cfgErr, fmt.Errorf("%s changed in %s: %w (not applied)", strings.Join(changed, ", "), g.cfg.File, ErrRestartRequired))
			}
			if rerr != nil {
				cfgErr = errors.Join(fmt.Errorf("routes in %s not applied, keeping the running ones: %w", g.cfg.File, rerr), cfgErr)
			}
		}
		if cfgErr != nil {
			b.Metrics().ReloadFailures.Add(1)
			g.log.Error("reload: config not applied", "err", cfgErr)
			g.run.audit.Record(audit.Event{Event: audit.EventReloadFailed, Reason: cfgErr.Error()})
		}
	}
	err := cfgErr
	if berr := b.Reload("SIGHUP"); berr != nil {
		err = errors.Join(cfgErr, berr)
	}
	// The verdict of the whole reload: stays visible (metrics, status)
	// until a reload applies everything.
	g.run.obs.ReloadResult(err, changed)
	return err
}

// nonLiveChanges lists the top-level config sections that differ. Only the
// files they name are reloaded live, so any difference needs a restart.
func nonLiveChanges(old, nc *config.Config) []string {
	var out []string
	ov, nv := reflect.ValueOf(*old), reflect.ValueOf(*nc)
	t := ov.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if !f.IsExported() || tag == "" || tag == "-" {
			continue
		}
		if !reflect.DeepEqual(ov.Field(i).Interface(), nv.Field(i).Interface()) {
			out = append(out, tag)
		}
	}
	return out
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

// brokerLimits is the broker's defaults (broker.DefaultLimits) with the
// limits the config file sets (validated: more than 0 when set).
func brokerLimits(lc config.LimitsConfig) broker.Limits {
	l := broker.DefaultLimits()
	override(&l.HandshakeTimeout, int64(lc.HandshakeTimeout), math.MaxInt64)
	override(&l.MaxPendingHandshakes, int64(lc.MaxPendingHandshakes), math.MaxInt)
	override(&l.MaxPacketSize, lc.MaxPacketSize.Bytes(), 256<<20)
	override(&l.MaxClients, int64(lc.MaxClients), math.MaxInt64)
	override(&l.ClientWriteQueue, int64(lc.ClientWriteQueue), 1<<20)
	override(&l.ReceiveMaximum, int64(lc.ReceiveMaximum), 65535)
	override(&l.SessionExpiryMax, int64(lc.SessionExpiryMax), math.MaxInt64)
	override(&l.SessionMaxMessages, int64(lc.SessionMaxMessages), math.MaxInt)
	override(&l.SessionMaxBytes, lc.SessionMaxBytes.Bytes(), math.MaxInt64)
	override(&l.RetainedMaxMessages, int64(lc.RetainedMaxMessages), math.MaxInt)
	override(&l.RetainedMaxBytes, lc.RetainedMaxBytes.Bytes(), math.MaxInt64)
	override(&l.MaxTopicLength, int64(lc.MaxTopicLength), math.MaxInt)
	override(&l.MaxTopicLevels, int64(lc.MaxTopicLevels), math.MaxInt)
	return l
}

// override sets *dst to v, at most most, when the config set it (v > 0).
func override[T ~int | ~int32 | ~int64 | ~uint16 | ~uint32](dst *T, v, most int64) {
	if v > 0 {
		*dst = T(min(v, most))
	}
}
