package config

import "github.com/edgegw/edgegw/gateway/authz"

// validateThing checks a listener's `thing`: the thing every client of a
// plaintext (loopback) listener is, whatever its client ID. Local services
// on the Pi (Node-RED, Telegraf, Home Assistant) connect with an empty
// client ID or one of their own choosing; with `thing: node-red` they are
// the thing node-red, authorized by its policies, and iot:Connect is asked
// about their client ID (client/${iot:ClientId}). Without `thing`, the
// client ID is the thing name (the default). A TLS listener takes the thing
// from the client certificate, so `thing` is refused there.
func (l *Listener) validateThing(r *report, p string) {
	if l.Thing == "" {
		return
	}
	if l.TLS != nil {
		r.add(p+".thing", "%q: only for a plaintext loopback listener (a tls listener takes the thing from the client certificate); remove thing or tls", l.Thing)
	}
	if !authz.ValidThingName(l.Thing) {
		r.add(p+".thing", "%q: want a thing name from devices.yaml (1-128 letters, digits and :_-)", l.Thing)
	}
}
