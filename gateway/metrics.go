package gateway

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/edgegw/edgegw/bridge"
	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/gateway/broker"
	"github.com/edgegw/edgegw/gateway/clock"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/hw"
	"github.com/edgegw/edgegw/store"
)

// Observability: the Prometheus endpoint (this file) and the admin socket
// (admin.go) read the same observer. Nothing is counted on the message path
// for them: the collector and the status handler read the broker's atomic
// counters, the queue's Stats and the bridge's State when asked (a scrape, an
// `edgegw status`). Only audit events (connects, refusals, denials, reloads)
// pass through observer.record, which keeps a few counters and a ring of
// recent denials.

// The observer's sources: small interfaces so tests can feed fakes.
type (
	brokerSource interface {
		Stats() broker.Stats
		Devices() []broker.ConnectedDevice
	}
	queueSource  interface{ Stats() store.Stats }
	bridgeSource interface{ State() bridge.State }
)

var (
	_ brokerSource = (*broker.Broker)(nil)
	_ queueSource  = (*store.Queue)(nil)
	_ bridgeSource = (*bridge.Bridge)(nil)
)

// Authentication failure reasons (label values of auth_failures_total).
var authFailureReasons = []string{"no_certificate", "unknown_ca", "expired", "revoked", "handshake_timeout", "tls", "not_authorized", "bad_password", "unknown_thing"}

// classifyAuthFailure maps an audit handshake_failed/connect_refused reason
// to a bounded label value.
func classifyAuthFailure(ev audit.Event) string {
	r := strings.ToLower(ev.Reason)
	switch {
	case strings.Contains(r, "revoked"):
		return "revoked"
	case ev.Event == audit.EventHandshakeFailed && (strings.Contains(r, "timeout") || strings.Contains(r, "deadline")):
		return "handshake_timeout"
	case strings.Contains(r, "expired") || strings.Contains(r, "not yet valid"):
		return "expired"
	case strings.Contains(r, "unknown authority") || strings.Contains(r, "unknown certificate authority") || strings.Contains(r, "no longer trusted"):
		return "unknown_ca"
	case strings.Contains(r, "didn't provide a certificate") || strings.Contains(r, "no certificate") || strings.Contains(r, "certificate required"):
		return "no_certificate"
	case ev.Event == audit.EventHandshakeFailed:
		return "tls"
	case strings.Contains(r, "password"):
		return "bad_password"
	case strings.Contains(r, "iot:connect"):
		return "not_authorized"
	}
	return "unknown_thing"
}

// maxRecentDenials is the size of the recent-denials ring (edgegw status).
const maxRecentDenials = 50

// observer holds what metrics and the admin socket report.
type observer struct {
	cfg     *config.Config
	log     *slog.Logger
	clock   *clock.Clock
	started time.Time

	// Sources, set by start; queue and bridge are nil when not running.
	broker brokerSource
	queue  queueSource
	bridge bridgeSource
	tpm    bool

	mu          sync.Mutex
	authFail    map[string]uint64
	denials     [maxRecentDenials]audit.Event
	denialN     int // total recorded; ring index = denialN % max
	since       map[string]time.Time
	reloadOK    bool
	reloadAt    time.Time
	reloadError string
	closed      bool
	queueErr    error // the bridge stopped on a queue error (queueFailed)

	certMu sync.Mutex
	certs  map[string]certFile // path -> parsed, by modification time

	metricsSrv *http.Server
	metricsLn  net.Listener
	admin      *adminServer
	wg         sync.WaitGroup
}

type certFile struct {
	mod      time.Time
	size     int64
	notAfter time.Time
	err      error
}

func (g *Gateway) newObserver() *observer {
	return &observer{
		cfg: g.cfg, log: g.log.With("component", "observe"), clock: clock.Process(),
		started: time.Now(), authFail: map[string]uint64{}, since: map[string]time.Time{},
		reloadOK: true, reloadAt: time.Now(), certs: map[string]certFile{},
	}
}

