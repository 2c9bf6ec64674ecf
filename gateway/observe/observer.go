package observe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/edgegw/edgegw/bridge"
	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/gateway/broker"
	"github.com/edgegw/edgegw/gateway/broker/listen"
	"github.com/edgegw/edgegw/gateway/clock"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/renew"
	"github.com/edgegw/edgegw/hw"
	"github.com/edgegw/edgegw/store"
)

// Broker is what the observer reads from the local broker; *broker.Broker
// satisfies it.
type Broker interface {
	Metrics() *broker.Metrics          // the counters (brokerMetrics in metrics.go)
	Clients() int                      // connected clients
	Listeners() int                    // listeners serving
	Devices() []broker.ConnectedDevice // connected clients, for status
	Addr(listener string) net.Addr     // bound address of a listener (nil if none)
}

// Queue is what the observer reads from the durable queue (*store.Queue).
// A queue may also offer Err() error (a failure at runtime) for /healthz.
type Queue interface{ Stats() store.Stats }

// Bridge is what the observer reads from the upstream bridge (*bridge.Bridge).
type Bridge interface{ State() bridge.State }

// Sources are what a running gateway hands the observer; Queue and Bridge
// are nil without a bridge section.
type Sources struct {
	Broker  Broker
	Queue   Queue
	Bridge  Bridge
	Bridges []BridgeSource // every bridge with its queue (bridges.go); Queue and Bridge then may be nil
	Shadow  Shadows        // nil without a shadows section (shadow.go)
	// Presence is nil when the gateway keeps no device presence (presence.go).
	Presence Presence
	// Audit records the live queue operations (queue_ops.go); nil: not recorded.
	Audit Auditor
	// Things answers the status page's operator check (status_page.go).
	Things ThingTypes
	// Enrol gives the enrolment figures of status (enrol.go); nil without an enrolment section.
	Enrol EnrolSource
}

// What the gateway hands in fits (compile-time check).
var (
	_ Broker = (*broker.Broker)(nil)
	_ Queue  = (*store.Queue)(nil)
	_ Bridge = (*bridge.Bridge)(nil)
)

// maxRecentDenials is the size of the recent-denials ring (edgegw status).
const maxRecentDenials = 50

// Observer holds what metrics and the admin socket report. Nothing is
// counted on the message path for it: the collector and the status handler
// read the broker's atomic counters, the queue's Stats and the bridge's State
// when asked (a scrape, an `edgegw status`). Only audit events (connects,
// refusals, denials, reloads) pass through Record, which keeps a few counters
// and a ring of recent denials.
type Observer struct {
	cfg     *config.Config
	log     *slog.Logger
	clock   *clock.Clock
	started time.Time

	// Sources, set by start; queue and bridge are nil when not running.
	broker Broker
	queue  Queue
	bridge Bridge
	shadow Shadows
	links  []BridgeSource // every bridge (bridges.go)
	tpm    bool

	presence Presence    // presence.go; nil: none
	auditor  Auditor     // queue_ops.go; nil: none
	things   ThingTypes  // status_page.go
	enrolSrc EnrolSource // enrol.go; nil: no enrolment
	guard    *pageGuard  // status_page.go; set by startMetrics

	mu          sync.Mutex
	authFail    map[audit.Cause]uint64
	enrol       map[string]uint64 // enrolment events (enrol.go)
	denials     [maxRecentDenials]audit.Event
	denialN     int                   // total recorded; ring index = denialN % max
	since       map[string]sinceEntry // client ID and remote address -> connect time
	sinceGen    uint64                // prune generation (pruneSince)
	pruneAt     int                   // prune when since grows past this (and 4*maxSince)
	pruning     bool
	reloadOK    bool
	reloadAt    time.Time
	reloadError string
	// SIGHUP config reload state (reload.go).
	cfgReloadErr    string
	restartRequired []string
	closed          bool
	queueErr        error // the bridge stopped on a queue error (queueFailed)

	fsync prometheus.Histogram // group-commit fsync latency (metrics_ops.go)

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

// New returns an observer for cfg (metrics address, admin socket, the
// certificates and keys it names); it serves nothing until Start.
func New(cfg *config.Config, log *slog.Logger) *Observer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Observer{
		cfg: cfg, log: log.With("component", "observe"), clock: clock.Process(),
		started: time.Now(), authFail: map[audit.Cause]uint64{}, enrol: map[string]uint64{}, since: map[string]sinceEntry{},
		reloadOK: true, reloadAt: time.Now(), certs: map[string]certFile{}, fsync: newFsyncHistogram(),
	}
}

