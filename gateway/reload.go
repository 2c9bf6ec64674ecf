package gateway

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/gateway/broker"
	"github.com/edgegw/edgegw/gateway/brokerconf"
	"github.com/edgegw/edgegw/gateway/config"
)

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
			nc, rerr = g.up().ReloadRoutes(nc)  // bridge routes (and identities) apply live
			nc, rulesErr = g.reloadRules(b, nc) // and rules
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

// reloadRules compiles nc's rules and swaps them into the broker. It returns
// nc with the running config's rules put back (the rules are applied, or
// refused with an error, never a restart matter); on error the running rules
// stay.
func (g *Gateway) reloadRules(b *broker.Broker, nc *config.Config) (*config.Config, error) {
	c := *nc
	c.Rules = g.cfg.Rules
	// Compiled and swapped on every reload (cheap): the running set may come
	// from an earlier reload, not from g.cfg.
	set, err := brokerconf.CompileRules(nc)
	if err != nil {
		return &c, fmt.Errorf("rules in %s not applied, keeping the running ones: %w", nc.File, err)
	}
	b.SetRules(set)
	g.log.Info("rules reloaded", "rules", len(set.Rules()))
	return &c, nil
}