// record is the audit tap (audit.Options.OnEvent): called for every event
// before rate limiting, on the connect/deny path only, never per message.
func (o *observer) record(ev audit.Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	switch ev.Event {
	case audit.EventConnect:
		o.since[ev.ClientID+"\x00"+ev.Remote] = ev.Time
		if len(o.since) > 4*maxSince {
			o.pruneSinceLocked()
		}
	case audit.EventHandshakeFailed, audit.EventConnectRefused:
		o.authFail[classifyAuthFailure(ev)]++
	case audit.EventDeny:
		o.denials[o.denialN%maxRecentDenials] = ev
		o.denialN++
	case audit.EventReload:
		o.reloadOK, o.reloadAt, o.reloadError = true, ev.Time, ""
	case audit.EventReloadFailed:
		o.reloadOK, o.reloadAt, o.reloadError = false, ev.Time, ev.Reason
	}
}

// maxSince bounds the connect-time map: entries of clients gone are pruned
// against the broker's client list when it grows past 4x this.
const maxSince = 1024

func (o *observer) pruneSinceLocked() {
	if o.broker == nil {
		return
	}
	live := map[string]bool{}
	for _, d := range o.broker.Devices() {
		live[d.ClientID+"\x00"+d.Remote] = true
	}
	for k := range o.since {
		if !live[k] {
			delete(o.since, k)
		}
	}
}

// recentDenials returns the ring, newest first.
func (o *observer) recentDenials() []audit.Event {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := min(o.denialN, maxRecentDenials)
	out := make([]audit.Event, 0, n)
	for i := range n {
		out = append(out, o.denials[(o.denialN-1-i)%maxRecentDenials])
	}
	return out
}

// start serves /metrics, /healthz and the admin socket for the running
// gateway r. It is called once listeners are up and the queue is open.
func (o *observer) start(r *running) error {
	o.broker = r.broker
	if r.up != nil {
		if r.up.queue != nil {
			o.queue = r.up.queue
		}
		if r.up.bridge != nil {
			o.bridge = r.up.bridge
		}
	}
	o.tpm = usesTPM(o.cfg)
	o.clock.SetLogger(o.log)
	o.clock.Now() // warn at start, not at the first handshake, when the clock is wrong
	if err := o.startMetrics(); err != nil {
		return err
	}
	if err := o.startAdmin(); err != nil {
		o.stop()
		return err
	}
	return nil
}

func (o *observer) stop() {
	if o == nil {
		return
	}
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
	if o.metricsSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = o.metricsSrv.Shutdown(ctx)
		cancel()
	}
	if o.admin != nil {
		o.admin.close()
	}
	o.wg.Wait()
}

// MetricsAddr is the bound metrics address (nil when disabled or not running).
func (g *Gateway) MetricsAddr() net.Addr {
	if g.run == nil || g.run.obs == nil || g.run.obs.metricsLn == nil {
		return nil
	}
	return g.run.obs.metricsLn.Addr()
}

func (o *observer) startMetrics() error {
	addr := o.cfg.Metrics.Address
	if addr == "" {
		return nil
	}
	reg := prometheus.NewRegistry() // private: never the global one
	if err := reg.Register(&collector{o: o}); err != nil {
		return fmt.Errorf("registering metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(o.log.Handler(), slog.LevelWarn)}))
	mux.HandleFunc("GET /healthz", o.serveHealth)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics.address %s: %w (another edgegw running? set metrics.address, or \"\" to disable)", addr, err)
	}
	o.metricsLn = ln
	o.metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		if err := o.metricsSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			o.log.Error("metrics endpoint stopped", "err", err)
		}
	}()
	o.log.Info("metrics endpoint", "address", ln.Addr().String())
	return nil
}

// Health is the /healthz body.
type Health struct {
	Status    string `json:"status"` // ok | unavailable
	Listeners int    `json:"listeners"`
	Queue     string `json:"queue"`    // open | failed | closed | none (no store: local broker only)
	Upstream  string `json:"upstream"` // connected | down | none (no bridge)
	Error     string `json:"error,omitempty"`
}

// queueFailer is what a queue may offer to report a failure at runtime (a
// write error, closed under the gateway): nil while it takes messages. It is
// optional so that health needs nothing more from store than Stats.
type queueFailer interface{ Err() error }

