package broker

import "time"

// Stats is a snapshot of the local broker for metrics and status.
type Stats struct {
	Listeners   int // listeners serving
	Connections int // connected clients
	ConnectsAccepted,
	HandshakeFailures, HandshakeTimeouts, PendingRejected,
	DeniedConnect, DeniedPublish, DeniedSubscribe, DeniedReceive, DeniedRetain,
	DroppedQoS0, DroppedQoS1, InflightDropped,
	Enqueued, EnqueueFailures int64
}

// ConnectedDevice is one connected client, for `edgegw status`.
type ConnectedDevice struct {
	Thing    string    `json:"thing"`
	ClientID string    `json:"client_id"`
	Remote   string    `json:"remote"`
	Listener string    `json:"listener"`
	Since    time.Time `json:"since,omitzero"`
}

// Stats returns a snapshot of the broker's counters.
func (b *Broker) Stats() Stats {
	m := b.metrics
	return Stats{
		Listeners: len(b.ls), Connections: b.Clients(),
		ConnectsAccepted:  m.ConnectsAccepted.Load(),
		HandshakeFailures: m.HandshakeFailures.Load(), HandshakeTimeouts: m.HandshakeTimeouts.Load(),
		PendingRejected: m.PendingRejected.Load(),
		DeniedConnect:   m.DeniedConnect.Load(), DeniedPublish: m.DeniedPublish.Load(),
		DeniedSubscribe: m.DeniedSubscribe.Load(), DeniedReceive: m.DeniedReceive.Load(),
		DeniedRetain: m.DeniedRetain.Load(),
		DroppedQoS0:  m.DroppedQoS0.Load(), DroppedQoS1: m.DroppedQoS1.Load(), InflightDropped: m.InflightDropped.Load(),
		Enqueued: m.Enqueued.Load(), EnqueueFailures: m.EnqueueFailures.Load(),
	}
}

// Devices lists the connected clients (Since is filled in by the observer).
func (b *Broker) Devices() []ConnectedDevice {
	var out []ConnectedDevice
	b.clients.Range(func(_, v any) bool {
		st := v.(*clientState)
		out = append(out, ConnectedDevice{Thing: st.id.ThingName, ClientID: st.clientID, Remote: st.cl.Net.Remote, Listener: st.ls.opts.Name})
		return true
	})
	return out
}
