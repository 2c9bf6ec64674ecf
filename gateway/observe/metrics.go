package observe

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgegw/edgegw/bridge"
	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/gateway/broker"
	"github.com/edgegw/edgegw/gateway/clock"
)

// collector exports the observer as Prometheus metrics at scrape time.
type collector struct{ o *Observer }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("edgegw_"+name, help, labels, nil)
}

const (
	counter = prometheus.CounterValue
	gauge   = prometheus.GaugeValue
)

var descDenials = desc("denials_total", "Denied actions, by policy action.", "action")

// brokerMetrics exports the broker's counters, one line each. Adding a
// counter: a field in broker.Metrics, counted where it happens, and a line
// here.
var brokerMetrics = []struct {
	desc   *prometheus.Desc
	kind   prometheus.ValueType
	value  func(*broker.Metrics) int64
	labels []string
}{
	{desc("connects_total", "Accepted MQTT connections."), counter, func(m *broker.Metrics) int64 { return m.ConnectsAccepted.Load() }, nil},
	{desc("connects_refused_total", "Refused CONNECTs, for any reason (auth_failures_total has the reasons)."), counter, func(m *broker.Metrics) int64 { return m.ConnectsRefused.Load() }, nil},
	{desc("handshakes_pending", "TLS handshakes and CONNECTs in progress (bounded by max_pending_handshakes)."), gauge, func(m *broker.Metrics) int64 { return m.PendingHandshakes.Load() }, nil},
	{desc("handshakes_rejected_total", "Connections refused or closed before their handshake: their address's share of max_pending_handshakes, or the whole budget, was taken."), counter, func(m *broker.Metrics) int64 { return m.PendingRejected.Load() }, nil},
	{descDenials, counter, func(m *broker.Metrics) int64 { return m.DeniedConnect.Load() }, []string{"connect"}},
	{descDenials, counter, func(m *broker.Metrics) int64 { return m.DeniedPublish.Load() }, []string{"publish"}},
	{descDenials, counter, func(m *broker.Metrics) int64 { return m.DeniedSubscribe.Load() }, []string{"subscribe"}},
	{descDenials, counter, func(m *broker.Metrics) int64 { return m.DeniedReceive.Load() }, []string{"receive"}},
	{descDenials, counter, func(m *broker.Metrics) int64 { return m.DeniedRetain.Load() }, []string{"retain_publish"}},
	{desc("qos0_drops_total", "QoS 0 deliveries dropped by the broker (subscriber write queue full)."), counter, func(m *broker.Metrics) int64 { return m.DroppedQoS0.Load() }, nil},
	{desc("qos1_drops_total", "QoS 1/2 deliveries dropped by the broker (subscriber write queue full, in-flight limit reached, no free packet ID, or inflight abandoned)."), counter, func(m *broker.Metrics) int64 {
		return m.DroppedQoS1.Load() + m.InflightDropped.Load() + m.InflightFull.Load()
	}, nil},
	{desc("session_drops_total", "QoS 1/2 messages for offline persistent sessions dropped (session_max_messages/bytes, message or session expiry, clean start)."), counter, func(m *broker.Metrics) int64 { return m.SessionDropped.Load() }, nil},
	{desc("session_store_failures_total", "Failed writes of offline persistent sessions to the store (their messages stay in memory; a restart would lose them)."), counter, func(m *broker.Metrics) int64 { return m.SessionStoreFailures.Load() }, nil},
	{desc("sessions_restored_total", "Offline persistent sessions brought back from the store at start."), counter, func(m *broker.Metrics) int64 { return m.SessionsRestored.Load() }, nil},
	{desc("retained_rejected_total", "Retained messages refused by the retained-message caps."), counter, func(m *broker.Metrics) int64 { return m.RetainedRejected.Load() }, nil},
	{desc("enqueue_failures_total", "Local publications that could not be queued (publisher got no PUBACK or 0x97)."), counter, func(m *broker.Metrics) int64 { return m.EnqueueFailures.Load() }, nil},
	{desc("pipeline_full_total", "Publications that waited for a full per-client durable pipeline."), counter, func(m *broker.Metrics) int64 { return m.PipelineFull.Load() }, nil},
	{desc("policy_disconnects_total", "Clients disconnected by a reload (connect no longer allowed, thing disabled, certificate revoked or untrusted)."), counter, func(m *broker.Metrics) int64 { return m.PolicyDisconnects.Load() }, nil},
	{desc("subscriptions_dropped_total", "Subscriptions removed by a reload because the policy no longer allows them."), counter, func(m *broker.Metrics) int64 { return m.SubscriptionsDropped.Load() }, nil},
	{desc("reloads_total", "Successful reloads of trust bundles, CRLs, registry and policies."), counter, func(m *broker.Metrics) int64 { return m.Reloads.Load() }, nil},
	{desc("rule_forwards_total", "Rule outputs forwarded into a bridge route (written to the queue)."), counter, func(m *broker.Metrics) int64 { return m.RuleForwarded.Load() }, nil},
	{desc("rule_republishes_total", "Rule outputs republished on the local broker."), counter, func(m *broker.Metrics) int64 { return m.RuleRepublished.Load() }, nil},
	{desc("rule_failures_total", "Rule actions that failed (SQL error on a payload, refused republish or forward); each is audited."), counter, func(m *broker.Metrics) int64 { return m.RuleFailures.Load() }, nil},
	{desc("authorizer_denials_total", "CONNECTs and refreshes the custom authorizer denied (not authenticated, timeout, error, rate limit)."), counter, func(m *broker.Metrics) int64 { return m.AuthorizerDenied.Load() }, nil},
	{desc("authorizer_expired_total", "Connections ended at the custom authorizer's disconnectAfterInSeconds."), counter, func(m *broker.Metrics) int64 { return m.AuthorizerExpired.Load() }, nil},
	{desc("policies_broken_total", "Policy files found not loading at start or reload (what attaches them is denied)."), counter, func(m *broker.Metrics) int64 { return m.PolicyBroken.Load() }, nil},
	{desc("reload_failures_total", "Reloads that failed or were not applied in whole (config invalid, restart required, bad trust/registry/policy files)."), counter, func(m *broker.Metrics) int64 { return m.ReloadFailures.Load() }, nil},
}