// queueFailed records that the bridge stopped on a queue error; /healthz and
// the watchdog report it until the gateway stops.
func (o *observer) queueFailed(err error) {
	if err == nil {
		return
	}
	o.mu.Lock()
	o.queueErr = err
	o.mu.Unlock()
}

func (o *observer) health() Health {
	h := Health{Status: "ok", Queue: "none", Upstream: "none"}
	o.mu.Lock()
	closed, qerr := o.closed, o.queueErr
	o.mu.Unlock()
	if o.broker != nil && !closed {
		h.Listeners = o.broker.Stats().Listeners
	}
	if o.queue != nil {
		if qf, ok := o.queue.(queueFailer); ok && qerr == nil {
			qerr = qf.Err()
		}
		switch {
		case closed:
			h.Queue = "closed"
		case qerr != nil:
			h.Queue, h.Error = "failed", qerr.Error()
		default:
			h.Queue = "open"
		}
	}
	if o.bridge != nil {
		h.Upstream = "down"
		if o.bridge.State().Connected {
			h.Upstream = "connected"
		}
	}
	if closed || h.Listeners == 0 || (h.Queue != "open" && h.Queue != "none") {
		h.Status = "unavailable"
	}
	return h
}

// healthy is health as an error, for the systemd watchdog (Lifecycle.Ready).
func (o *observer) healthy() error {
	h := o.health()
	if h.Status == "ok" {
		return nil
	}
	if h.Error != "" {
		return fmt.Errorf("gateway unavailable: queue %s: %s", h.Queue, h.Error)
	}
	return fmt.Errorf("gateway unavailable: listeners %d, queue %s", h.Listeners, h.Queue)
}

// serveHealth: 200 when listeners are up and the queue is open, else 503.
// The upstream state is reported but does not fail the check: an outage is
// what the queue is for.
func (o *observer) serveHealth(w http.ResponseWriter, _ *http.Request) {
	h := o.health()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if h.Status != "ok" {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(h)
}

// usesTPM reports whether a key or the queue secret of cfg lives in a TPM.
func usesTPM(cfg *config.Config) bool {
	uris := []string{cfg.Store.EncryptionKey}
	for _, l := range cfg.Listeners {
		if l.TLS != nil {
			uris = append(uris, l.TLS.Key)
		}
	}
	if cfg.Bridge != nil && cfg.Bridge.TLS != nil {
		uris = append(uris, cfg.Bridge.TLS.Key)
	}
	for _, u := range uris {
		switch {
		case strings.HasPrefix(u, "tpm:"), strings.HasPrefix(u, "tpm-sealed:"):
			return true
		case u == "auto":
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			c, err := hw.Auto(ctx, hw.WithStateDir(cfg.StateDir))
			cancel()
			if err == nil && strings.HasPrefix(c.URI, "tpm:") {
				return true
			}
		}
	}
	return false
}

// CertExpiry is one certificate's end of validity, for metrics and status.
type CertExpiry struct {
	Cert     string    `json:"cert"` // server | upstream | ca
	File     string    `json:"file"`
	NotAfter time.Time `json:"not_after,omitzero"`
	Days     float64   `json:"days"`
	Error    string    `json:"error,omitempty"`
}

// certExpiries reads the certificates the config names (re-read only when a
// file changes): the listeners' server certificates and CA bundles, and the
// gateway's upstream certificate. Per kind, the earliest expiry counts.
func (o *observer) certExpiries() []CertExpiry {
	type src struct{ kind, path string }
	var srcs []src
	for _, l := range o.cfg.Listeners {
		if l.TLS != nil {
			srcs = append(srcs, src{"server", l.TLS.Cert}, src{"ca", l.TLS.CA})
		}
	}
	if b := o.cfg.Bridge; b != nil && b.TLS != nil && b.TLS.Cert != "" {
		srcs = append(srcs, src{"upstream", b.TLS.Cert})
	}
	now := o.clock.Now()
	byKind := map[string]CertExpiry{}
	var order []string
	for _, s := range srcs {
		cf := o.readCert(s.path)
		e := CertExpiry{Cert: s.kind, File: s.path, NotAfter: cf.notAfter}
		if cf.err != nil {
			e.Error = cf.err.Error()
		} else {
			e.Days = cf.notAfter.Sub(now).Hours() / 24
		}
		old, seen := byKind[s.kind]
		if !seen {
			order = append(order, s.kind)
		}
		if !seen || (e.Error == "" && (old.Error != "" || e.NotAfter.Before(old.NotAfter))) {
			byKind[s.kind] = e
		}
	}
	out := make([]CertExpiry, 0, len(order))
	for _, k := range order {
		out = append(out, byKind[k])
	}
	return out
}

// readCert returns the earliest NotAfter of the certificates in path.
func (o *observer) readCert(path string) certFile {
	fi, err := os.Stat(path)
	if err != nil {
		return certFile{err: err}
	}
	o.certMu.Lock()
	defer o.certMu.Unlock()
	if c, ok := o.certs[path]; ok && c.mod.Equal(fi.ModTime()) && c.size == fi.Size() {
		return c
	}
	c := certFile{mod: fi.ModTime(), size: fi.Size()}
	c.notAfter, c.err = earliestNotAfter(path)
	o.certs[path] = c
	return c
}

// earliestNotAfter reads every CERTIFICATE block of a PEM file.
func earliestNotAfter(path string) (time.Time, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return time.Time{}, err
	}
	var na time.Time
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		x, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return time.Time{}, fmt.Errorf("parsing certificate in %q: %w", path, err)
		}
		if na.IsZero() || x.NotAfter.Before(na) {
			na = x.NotAfter
		}
	}
	if na.IsZero() {
		return na, fmt.Errorf("%q: no CERTIFICATE PEM block", path)
	}
	return na, nil
}