// Record is the audit tap (audit.Options.OnEvent): called for every event
// before rate limiting, on the connect/deny path only, never per message.
func (o *Observer) Record(ev audit.Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	o.mu.Lock()
	prune := false
	switch ev.Event {
	case audit.EventConnect:
		o.since[ev.ClientID+"\x00"+ev.Remote] = sinceEntry{at: ev.Time, gen: o.sinceGen}
		if len(o.since) > max(o.pruneAt, 4*maxSince) && !o.pruning {
			o.pruning, prune = true, true
			o.sinceGen++
		}
	case audit.EventHandshakeFailed, audit.EventConnectRefused:
		cause := ev.Cause
		switch {
		case cause != "":
		case ev.Event == audit.EventHandshakeFailed:
			cause = audit.CauseTLS
		default:
			cause = audit.CauseUnknownThing
		}
		o.authFail[cause]++
	case audit.EventDeny:
		o.denials[o.denialN%maxRecentDenials] = ev
		o.denialN++
	case audit.EventReload:
		o.reloadOK, o.reloadAt, o.reloadError = true, ev.Time, ""
	case audit.EventReloadFailed:
		o.reloadOK, o.reloadAt, o.reloadError = false, ev.Time, ev.Reason
	default:
		o.countEnrolLocked(ev.Event) // enrol.go
	}
	o.mu.Unlock()
	if prune {
		o.pruneSince()
	}
}

// maxSince bounds the connect-time map: entries of clients gone are pruned
// against the broker's client list when it grows past 4x this (and past
// twice what the last prune kept, so a site with more clients than that
// does not list them at every connect).
const maxSince = 1024

// sinceEntry is a client's connect time; gen is the prune generation it
// was recorded in.
type sinceEntry struct {
	at  time.Time
	gen uint64
}

// pruneSince drops the connect times of clients no longer connected. The
// broker's client list is taken without the observer's lock, so recorders
// (connects, refusals, denials) do not wait for it; what was recorded since
// the prune began (a newer generation) is kept. Record set o.pruning.
func (o *Observer) pruneSince() {
	var live map[string]bool
	if o.broker != nil {
		devs := o.broker.Devices()
		live = make(map[string]bool, len(devs))
		for _, d := range devs {
			live[d.ClientID+"\x00"+d.Remote] = true
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.pruning = false
	if live != nil {
		for k, e := range o.since {
			if e.gen < o.sinceGen && !live[k] {
				delete(o.since, k)
			}
		}
	}
	o.pruneAt = 2 * len(o.since)
}

// recentDenials returns the ring, newest first.
func (o *Observer) recentDenials() []audit.Event {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := min(o.denialN, maxRecentDenials)
	out := make([]audit.Event, 0, n)
	for i := range n {
		out = append(out, o.denials[(o.denialN-1-i)%maxRecentDenials])
	}
	return out
}

// Start serves /metrics, /healthz and the admin socket for the running
// gateway's sources. It is called once listeners are up and the queue is open.
func (o *Observer) Start(src Sources) error {
	o.setSources(src) // bridges.go
	o.shadow = src.Shadow
	o.presence, o.auditor, o.things, o.enrolSrc = src.Presence, src.Audit, src.Things, src.Enrol
	o.tpm = usesTPM(o.cfg)
	o.clock.SetLogger(o.log)
	o.clock.Now() // warn at start, not at the first handshake, when the clock is wrong
	if err := o.startMetrics(); err != nil {
		return err
	}
	if err := o.startAdmin(); err != nil {
		o.Stop()
		return err
	}
	return nil
}

// Stop closes the metrics endpoint and the admin socket.
func (o *Observer) Stop() {
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
	if o.guard != nil && o.guard.key != nil {
		_ = o.guard.key.Close()
	}
}

// MetricsAddr is the bound metrics address (nil when disabled or not started).
func (o *Observer) MetricsAddr() net.Addr {
	if o == nil || o.metricsLn == nil {
		return nil
	}
	return o.metricsLn.Addr()
}

func (o *Observer) startMetrics() error {
	addr := o.cfg.Metrics.Address
	if addr == "" {
		return nil
	}
	reg := prometheus.NewRegistry() // private: never the global one
	for _, c := range []prometheus.Collector{&collector{o: o}, &opsCollector{o: o}, o.fsync,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("registering metrics: %w", err)
		}
	}
	if err := reg.Register(shadowCollector{o: o}); err != nil {
		return fmt.Errorf("registering shadow metrics: %w", err)
	}
	if err := reg.Register(enrolCollector{o: o}); err != nil {
		return fmt.Errorf("registering enrolment metrics: %w", err)
	}
	if err := reg.Register(presenceCollector{o: o}); err != nil {
		return fmt.Errorf("registering presence metrics: %w", err)
	}
	reg.MustRegister(queueOpenCollector{o: o}) // queue_open.go
	reg.MustRegister(identityCollector{o: o})  // identity.go
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(o.log.Handler(), slog.LevelWarn)}))
	mux.HandleFunc("GET /healthz", o.serveHealth)
	mux.HandleFunc("GET /{$}", o.serveStatusPage) // status_page.go
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics.address %s: %w (another edgegw running? set metrics.address, or \"\" to disable)", addr, err)
	}
	tln, err := o.metricsTLS(ln) // status_page.go
	if err != nil {
		ln.Close()
		return err
	}
	ln = tln
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

