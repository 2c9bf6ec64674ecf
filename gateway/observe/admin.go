package observe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/edgegw/edgegw/bridge"
	"github.com/edgegw/edgegw/gateway/broker"
	"github.com/edgegw/edgegw/gateway/clock"
	"github.com/edgegw/edgegw/gateway/renew"
)

// The admin socket: HTTP/1.1 over a UNIX socket (admin.socket, default
// /run/edgegw/admin.sock, mode 0660, so members of the daemon's group may ask).
// Requests (all GET, JSON responses):
//
//	GET /status       Status: version, uptime, site, listeners, devices,
//	                  upstream, per-route queue, recent denials, cert expiry
//	GET /healthz      Health (as on the metrics port)
//	GET /queue/stats  store.Stats of the running queue (404 without a queue);
//	                  ?bridge=NAME: that bridge's queue
//	GET /devices      DevicesList: presence of every registered thing
//	                  (?state=online|offline|never_seen|unlisted|not_connected, ?type=T)
//
// Any HTTP client can speak it (curl --unix-socket /run/edgegw/admin.sock
// http://edgegw/status); `edgegw status` uses AdminGet.

// Status is the body of GET /status.
type Status struct {
	Version   string            `json:"version"`
	Commit    string            `json:"commit"`
	Site      string            `json:"site"`
	PID       int               `json:"pid"`
	Started   time.Time         `json:"started"`
	Uptime    float64           `json:"uptime_seconds"`
	ClockSane bool              `json:"clock_sane"`
	Health    Health            `json:"health"`
	Listeners []ListenerStatus  `json:"listeners"`
	Devices   DevicesStatus     `json:"devices"`
	Presence  *PresenceStatus   `json:"presence,omitempty"`  // nil: no presence kept
	Upstream  *UpstreamStatus   `json:"upstream,omitempty"`  // nil: no bridge
	Queue     *QueueStatus      `json:"queue,omitempty"`     // nil: no queue
	Shadows   *ShadowStatus     `json:"shadows,omitempty"`   // nil: no shadows (shadow.go)
	Enrolment *EnrolStatus      `json:"enrolment,omitempty"` // nil: no enrolment section (enrol.go)
	Bridges   []BridgeStatus    `json:"bridges,omitempty"`   // every bridge (Upstream and Queue: the first's)
	Denials   []DenialStatus    `json:"recent_denials"`
	Certs     []CertExpiry      `json:"certificates"`
	Reload    ReloadStatus      `json:"reload"`
	Counters  map[string]uint64 `json:"auth_failures"`
	Identity  []renew.State     `json:"identity,omitempty"` // bridges with tls.renew (identity.go)
}

// ListenerStatus is one configured listener.
type ListenerStatus struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	TLS     bool   `json:"tls"`
}

// DevicesStatus lists the connected devices.
type DevicesStatus struct {
	Count     int                      `json:"count"`
	Connected []broker.ConnectedDevice `json:"connected"`
}

// UpstreamStatus is the bridge's state.
type UpstreamStatus struct {
	Connected      bool      `json:"connected"`
	URL            string    `json:"url"`
	ConnectedSince time.Time `json:"connected_since,omitzero"`
	LastError      string    `json:"last_error,omitempty"`
	Reconnects     uint64    `json:"reconnects"`
	Sent           uint64    `json:"sent"`
	Acked          uint64    `json:"acked"`
	DeadLettered   uint64    `json:"dead_lettered"`
	InflightNow    int       `json:"inflight"`
	Rate           float64   `json:"rate_msgs_per_second"`
}

// QueueStatus is the durable queue, per route.
type QueueStatus struct {
	Depth        int64         `json:"depth"`
	Bytes        int64         `json:"bytes"`
	MaxBytes     int64         `json:"max_bytes"`
	FreeBytes    uint64        `json:"disk_free_bytes"`
	RejectedFull uint64        `json:"rejected_full"`
	Routes       []RouteStatus `json:"routes"`

	// Open: what opening the queue repaired or salvaged after a crash; nil
	// when it was found as it was left (queue_open.go).
	Open *QueueOpenStatus `json:"open,omitempty"`
}

// RouteStatus is one route's backlog.
type RouteStatus struct {
	Name        string            `json:"name"`
	Depth       int64             `json:"depth"`
	Bytes       int64             `json:"bytes"`
	InFlight    int               `json:"inflight"`
	OldestAge   float64           `json:"oldest_age_seconds"`
	Enqueued    uint64            `json:"enqueued"`
	Acked       uint64            `json:"acked"`
	Rate        float64           `json:"rate_msgs_per_second"` // acked per second, over the last status interval
	Drops       map[string]uint64 `json:"drops,omitempty"`
	DeadLetters int64             `json:"dead_letters"`
}