// collector exports the observer as Prometheus metrics at scrape time.
type collector struct{ o *observer }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("edgegw_"+name, help, labels, nil)
}

var (
	descConnections      = desc("connections", "Connected MQTT clients.")
	descConnects         = desc("connects_total", "Accepted MQTT connections.")
	descAuthFailures     = desc("auth_failures_total", "Refused TLS handshakes and CONNECTs, by reason.", "reason")
	descDenials          = desc("denials_total", "Denied actions, by policy action.", "action")
	descMessagesIn       = desc("messages_in_total", "Messages from local publishers written to the route's queue.", "route")
	descMessagesOut      = desc("messages_out_total", "Messages acknowledged by the upstream and removed from the route's queue.", "route")
	descQueueDepth       = desc("queue_depth", "Messages in the route's queue (not yet acknowledged upstream).", "route")
	descQueueBytes       = desc("queue_bytes", "Bytes in the route's queue.", "route")
	descQueueOldest      = desc("queue_oldest_age_seconds", "Age of the oldest queued message (0 when empty or the clock is not set).", "route")
	descDrops            = desc("drops_total", "Messages dropped or refused by the route's limits, by reason, over the queue's lifetime (persisted: kept across restarts and kill -9).", "route", "reason")
	descDeadLetters      = desc("dead_letters_total", "Messages moved to the dead letters (refused by the upstream) over the queue's lifetime (persisted).", "route")
	descQueueRejectFull  = desc("queue_rejected_full_total", "Messages refused because the queue byte cap or the disk watermark was reached.")
	descEnqueueFailures  = desc("enqueue_failures_total", "Local publications that could not be queued (publisher got no PUBACK or 0x97).")
	descUpConnected      = desc("upstream_connected", "1 while the upstream MQTT session is up.")
	descUpReconnects     = desc("upstream_reconnects_total", "Upstream connections after the first.")
	descInbound          = desc("inbound_messages_total", "Messages from the upstream, by result.", "result")
	descReloadOK         = desc("reload_success", "1 if the last reload succeeded (or none happened since start).")
	descReloadTime       = desc("reload_last_timestamp_seconds", "Time of the last reload attempt (start time before the first).")
	descCertExpiry       = desc("cert_expiry_days", "Days until the certificate expires (negative: expired).", "cert")
	descTPM              = desc("tpm_in_use", "1 if a key or the queue secret lives in a TPM.")
	descQoS0Drops        = desc("qos0_drops_total", "QoS 0 deliveries dropped by the broker (subscriber write queue full).")
	descQoS1Drops        = desc("qos1_drops_total", "QoS 1/2 deliveries dropped by the broker (subscriber write queue full or inflight abandoned).")
	descBuildInfo        = desc("build_info", "Build information; always 1.", "version", "commit", "goversion")
	descClockSane        = desc("clock_sane", "1 when the system clock is at or after the build date.")
	descHandshakePending = desc("handshakes_rejected_total", "Connections closed because max_pending_handshakes was reached.")
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConnections, descConnects, descAuthFailures, descDenials,
		descMessagesIn, descMessagesOut, descQueueDepth, descQueueBytes, descQueueOldest, descDrops,
		descDeadLetters, descQueueRejectFull, descEnqueueFailures, descUpConnected, descUpReconnects, descInbound,
		descReloadOK, descReloadTime, descCertExpiry, descTPM, descQoS0Drops, descQoS1Drops, descBuildInfo,
		descClockSane, descHandshakePending} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	o := c.o
	gauge := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
	}
	counter := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, lv...)
	}
	bi := clock.GetBuildInfo()
	gauge(descBuildInfo, 1, bi.Version, bi.Commit, runtime.Version())
	gauge(descClockSane, b2f(o.clock.Sane()))
	gauge(descTPM, b2f(o.tpm))

	if o.broker != nil {
		s := o.broker.Stats()
		gauge(descConnections, float64(s.Connections))
		counter(descConnects, float64(s.ConnectsAccepted))
		counter(descHandshakePending, float64(s.PendingRejected))
		for _, a := range []struct {
			action string
			n      int64
		}{{"connect", s.DeniedConnect}, {"publish", s.DeniedPublish}, {"subscribe", s.DeniedSubscribe},
			{"receive", s.DeniedReceive}, {"retain_publish", s.DeniedRetain}} {
			counter(descDenials, float64(a.n), a.action)
		}
		counter(descQoS0Drops, float64(s.DroppedQoS0))
		counter(descQoS1Drops, float64(s.DroppedQoS1+s.InflightDropped))
		counter(descEnqueueFailures, float64(s.EnqueueFailures))
	}

	o.mu.Lock()
	for _, r := range authFailureReasons {
		counter(descAuthFailures, float64(o.authFail[r]), r)
	}
	gauge(descReloadOK, b2f(o.reloadOK))
	gauge(descReloadTime, float64(o.reloadAt.UnixNano())/1e9)
	o.mu.Unlock()

	if o.queue != nil {
		qs := o.queue.Stats()
		for _, rs := range qs.Routes {
			counter(descMessagesIn, float64(rs.Enqueued), rs.Name)
			counter(descMessagesOut, float64(rs.Acked), rs.Name)
			gauge(descQueueDepth, float64(rs.Depth), rs.Name)
			gauge(descQueueBytes, float64(rs.Bytes), rs.Name)
			gauge(descQueueOldest, rs.OldestAge.Seconds(), rs.Name)
			counter(descDeadLetters, float64(rs.DeadLettered), rs.Name) // lifetime, not the dead letters held
			for reason, n := range rs.Drops {
				counter(descDrops, float64(n), rs.Name, reason)
			}
			if rs.Rejected > 0 {
				counter(descDrops, float64(rs.Rejected), rs.Name, "rejected")
			}
		}
		counter(descQueueRejectFull, float64(qs.RejectedFull))
	}
	if o.bridge != nil {
		st := o.bridge.State()
		gauge(descUpConnected, b2f(st.Connected))
		counter(descUpReconnects, float64(st.Reconnects))
		counter(descInbound, float64(st.InboundReceived), "received")
		counter(descInbound, float64(st.InboundDelivered), "delivered")
		counter(descInbound, float64(st.InboundDropped), "dropped")
	}
	for _, e := range o.certExpiries() {
		if e.Error == "" {
			gauge(descCertExpiry, e.Days, e.Cert)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
