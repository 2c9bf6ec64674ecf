package broker

import (
	"errors"
	"io"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw/gateway/audit"
)

// disconnectHook writes the audit line of every accepted client that goes
// away (event disconnect, with the reason and how long it was connected),
// so the audit log says when a sensor went offline. It records what it
// needs at OnSessionEstablished, so it does not depend on the order in
// which the main hook forgets the client.
type disconnectHook struct {
	mqtt.HookBase
	b        *Broker
	sessions sync.Map // *mqtt.Client -> connectedClient
}

type connectedClient struct {
	since                    time.Time
	device, clientID, serial string
}

func (h *disconnectHook) ID() string { return "edgegw-disconnects" }

// Provides is asked for every hook call mochi makes, several per packet:
// a switch, not a slice search (hook.go).
func (h *disconnectHook) Provides(b byte) bool {
	return b == mqtt.OnSessionEstablished || b == mqtt.OnDisconnect
}

func (h *disconnectHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	st := h.b.state(cl)
	if st == nil {
		return
	}
	h.sessions.Store(cl, connectedClient{since: time.Now(), device: st.id.ThingName, clientID: st.clientID, serial: st.id.Serial})
}

func (h *disconnectHook) OnDisconnect(cl *mqtt.Client, err error, _ bool) {
	v, ok := h.sessions.LoadAndDelete(cl)
	if !ok {
		return
	}
	c := v.(connectedClient)
	h.b.audit.Record(audit.Event{Event: audit.EventDisconnect, Device: c.device, ClientID: c.clientID, Serial: c.serial,
		Remote: cl.Net.Remote, Listener: cl.Net.Listener, Reason: disconnectReason(err),
		Duration: time.Since(c.since).Round(time.Millisecond).Seconds()})
}

// disconnectReason says why a client went, in the words of the audit log.
func disconnectReason(err error) string {
	switch {
	case err == nil, errors.Is(err, packets.CodeDisconnect):
		return "client disconnected"
	case errors.Is(err, io.EOF):
		return "connection closed by the client"
	case errors.Is(err, packets.ErrSessionTakenOver):
		return "session taken over by a new connection"
	case errors.Is(err, packets.ErrServerShuttingDown):
		return "gateway shutting down"
	case errors.Is(err, packets.ErrKeepAliveTimeout):
		return "keepalive timeout"
	}
	return err.Error()
}