// QueueFailed records that the bridge stopped on a queue error; /healthz and
// the watchdog report it until the gateway stops.
func (o *Observer) QueueFailed(err error) {
	if err == nil {
		return
	}
	o.mu.Lock()
	o.queueErr = err
	o.mu.Unlock()
}

func (o *Observer) health() Health {
	h := Health{Status: "ok", Queue: "none", Upstream: "none"}
	o.mu.Lock()
	closed, qerr := o.closed, o.queueErr
	o.mu.Unlock()
	if o.broker != nil && !closed {
		h.Listeners = o.broker.Listeners()
	}
	if len(o.bridgeList()) > 0 {
		for _, l := range o.bridgeList() {
			if qf, ok := l.Queue.(queueFailer); ok && qerr == nil {
				qerr = qf.Err()
			}
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
	if len(o.bridgeList()) > 0 {
		h.Upstream = "connected" // every bridge; down when one is
		for _, l := range o.bridgeList() {
			if l.Bridge != nil && !l.Bridge.State().Connected {
				h.Upstream = "down"
			}
		}
	}
	if closed || h.Listeners == 0 || (h.Queue != "open" && h.Queue != "none") {
		h.Status = "unavailable"
	}
	return h
}

// Healthy is health as an error, for the systemd watchdog (Lifecycle.Ready).
func (o *Observer) Healthy() error {
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
func (o *Observer) serveHealth(w http.ResponseWriter, _ *http.Request) {
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
	for _, b := range cfg.BridgeList() {
		if b.TLS != nil {
			uris = append(uris, b.TLS.Key)
		}
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
func (o *Observer) certExpiries() []CertExpiry {
	type src struct{ kind, path string }
	var srcs []src
	for _, l := range o.cfg.Listeners {
		if l.TLS != nil {
			srcs = append(srcs, src{"server", l.TLS.Cert}, src{"ca", l.TLS.CA})
		}
	}
	for _, b := range o.cfg.BridgeList() { // per kind the earliest: every bridge's certificate counts
		if b.TLS != nil && b.TLS.Cert != "" {
			// The certificate in use: a renewed one when newer (renew.Current).
			id, _ := renew.Current(o.cfg.StateDir, b.BridgeName(), b.TLS.Cert, b.TLS.Key)
			srcs = append(srcs, src{"upstream", id.Cert})
		}
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
func (o *Observer) readCert(path string) certFile {
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

// earliestNotAfter is the earliest end of validity of the certificates in a
// PEM file.
func earliestNotAfter(path string) (time.Time, error) {
	certs, err := listen.ReadCertChain(path)
	if err != nil {
		return time.Time{}, err
	}
	na := certs[0].NotAfter
	for _, c := range certs[1:] {
		if c.NotAfter.Before(na) {
			na = c.NotAfter
		}
	}
	return na, nil
}