var (
	descConnections     = desc("connections", "Connected MQTT clients.")
	descAuthFailures    = desc("auth_failures_total", "Refused TLS handshakes and CONNECTs, by reason.", "reason")
	descMessagesIn      = desc("messages_in_total", "Messages from local publishers written to the route's queue.", "route")
	descMessagesOut     = desc("messages_out_total", "Messages acknowledged by the upstream and removed from the route's queue.", "route")
	descQueueDepth      = desc("queue_depth", "Messages in the route's queue (not yet acknowledged upstream).", "route")
	descQueueBytes      = desc("queue_bytes", "Bytes in the route's queue.", "route")
	descQueueOldest     = desc("queue_oldest_age_seconds", "Age of the oldest queued message (0 when empty or the clock is not set).", "route")
	descDrops           = desc("drops_total", "Messages dropped or refused by the route's limits, by reason, over the queue's lifetime (persisted: kept across restarts and kill -9).", "route", "reason")
	descDeadLetters     = desc("dead_letters_total", "Messages moved to the dead letters (refused by the upstream) over the queue's lifetime (persisted).", "route")
	descQueueRejectFull = desc("queue_rejected_full_total", "Messages refused because the queue byte cap or the disk watermark was reached.")
	descUpConnected     = desc("upstream_connected", "1 while the upstream MQTT session is up.")
	descUpReconnects    = desc("upstream_reconnects_total", "Upstream connections after the first.")
	descInbound         = desc("inbound_messages_total", "Messages from the upstream, by result.", "result")
	descReloadOK        = desc("reload_success", "1 unless the last reload failed or left a change unapplied; stays 0 until a reload applies everything.")
	descRestartRequired = desc("config_restart_required", "1 while the config file has changes that only a restart applies (edgegw status names the sections).")
	descReloadTime      = desc("reload_last_timestamp_seconds", "Time of the last reload attempt (start time before the first).")
	descCertExpiry      = desc("cert_not_after_timestamp_seconds", "End of validity of the certificate (the earliest of its kind: server, ca, upstream).", "cert")
	descTPM             = desc("tpm_in_use", "1 if a key or the queue secret lives in a TPM.")
	descBuildInfo       = desc("build_info", "Build information; always 1.", "version", "commit", "goversion")
	descClockSane       = desc("clock_sane", "1 when the system clock is at or after the build date.")
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	seen := map[*prometheus.Desc]bool{}
	for _, bm := range brokerMetrics {
		if !seen[bm.desc] {
			seen[bm.desc] = true
			ch <- bm.desc
		}
	}
	for _, d := range []*prometheus.Desc{descConnections, descAuthFailures,
		descMessagesIn, descMessagesOut, descQueueDepth, descQueueBytes, descQueueOldest, descDrops,
		descDeadLetters, descQueueRejectFull, descUpConnected, descUpReconnects, descInbound,
		descReloadOK, descRestartRequired, descReloadTime, descCertExpiry, descTPM, descBuildInfo, descClockSane} {
		ch <- d
	}
	for _, d := range bridgeDescs {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	o := c.o
	m := sink(ch)
	bi := clock.GetBuildInfo()
	m.gauge(descBuildInfo, 1, bi.Version, bi.Commit, runtime.Version())
	m.gauge(descClockSane, b2f(o.clock.Sane()))
	m.gauge(descTPM, b2f(o.tpm))

	if o.broker != nil {
		m.gauge(descConnections, float64(o.broker.Clients()))
		bs := o.broker.Metrics()
		for _, bm := range brokerMetrics {
			ch <- prometheus.MustNewConstMetric(bm.desc, bm.kind, float64(bm.value(bs)), bm.labels...)
		}
	}

	o.mu.Lock()
	for _, r := range audit.Causes {
		m.counter(descAuthFailures, float64(o.authFail[r]), string(r))
	}
	rs := o.reloadStateLocked()
	m.gauge(descReloadOK, b2f(rs.OK))
	m.gauge(descRestartRequired, b2f(len(rs.RestartRequired) > 0))
	m.gauge(descReloadTime, float64(o.reloadAt.UnixNano())/1e9)
	o.mu.Unlock()

	o.collectRoutes(m)
	if o.bridge != nil {
		o.collectUpstream(m)
	}
	o.collectBridges(m)
	for _, e := range o.certExpiries() {
		if e.Error == "" {
			m.gauge(descCertExpiry, float64(e.NotAfter.Unix()), e.Cert)
		}
	}
}

// sink sends constant metrics to a Collect channel.
type sink chan<- prometheus.Metric

func (s sink) gauge(d *prometheus.Desc, v float64, lv ...string) {
	s <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
}

func (s sink) counter(d *prometheus.Desc, v float64, lv ...string) {
	s <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, lv...)
}

