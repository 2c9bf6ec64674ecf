package uplink

import (
	"fmt"
	"reflect"

	"github.com/edgegw/edgegw/bridge"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/shadowrun"
)

// ReloadRoutes applies nc's bridge routes live when the bridges are the
// same ones (names, in order) and, in each, only the routes changed: queue
// limits (store.SetRoutes), bridge routes and upstream subscriptions
// (bridge.SetRoutes), and the OnPublish matcher. It returns nc with the
// running config's routes put back, so that the gateway's check of what needs a restart does not report
// what was applied; on error nc is returned as is and nothing was changed.
func (u *Uplink) ReloadRoutes(nc *config.Config) (*config.Config, error) {
	if u == nil {
		return nc, nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	olds, news := u.cfg.BridgeList(), nc.BridgeList()
	if len(olds) != len(news) || len(news) != len(u.links) || (u.cfg.Bridge == nil) != (nc.Bridge == nil) {
		return nc, nil // not live: the gateway reports a restart
	}
	for i := range news {
		oldRest, newRest := *olds[i], *news[i]
		oldRest.Routes, newRest.Routes = nil, nil
		oldRest.TLS, newRest.TLS = liveTLS(oldRest.TLS), liveTLS(newRest.TLS)
		if !reflect.DeepEqual(oldRest, newRest) {
			return nc, nil
		}
	}
	u.reloadIdentities(nc) // tls.cert and tls.key apply live (renew.go)
	// same is nc with the running routes put back (a copy: nc is the
	// caller's).
	same := func() *config.Config {
		c := *nc
		if nc.Bridge != nil {
			b := *nc.Bridge
			b.Routes, b.TLS = u.cfg.Bridge.Routes, u.cfg.Bridge.TLS
			c.Bridge = &b
		} else {
			c.Bridges = append([]config.BridgeConfig(nil), nc.Bridges...)
			for i := range c.Bridges {
				c.Bridges[i].Routes, c.Bridges[i].TLS = u.cfg.Bridges[i].Routes, u.cfg.Bridges[i].TLS
			}
		}
		return &c
	}
	changed := false
	brs := make([][]bridge.Route, len(news))
	for i, nb := range news {
		if reflect.DeepEqual(u.links[i].routes, nb.Routes) {
			continue
		}
		changed = true
		var err error
		if brs[i], err = BridgeRoutesFromConfig(nb.Routes); err != nil {
			return nc, err
		}
		if i == 0 {
			// The shadows section needs a restart: its routes stay.
			brs[i] = append(brs[i], shadowrun.Routes(u.cfg)...)
		}
	}
	if !changed {
		return same(), nil
	}
	// Check every bridge's new routes (each against its cloud, names across
	// bridges) before changing any: all or nothing.
	if _, err := CheckBridges(nc); err != nil {
		return nc, err
	}
	for i, l := range u.links {
		if brs[i] == nil {
			continue
		}
		if err := l.bridge.SetRoutes(brs[i]); err != nil {
			return nc, fmt.Errorf("%s.routes: %w", nc.BridgePath(i), err)
		}
		limits := RouteLimitsFromConfig(news[i].Routes)
		if i == 0 {
			limits = append(limits, shadowrun.RouteLimits(u.cfg)...)
		}
		l.queue.SetRoutes(limits)
		l.routes = news[i].Routes
		u.ulog.Info("routes reloaded", "bridge", l.name, "routes", len(brs[i]))
	}
	u.setOutbound()
	return same(), nil
}
