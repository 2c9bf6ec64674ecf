package gateway

// Device presence, as `edgegw run` wires it:
//
//	broker (OnSessionEstablished / OnDisconnect) ──> broker.Presence ──> presenceSink ──> *presence.Tracker
//	observe (status, /devices, metrics) ──> observe.Presence ──> presenceView: Tracker.Devices(the broker's registry)
//
// The tracker's file lives in state_dir; a state_dir that does not exist
// keeps presence in memory only (said once at start).

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"

	"github.com/edgegw/edgegw/gateway/broker"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/observe"
	"github.com/edgegw/edgegw/gateway/presence"
)

var (
	_ broker.Presence  = presenceSink{}
	_ observe.Presence = presenceView{}
)

// openPresence opens the tracker on state_dir.
func openPresence(stateDir string, log *slog.Logger) (*presence.Tracker, error) {
	dir := stateDir
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		log.Warn("state_dir does not exist: device presence is kept in memory only", "dir", dir)
		dir = ""
	}
	return presence.Open(dir, presence.Options{Logger: log})
}

// presenceSink hands the broker's connection events to the tracker.
type presenceSink struct{ t *presence.Tracker }

func (p presenceSink) Online(c broker.PresenceConn)  { p.t.Online(presence.Conn(c)) }
func (p presenceSink) Offline(c broker.PresenceConn) { p.t.Offline(presence.Conn(c)) }

// presenceView joins the tracker with the broker's current registry.
type presenceView struct {
	t *presence.Tracker
	b *broker.Broker
}

func (p presenceView) Devices() []presence.Device {
	var reg []presence.Registered
	for _, th := range p.b.Registered() {
		if th.Type == config.OperatorType {
			continue // an engineer's laptop (status page certificate), not a device
		}
		reg = append(reg, presence.Registered{Name: th.Name, Type: th.Type})
	}
	return p.t.Devices(reg)
}