// DenialStatus is one recent denial.
type DenialStatus struct {
	Time      time.Time `json:"time"`
	Device    string    `json:"device"`
	ClientID  string    `json:"client_id,omitempty"`
	Action    string    `json:"action"`
	Resource  string    `json:"resource"`
	Statement string    `json:"statement,omitempty"`
}

// ReloadStatus is the last reload.
type ReloadStatus struct {
	OK    bool      `json:"ok"`
	At    time.Time `json:"at"`
	Error string    `json:"error,omitempty"`
	// RestartRequired names the config sections changed on disk that only
	// a restart applies (listeners, store, ...); empty when none.
	RestartRequired []string `json:"restart_required,omitempty"`
}

// ErrDaemonRunning: another process answers on the admin socket.
var ErrDaemonRunning = errors.New("another edgegw answers on the admin socket")

// ErrNotRunning: no daemon answers on the admin socket.
var ErrNotRunning = errors.New("edgegw is not running")

type adminServer struct {
	path string
	ln   net.Listener
	srv  *http.Server
	wg   sync.WaitGroup

	rateMu sync.Mutex
	rateAt time.Time
	acked  map[string]uint64
	rates  map[string]float64
}

// maxSocketPath is the room in sockaddr_un.sun_path (108 bytes with the NUL).
const maxSocketPath = 107

func (o *Observer) startAdmin() error {
	path := o.cfg.Admin.Socket
	if path == "" {
		return nil
	}
	a, err := listenAdmin(path)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		s := o.status(a)
		s.Presence = o.presenceStatus(r.URL.Query().Get("all") == "1")
		writeJSON(w, http.StatusOK, s)
	})
	mux.HandleFunc("GET /devices", o.serveDevices)
	o.adminQueueOps(mux) // queue_ops.go
	mux.HandleFunc("GET /healthz", o.serveHealth)
	mux.HandleFunc("GET /queue/stats", func(w http.ResponseWriter, r *http.Request) {
		if o.queue == nil {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "this gateway runs no queue (no bridge configured)"})
			return
		}
		q := o.queue
		if name := r.URL.Query().Get("bridge"); name != "" {
			if q = o.bridgeQueue(name); q == nil { // bridges.go
				writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("this gateway runs no bridge %q", name)})
				return
			}
		}
		writeJSON(w, http.StatusOK, q.Stats())
	})
	o.shadowRoutes(mux)
	o.identityRoutes(mux) // identity.go
	a.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second}
	o.admin = a
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := a.srv.Serve(a.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			o.log.Error("admin socket stopped", "err", err)
		}
	}()
	o.log.Info("admin socket", "path", path)
	return nil
}

// CheckAdminSocket is what listenAdmin checks before it binds (gateway.Preflight
// runs it for `edgegw check`): the path fits a UNIX socket address, and
// what is there, if anything, is a socket.
func CheckAdminSocket(path string) error {
	if len(path) > maxSocketPath {
		return fmt.Errorf("admin.socket %q: path longer than %d bytes (a UNIX socket limit); choose a shorter one", path, maxSocketPath)
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("admin.socket %q: exists and is not a socket; remove it or choose another path", path)
	}
	return nil
}

// listenAdmin binds the socket: a stale socket file (nobody answers) is
// removed; a live one means another daemon, and is refused.
func listenAdmin(path string) (*adminServer, error) {
	if err := CheckAdminSocket(path); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("admin.socket %q: %w", path, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("admin.socket %q: exists and is not a socket; remove it or choose another path", path)
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("admin.socket %q: %w (stop it first: systemctl stop edgegw)", path, ErrDaemonRunning)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("admin.socket %q: removing the stale socket: %w", path, err)
		}
	}
	// Bind with a umask so the socket is never, even briefly, wider than 0660.
	old := syscall.Umask(0o117)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("admin.socket %q: %w", path, err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin.socket %q: %w", path, err)
	}
	return &adminServer{path: path, ln: ln}, nil
}

func (a *adminServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if a.srv != nil {
		_ = a.srv.Shutdown(ctx)
	} else {
		a.ln.Close()
	}
	a.wg.Wait()
}

// routeRates returns acked messages per second per route since the previous
// call (at least a second apart; otherwise the previous rates).
func (a *adminServer) routeRates(routes []RouteStatus) map[string]float64 {
	a.rateMu.Lock()
	defer a.rateMu.Unlock()
	now := time.Now()
	if a.acked != nil && now.Sub(a.rateAt) < time.Second {
		return a.rates
	}
	rates := map[string]float64{}
	if a.acked != nil {
		dt := now.Sub(a.rateAt).Seconds()
		for _, r := range routes {
			if prev, ok := a.acked[r.Name]; ok && r.Acked >= prev {
				rates[r.Name] = float64(r.Acked-prev) / dt
			}
		}
	}
	a.acked = map[string]uint64{}
	for _, r := range routes {
		a.acked[r.Name] = r.Acked
	}
	a.rateAt, a.rates = now, rates
	return rates
}

