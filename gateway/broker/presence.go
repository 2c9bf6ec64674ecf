package broker

import (
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// Presence is told when a device's connection is accepted (after the
// CONNACK, in OnSessionEstablished) and when that connection ends
// (OnDisconnect). It runs on the client's goroutine: it must not block.
// *presence.Tracker satisfies it through the gateway wiring.
type Presence interface {
	Online(PresenceConn)
	Offline(PresenceConn)
}

// PresenceConn is one connection as Presence sees it.
type PresenceConn struct {
	Thing, ClientID, Listener, Remote string
	Serial                            string    // certificate serial, hex ("" without one)
	CertNotAfter                      time.Time // zero without a certificate
}

func presenceConn(cl *mqtt.Client, st *clientState) PresenceConn {
	pc := PresenceConn{Thing: st.id.ThingName, ClientID: st.clientID, Listener: st.ls.opts.Name, Remote: cl.Net.Remote, Serial: st.id.Serial}
	if st.id.Cert != nil {
		pc.CertNotAfter = st.id.Cert.NotAfter
	}
	return pc
}

// presenceOnline and presenceOffline are the hook's call sites.
func (b *Broker) presenceOnline(cl *mqtt.Client, st *clientState) {
	if p := b.opts.Presence; p != nil {
		p.Online(presenceConn(cl, st))
	}
}

func (b *Broker) presenceOffline(cl *mqtt.Client, st *clientState) {
	if p := b.opts.Presence; p != nil {
		p.Offline(presenceConn(cl, st))
	}
}

// Registered lists the things of the current registry (after the last
// successful reload), name and type, in name order.
func (b *Broker) Registered() []RegisteredThing {
	var out []RegisteredThing
	for th := range b.policy.Load().Things() {
		out = append(out, RegisteredThing{Name: th.Name, Type: th.Type, Disabled: th.Disabled})
	}
	return out
}

// RegisteredThing is one listed thing of the registry.
type RegisteredThing struct {
	Name, Type string
	Disabled   bool
}

// ThingType is the registry's type of a listed thing (listed false: the
// registry does not list it).
func (b *Broker) ThingType(name string) (typ string, listed bool) {
	th, ok := b.policy.Load().Thing(name)
	if !ok || !th.Listed {
		return "", false
	}
	return th.Type, true
}
