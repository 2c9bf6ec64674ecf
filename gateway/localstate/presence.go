package localstate

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
	_ broker.Presence  = PresenceSink{}
	_ observe.Presence = PresenceView{}
	_ Registry         = (*broker.Broker)(nil)
)

// OpenPresence opens the tracker on state_dir.
func OpenPresence(stateDir string, log *slog.Logger) (*presence.Tracker, error) {
	dir := stateDir
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		log.Warn("state_dir does not exist: device presence is kept in memory only", "dir", dir)
		dir = ""
	}
	return presence.Open(dir, presence.Options{Logger: log})
}

// PresenceSink hands the broker's connection events to the tracker.
type PresenceSink struct{ T *presence.Tracker }

// Online implements broker.Presence.
func (p PresenceSink) Online(c broker.PresenceConn) { p.T.Online(presence.Conn(c)) }

// Offline implements broker.Presence.
func (p PresenceSink) Offline(c broker.PresenceConn) { p.T.Offline(presence.Conn(c)) }

// Registry is the broker's current registry (it changes on reload);
// *broker.Broker satisfies it.
type Registry interface {
	Registered() []broker.RegisteredThing
}

// PresenceView joins the tracker with the broker's current registry.
type PresenceView struct {
	T *presence.Tracker
	B Registry
}

// Devices implements observe.Presence.
func (p PresenceView) Devices() []presence.Device {
	var reg []presence.Registered
	for _, th := range p.B.Registered() {
		if th.Type == config.OperatorType {
			continue // an engineer's laptop (status page certificate), not a device
		}
		reg = append(reg, presence.Registered{Name: th.Name, Type: th.Type})
	}
	return p.T.Devices(reg)
}
