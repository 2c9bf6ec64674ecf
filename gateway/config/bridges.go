package config

import (
	"fmt"
	"net/url"
	"path/filepath"
)

// Several bridges. The `bridges:` section is a list of bridge sections,
// each with its own name, client ID, TLS identity, upstream list and routes;
// the older `bridge:` section is the same thing as a one-element list whose
// bridge is named "default". A file has one or the other, not both.
//
// What a bridge section may say beyond the routes and the TLS identity
// (name, profile, protocol, username, password_file, proxy, envelope, alpn,
// max_payload, max_rate) is checked here only for its shape: the spellings
// and what each cloud allows belong to package bridge, which the gateway
// asks (uplink.CheckBridges) for `edgegw check` and at start. Left out, a
// setting stays empty and the bridge (or its profile) picks the default.
//
// Each bridge has its own queue: the bridge named "default" keeps store.dir
// (the queue of a site upgraded from `bridge:` is that bridge's, unchanged),
// every other bridge NAME uses the directory store.dir-NAME beside it
// (BridgeQueueDir). Route names name queues and must be unique across
// bridges: a topic bridged to two upstreams has a route in each, under two
// names.

// DefaultBridgeName is the name of the bridge of a `bridge:` section, and
// of the bridge whose queue is store.dir.
const DefaultBridgeName = "default"

// BridgeList returns the configured bridges in file order: the `bridge:`
// section (named "default") or the `bridges:` list. The pointers are into c.
func (c *Config) BridgeList() []*BridgeConfig {
	if c.Bridge != nil {
		return []*BridgeConfig{c.Bridge}
	}
	out := make([]*BridgeConfig, len(c.Bridges))
	for i := range c.Bridges {
		out[i] = &c.Bridges[i]
	}
	return out
}

// BridgePath is the key path of the i-th bridge of BridgeList in errors:
// "bridge" or "bridges[i]".
func (c *Config) BridgePath(i int) string {
	if c.Bridge != nil {
		return "bridge"
	}
	return fmt.Sprintf("bridges[%d]", i)
}

// BridgeName is the bridge's name: Name, or "default" (validation fills
// Name of a `bridge:` section with it).
func (b *BridgeConfig) BridgeName() string {
	if b.Name == "" {
		return DefaultBridgeName
	}
	return b.Name
}

// BridgeQueueDir is the queue directory of the bridge named name: store.dir
// for "default", store.dir-NAME beside it for any other.
func (c *Config) BridgeQueueDir(name string) string {
	if name == DefaultBridgeName || name == "" {
		return c.Store.Dir
	}
	return filepath.Clean(c.Store.Dir) + "-" + name
}

func (c *Config) validateBridges(r *report) {
	if c.Bridge != nil && len(c.Bridges) > 0 {
		r.add("bridges", "bridge and bridges are both set: keep one (bridge is the same as a one-element bridges list named default)")
		return
	}
	if c.Bridge != nil {
		if n := c.Bridge.Name; n != "" && n != DefaultBridgeName {
			r.add("bridge.name", "%q: the bridge of a bridge section is named default (its queue is store.dir); use a bridges list for named bridges", n)
		}
		c.Bridge.Name = DefaultBridgeName
	} else if r.has("bridges") && len(c.Bridges) == 0 {
		r.add("bridges", "empty list: leave bridges out for a local broker only, or add a bridge")
	}
	names := map[string]string{}
	routes := map[string]string{}
	for i, b := range c.BridgeList() {
		p := c.BridgePath(i)
		b.validate(r, p)
		b.validateExtras(r, p, c.Bridge != nil)
		if b.Name != "" {
			if prev, dup := names[b.Name]; dup {
				r.add(p+".name", "%q: duplicate bridge name (also %s); give each bridge its own name", b.Name, prev)
			}
			names[b.Name] = p
		}
		for j, rt := range b.Routes {
			rp := fmt.Sprintf("%s.routes[%d]", p, j)
			if prev, dup := routes[rt.Name]; dup && parentOfRoute(prev) != p {
				np := rp + ".name"
				if _, ok := r.pos[np]; !ok {
					np = rp
				}
				r.add(np, "%q is also the name of %s: a route name names its queue, so names must be unique across bridges (e.g. %s-%s)", rt.Name, prev, b.BridgeName(), rt.Name)
			} else if !dup {
				routes[rt.Name] = rp
			}
		}
	}
}

