package observe

import (
	"os"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgegw/edgegw/gateway/broker"
	"github.com/edgegw/edgegw/hw"
	"github.com/edgegw/edgegw/store"
)

// The operations series (issue 20): broker-wide traffic, connections per
// listener, store capacity, route capacity, the active upstream, CRL next
// update, aggregate device-certificate expiry and the group-commit fsync
// latency. A second collector, so metrics.go keeps its shape.

var (
	descMQTTRecv       = desc("mqtt_messages_received_total", "PUBLISH packets received from local clients, by listener and QoS.", "listener", "qos")
	descMQTTSent       = desc("mqtt_messages_sent_total", "PUBLISH packets sent to local clients, by listener and QoS.", "listener", "qos")
	descMQTTRecvBytes  = desc("mqtt_received_bytes_total", "Payload bytes of the PUBLISH packets received from local clients, by listener and QoS.", "listener", "qos")
	descMQTTSentBytes  = desc("mqtt_sent_bytes_total", "Payload bytes of the PUBLISH packets sent to local clients, by listener and QoS.", "listener", "qos")
	descListenerConns  = desc("listener_connections", "Connected MQTT clients, by listener.", "listener")
	descStoreFree      = desc("store_free_bytes", "Free bytes on the queue's file system at the last commit.")
	descStoreMinFree   = desc("store_min_free_bytes", "The free-space watermark below which the queue refuses messages.")
	descStoreCapacity  = desc("store_capacity_bytes", "The queue's byte cap (store.max_bytes); absent when there is none.")
	descRouteCapBytes  = desc("route_capacity_bytes", "The route's byte limit (max_bytes); absent when unlimited.", "route")
	descRouteCapMsgs   = desc("route_capacity_messages", "The route's message limit (max_messages); absent when unlimited.", "route")
	descUpActive       = desc("upstream_active", "1 for the upstream the bridge uses now (or last used).", "upstream")
	descCRLNextUpdate  = desc("crl_next_update_timestamp_seconds", "nextUpdate of the listener's CRL (the earliest when the file holds several).", "listener")
	descDeviceEarliest = desc("device_cert_earliest_not_after_timestamp_seconds", "Earliest end of validity among the connected devices' certificates (absent with none connected).")
	descDeviceExpiring = desc("device_certs_expiring", "Connected devices whose certificate ends within 30 days.")
)

// deviceExpiryWindow is what "expiring" means for device_certs_expiring.
const deviceExpiryWindow = 30 * 24 * time.Hour

// trafficSource is what the ops collector reads from the broker beyond
// Broker; *broker.Broker has it (optional, so test fakes need not).
type trafficSource interface {
	Traffic() *broker.Traffic
	ListenerClients() map[string]int
	DeviceCertExpiry(now time.Time, within time.Duration) (time.Time, int)
}

var _ trafficSource = (*broker.Broker)(nil)

// fsyncBuckets: from a fast SSD (sub-millisecond) to a dying SD card (seconds).
var fsyncBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

func newFsyncHistogram() prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "edgegw_store_fsync_duration_seconds",
		Help:    "Duration of the queue's group-commit fsyncs (a rising tail says the storage is failing).",
		Buckets: fsyncBuckets,
	})
}

// FsyncObserved records one group-commit fsync of the queue. The gateway
// hands it to the store as its sync callback.
func (o *Observer) FsyncObserved(d time.Duration) { o.fsync.Observe(d.Seconds()) }

type opsCollector struct{ o *Observer }

func (c *opsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descMQTTRecv, descMQTTSent, descMQTTRecvBytes, descMQTTSentBytes,
		descListenerConns, descStoreFree, descStoreMinFree, descStoreCapacity, descRouteCapBytes, descRouteCapMsgs,
		descUpActive, descCRLNextUpdate, descDeviceEarliest, descDeviceExpiring} {
		ch <- d
	}
}