// collectRoutes sends the per-route queue metrics of every bridge's queue
// (route names are unique across bridges) and the queue-full rejections of all.
func (o *Observer) collectRoutes(m sink) {
	var rejectedFull uint64
	for _, l := range o.bridgeList() {
		if l.Queue == nil {
			continue
		}
		qs := l.Queue.Stats()
		rejectedFull += qs.RejectedFull
		for _, rs := range qs.Routes {
			m.counter(descMessagesIn, float64(rs.Enqueued), rs.Name)
			m.counter(descMessagesOut, float64(rs.Acked), rs.Name)
			m.gauge(descQueueDepth, float64(rs.Depth), rs.Name)
			m.gauge(descQueueBytes, float64(rs.Bytes), rs.Name)
			m.gauge(descQueueOldest, rs.OldestAge.Seconds(), rs.Name)
			m.counter(descDeadLetters, float64(rs.DeadLettered), rs.Name) // lifetime, not the dead letters held
			for _, reason := range dropReasons {                          // every reason, 0 before the first drop (metrics_ops.go)
				n := rs.Drops[reason]
				if reason == "rejected" {
					n = rs.Rejected
				}
				m.counter(descDrops, float64(n), rs.Name, reason)
			}
		}
	}
	if o.queue != nil {
		m.counter(descQueueRejectFull, float64(rejectedFull))
	}
}

// collectUpstream sends the upstream metrics of every bridge together;
// edgegw_bridge_* has them per bridge (bridges.go).
func (o *Observer) collectUpstream(m sink) {
	var sum bridge.State
	sum.Connected = true
	for _, l := range o.bridgeList() {
		if l.Bridge == nil {
			continue
		}
		st := l.Bridge.State()
		sum.Connected = sum.Connected && st.Connected
		sum.Reconnects += st.Reconnects
		sum.InboundReceived += st.InboundReceived
		sum.InboundDelivered += st.InboundDelivered
		sum.InboundDropped += st.InboundDropped
	}
	m.gauge(descUpConnected, b2f(sum.Connected))
	m.counter(descUpReconnects, float64(sum.Reconnects))
	m.counter(descInbound, float64(sum.InboundReceived), "received")
	m.counter(descInbound, float64(sum.InboundDelivered), "delivered")
	m.counter(descInbound, float64(sum.InboundDropped), "dropped")
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
