package broker

import "time"

// ConnectedDevice is one connected client, for `edgegw status`.
type ConnectedDevice struct {
	Thing    string    `json:"thing"`
	ClientID string    `json:"client_id"`
	Remote   string    `json:"remote"`
	Listener string    `json:"listener"`
	Since    time.Time `json:"since,omitzero"`
}

// Listeners is the number of listeners serving.
func (b *Broker) Listeners() int { return len(b.ls) }

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