// parentOfRoute is "bridges[i]" of "bridges[i].routes[j]".
func parentOfRoute(p string) string { return parentPath(parentPath(p)) }

// validateExtras checks the shape of the settings beyond the first bridge
// section's: names, URLs, credentials, numbers.
func (b *BridgeConfig) validateExtras(r *report, p string, single bool) {
	if !single {
		switch {
		case b.Name == "":
			r.add(p+".name", "required in a bridges list: a name for logs, status, metrics and the queue directory, e.g. aws")
		case !bridgeNameOK(b.Name):
			r.add(p+".name", "%q: use 1 to 64 letters, digits, '-' or '_'", b.Name)
		}
	}
	if b.TLS != nil && b.TLS.Renew != nil {
		b.TLS.Renew.validate(r, p, b.TLS)
	}
	if b.PasswordFile != "" && b.Username == "" {
		r.add(p+".password_file", "a password needs a username (MQTT sends no password without one)")
	}
	if b.Proxy != "" {
		if pu, err := url.Parse(b.Proxy); err != nil || pu.Scheme != "http" || pu.Hostname() == "" {
			r.add(p+".proxy", "%q: want http://[user:password@]host:port (an HTTP CONNECT proxy)", redactURL(b.Proxy))
		}
	}
	if b.MaxPayload < 0 {
		r.add(p+".max_payload", "must not be negative (0 = no limit but the upstream's)")
	}
	if b.MaxRate < 0 {
		r.add(p+".max_rate", "%d: must not be negative (0 = unlimited)", b.MaxRate)
	}
	for i, a := range b.ALPN {
		if a == "" || len(a) > 255 {
			r.add(fmt.Sprintf("%s.alpn[%d]", p, i), "%q: an ALPN protocol is 1 to 255 bytes, e.g. x-amzn-mqtt-ca", a)
		}
	}
	for i, u := range b.Upstreams {
		for j, a := range u.ALPN {
			if a == "" || len(a) > 255 {
				r.add(fmt.Sprintf("%s.upstreams[%d].alpn[%d]", p, i, j), "%q: an ALPN protocol is 1 to 255 bytes, e.g. x-amzn-mqtt-ca", a)
			}
		}
	}
}

func bridgeNameOK(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// redactURL hides a password in a URL for an error message.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return "(unparsable URL)"
}

// resolveBridgePaths makes the bridges' relative paths absolute.
func (c *Config) resolveBridgePaths(abs func(*string), uri func(string) string) {
	for _, b := range c.BridgeList() {
		abs(&b.PasswordFile)
		if b.TLS != nil {
			abs(&b.TLS.CA)
			abs(&b.TLS.Cert)
			b.TLS.Key = uri(b.TLS.Key)
			if b.TLS.Renew != nil {
				abs(&b.TLS.Renew.ESTCA)
			}
		}
	}
}

// checkBridgeFiles checks the files the bridges name.
func (c *Config) checkBridgeFiles(file, key func(path, p string)) {
	for i, b := range c.BridgeList() {
		p := c.BridgePath(i)
		file(p+".password_file", b.PasswordFile)
		if b.TLS != nil {
			file(p+".tls.ca", b.TLS.CA)
			if !c.renewed(b.BridgeName()) { // renew.go
				file(p+".tls.cert", b.TLS.Cert)
				key(p+".tls.key", b.TLS.Key)
			}
			if b.TLS.Renew != nil {
				file(p+".tls.renew.est_ca", b.TLS.Renew.ESTCA)
			}
		}
	}
}
