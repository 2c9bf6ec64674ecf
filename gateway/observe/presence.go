package observe

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgegw/edgegw/gateway/presence"
)

// Presence is what the observer reads of device presence: every registered
// thing (and every connected unlisted one), joined with what was seen.
type Presence interface{ Devices() []presence.Device }

// statusOfflineCap is how many offline things GET /status lists unless
// asked for all (?all=1): at a building's scale the list is the problem, the
// counts are the answer.
const statusOfflineCap = 20

// PresenceStatus is the presence part of GET /status.
type PresenceStatus struct {
	Registered   int               `json:"registered"`
	Counts       map[string]int    `json:"counts"`        // by state: online, offline, never_seen, unlisted
	NotConnected []presence.Device `json:"not_connected"` // offline and never seen, longest silent first; capped unless all
	Truncated    int               `json:"not_connected_truncated"`
}

func (o *Observer) presenceStatus(all bool) *PresenceStatus {
	if o.presence == nil {
		return nil
	}
	devs := o.presence.Devices()
	ps := &PresenceStatus{Counts: map[string]int{}, NotConnected: []presence.Device{}}
	for s, n := range presence.Counts(devs) {
		ps.Counts[string(s)] = n
	}
	for _, d := range devs {
		if d.State != presence.Unlisted {
			ps.Registered++
		}
		if d.State == presence.Offline || d.State == presence.NeverSeen {
			ps.NotConnected = append(ps.NotConnected, d)
		}
	}
	sortSilentFirst(ps.NotConnected)
	if !all && len(ps.NotConnected) > statusOfflineCap {
		ps.Truncated = len(ps.NotConnected) - statusOfflineCap
		ps.NotConnected = ps.NotConnected[:statusOfflineCap]
	}
	return ps
}

// sortSilentFirst orders never-seen things first, then by last seen, oldest
// first; ties by name.
func sortSilentFirst(devs []presence.Device) {
	less := func(a, b presence.Device) bool {
		if a.LastSeen.Equal(b.LastSeen) {
			return a.Thing < b.Thing
		}
		return a.LastSeen.Before(b.LastSeen)
	}
	for i := 1; i < len(devs); i++ {
		for j := i; j > 0 && less(devs[j], devs[j-1]); j-- {
			devs[j], devs[j-1] = devs[j-1], devs[j]
		}
	}
}

// DevicesList is the body of GET /devices.
type DevicesList struct {
	Count   int               `json:"count"`
	Devices []presence.Device `json:"devices"`
}

// serveDevices is GET /devices[?state=offline|online|never_seen|unlisted|not_connected][&type=T].
func (o *Observer) serveDevices(w http.ResponseWriter, r *http.Request) {
	if o.presence == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "this gateway keeps no device presence"})
		return
	}
	state, typ := r.URL.Query().Get("state"), r.URL.Query().Get("type")
	list := DevicesList{Devices: FilterDevices(o.presence.Devices(), state, typ)}
	list.Count = len(list.Devices)
	writeJSON(w, http.StatusOK, list)
}

// FilterDevices keeps the devices in state ("" any; "not_connected":
// offline or never seen) of type typ ("" any). The result is never nil.
func FilterDevices(devs []presence.Device, state, typ string) []presence.Device {
	out := []presence.Device{}
	for _, d := range devs {
		if typ != "" && d.Type != typ {
			continue
		}
		switch state {
		case "":
		case "not_connected":
			if d.State != presence.Offline && d.State != presence.NeverSeen {
				continue
			}
		default:
			if string(d.State) != state {
				continue
			}
		}
		out = append(out, d)
	}
	return out
}

// offlineThresholds are the "offline for longer than" buckets of
// edgegw_devices_offline: aggregates only, never a label per device.
var offlineThresholds = []time.Duration{5 * time.Minute, time.Hour, 24 * time.Hour}

var (
	descDevicesRegistered = prometheus.NewDesc("edgegw_devices_registered", "Things listed in the registry.", nil, nil)
	descDevicesConnected  = prometheus.NewDesc("edgegw_devices_connected", "Things with at least one connection, by whether the registry lists them.", []string{"listed"}, nil)
	descDevicesOffline    = prometheus.NewDesc("edgegw_devices_offline", "Registered things not connected for longer than threshold_seconds (never seen ones included).", []string{"threshold_seconds"}, nil)
)

// presenceCollector exports presence as aggregates, computed at scrape time.
type presenceCollector struct{ o *Observer }

func (c presenceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descDevicesRegistered
	ch <- descDevicesConnected
	ch <- descDevicesOffline
}

func (c presenceCollector) Collect(ch chan<- prometheus.Metric) {
	if c.o.presence == nil {
		return
	}
	devs := c.o.presence.Devices()
	counts := presence.Counts(devs)
	registered := len(devs) - counts[presence.Unlisted]
	ch <- prometheus.MustNewConstMetric(descDevicesRegistered, prometheus.GaugeValue, float64(registered))
	ch <- prometheus.MustNewConstMetric(descDevicesConnected, prometheus.GaugeValue, float64(counts[presence.Online]), "true")
	ch <- prometheus.MustNewConstMetric(descDevicesConnected, prometheus.GaugeValue, float64(counts[presence.Unlisted]), "false")
	now := time.Now()
	for _, th := range offlineThresholds {
		ch <- prometheus.MustNewConstMetric(descDevicesOffline, prometheus.GaugeValue,
			float64(presence.OfflineLonger(devs, th, now)), strconv.Itoa(int(th.Seconds())))
	}
}