func (c *opsCollector) Collect(ch chan<- prometheus.Metric) {
	o := c.o
	emit := func(d *prometheus.Desc, t prometheus.ValueType, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, t, v, lv...)
	}
	if ts, ok := o.broker.(trafficSource); ok && o.broker != nil {
		for _, s := range ts.Traffic().Snapshot() {
			q := strconv.Itoa(int(s.QoS))
			emit(descMQTTRecv, counter, float64(s.Received), s.Listener, q)
			emit(descMQTTSent, counter, float64(s.Sent), s.Listener, q)
			emit(descMQTTRecvBytes, counter, float64(s.ReceivedBytes), s.Listener, q)
			emit(descMQTTSentBytes, counter, float64(s.SentBytes), s.Listener, q)
		}
		for l, n := range ts.ListenerClients() {
			emit(descListenerConns, gauge, float64(n), l)
		}
		earliest, n := ts.DeviceCertExpiry(o.clock.Now(), deviceExpiryWindow)
		if !earliest.IsZero() {
			emit(descDeviceEarliest, gauge, float64(earliest.Unix()), nil...)
		}
		emit(descDeviceExpiring, gauge, float64(n))
	}
	if o.queue != nil {
		st := o.queue.Stats()
		emit(descStoreFree, gauge, float64(st.FreeBytes))
		emit(descStoreMinFree, gauge, float64(st.MinFreeBytes))
		if st.MaxBytes > 0 {
			emit(descStoreCapacity, gauge, float64(st.MaxBytes))
		}
	}
	if b := o.cfg.Bridge; b != nil {
		for _, r := range b.Routes {
			if r.MaxBytes > 0 {
				emit(descRouteCapBytes, gauge, float64(r.MaxBytes.Bytes()), r.ID())
			}
			if r.MaxMessages > 0 {
				emit(descRouteCapMsgs, gauge, float64(r.MaxMessages), r.ID())
			}
		}
	}
	if o.bridge != nil {
		if st := o.bridge.State(); st.Upstream != "" {
			emit(descUpActive, gauge, 1, st.Upstream)
		}
	}
	for _, l := range o.cfg.Listeners {
		if l.TLS == nil || l.TLS.CRL == "" {
			continue
		}
		if next, err := o.crlNextUpdate(l.TLS.CRL); err == nil && !next.IsZero() {
			emit(descCRLNextUpdate, gauge, float64(next.Unix()), l.Name)
		}
	}
}

// dropReasons are every reason edgegw_drops_total reports for a route, so
// each series exists at 0 before the first drop.
var dropReasons = []string{store.ReasonOverflowBytes, store.ReasonOverflowCount, store.ReasonMaxAge, store.ReasonPurged, "rejected"}

// crlNextUpdate is the earliest nextUpdate of the CRLs in path (re-read
// only when the file changes).
func (o *Observer) crlNextUpdate(path string) (time.Time, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}, err
	}
	key := "crl:" + path
	o.certMu.Lock()
	defer o.certMu.Unlock()
	if c, ok := o.certs[key]; ok && c.mod.Equal(fi.ModTime()) && c.size == fi.Size() {
		return c.notAfter, c.err
	}
	c := certFile{mod: fi.ModTime(), size: fi.Size()}
	c.notAfter, c.err = earliestNextUpdate(path)
	o.certs[key] = c
	return c.notAfter, c.err
}

// earliestNextUpdate reads path as the listener does (hw.ReadCRLs, the
// same errors) and returns the earliest nextUpdate of its CRLs.
func earliestNextUpdate(path string) (time.Time, error) {
	rls, err := hw.ReadCRLs(path)
	if err != nil {
		return time.Time{}, err
	}
	var next time.Time
	for _, rl := range rls {
		if !rl.NextUpdate.IsZero() && (next.IsZero() || rl.NextUpdate.Before(next)) {
			next = rl.NextUpdate
		}
	}
	return next, nil
}