func (o *Observer) status(a *adminServer) Status {
	bi := clock.GetBuildInfo()
	s := Status{
		Version: bi.Version, Commit: bi.Commit, Site: o.cfg.Site, PID: os.Getpid(),
		Started: o.started.UTC(), Uptime: time.Since(o.started).Seconds(), ClockSane: o.clock.Sane(),
		Health: o.health(), Certs: o.certExpiries(), Counters: map[string]uint64{},
		Devices: DevicesStatus{Connected: []broker.ConnectedDevice{}}, Denials: []DenialStatus{},
		Identity: o.identityStates(),
	}
	for _, l := range o.cfg.Listeners {
		s.Listeners = append(s.Listeners, ListenerStatus{Name: l.Name, Address: l.Address, TLS: l.TLS != nil})
	}
	if o.broker != nil {
		for i := range s.Listeners {
			if addr := o.broker.Addr(s.Listeners[i].Name); addr != nil {
				s.Listeners[i].Address = addr.String()
			}
		}
		devs := o.broker.Devices()
		o.mu.Lock()
		for i := range devs {
			devs[i].Since = o.since[devs[i].ClientID+"\x00"+devs[i].Remote].at
		}
		o.mu.Unlock()
		slices.SortFunc(devs, func(x, y broker.ConnectedDevice) int {
			return strings.Compare(x.Thing+"\x00"+x.ClientID, y.Thing+"\x00"+y.ClientID)
		})
		s.Devices = DevicesStatus{Count: len(devs), Connected: devs}
	}
	if o.bridge != nil {
		s.Upstream = upstreamStatus(o.bridge.State())
		if s.Upstream.URL == "" && o.cfg.Bridge != nil && len(o.cfg.Bridge.Upstreams) > 0 {
			s.Upstream.URL = o.cfg.Bridge.Upstreams[0].URL
		}
	}
	if len(o.bridgeList()) > 0 {
		bss := o.bridgesStatus(a) // bridges.go
		s.Queue = bss[0].Queue
		if len(o.bridgeList()) > 1 || len(o.cfg.Bridges) > 0 {
			s.Bridges = bss
		}
	}
	s.Shadows = o.shadowStatus()
	s.Enrolment = o.enrolStatus() // enrol.go
	for _, d := range o.recentDenials() {
		s.Denials = append(s.Denials, DenialStatus{Time: d.Time, Device: d.Device, ClientID: d.ClientID,
			Action: d.Action, Resource: d.Resource, Statement: d.Statement})
	}
	o.mu.Lock()
	s.Reload = o.reloadStateLocked()
	for k, v := range o.authFail {
		s.Counters[string(k)] = v
	}
	o.mu.Unlock()
	return s
}

func upstreamStatus(st bridge.State) *UpstreamStatus {
	return &UpstreamStatus{Connected: st.Connected, URL: st.Upstream, ConnectedSince: st.ConnectedSince,
		LastError: st.LastError, Reconnects: st.Reconnects, Sent: st.Sent, Acked: st.Acked,
		DeadLettered: st.DeadLettered, InflightNow: st.InflightNow, Rate: st.RateMsgs}
}

// queueStatus is a queue's status, without the routes' rates.
func queueStatus(qu Queue) *QueueStatus {
	qs := qu.Stats()
	q := &QueueStatus{Depth: qs.Depth, Bytes: qs.Bytes, MaxBytes: qs.MaxBytes, FreeBytes: qs.FreeBytes, RejectedFull: qs.RejectedFull}
	for _, r := range qs.Routes {
		q.Routes = append(q.Routes, RouteStatus{Name: r.Name, Depth: r.Depth, Bytes: r.Bytes, InFlight: r.InFlight,
			OldestAge: r.OldestAge.Seconds(), Enqueued: r.Enqueued, Acked: r.Acked, Drops: r.Drops, DeadLetters: r.DeadLetters})
	}
	return q
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// adminTransport is an HTTP transport to the daemon's admin socket, one
// connection per request: the caller closes its idle connections when done.
func adminTransport(socket string) *http.Transport {
	return &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		DisableKeepAlives: true,
	}
}

// AdminGet asks the daemon on the admin socket at path for GET urlPath and
// decodes the JSON answer into v. ErrNotRunning means nobody answers there.
func AdminGet(ctx context.Context, socket, urlPath string, v any) error {
	tr := adminTransport(socket)
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://edgegw"+urlPath, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("%w (no daemon at %s)", ErrNotRunning, socket)
		}
		return fmt.Errorf("asking the daemon at %s: %w", socket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && urlPath != "/healthz" {
		var e struct{ Error string }
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return fmt.Errorf("daemon at %s: %s %s: %s", socket, urlPath, resp.Status, e.Error)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("daemon at %s: decoding %s: %w", socket, urlPath, err)
	}
	return nil
}
