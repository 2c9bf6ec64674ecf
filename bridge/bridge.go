package bridge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegw/edgegw/bridge/proxy"
	"github.com/edgegw/edgegw/store"
)

// Queue is what the forwarder needs from the durable queue; *store.Queue
// satisfies it. All methods may be called from different goroutines.
//
//   - Next blocks until a message not yet handed out is available (higher
//     route priority first, FIFO within a route) or ctx is done. With a
//     ctx already done it still returns a message that is available now,
//     and ctx.Err() only when none is: the forwarder takes a burst that way
//     and flushes before it waits.
//   - Ack deletes a message after its upstream PUBACK.
//   - DeadLetter moves a message the upstream refused (negative PUBACK) out
//     of the way, keeping it for inspection.
//   - Rewind makes every handed-out, unacknowledged message available to
//     Next again, in order; the bridge calls it after each lost connection.
type Queue interface {
	Next(ctx context.Context) (store.Message, error)
	Ack(seq uint64) error
	DeadLetter(seq uint64, reason string) error
	Rewind()
}

// Publisher publishes a message that came down from the upstream on the local
// broker. The gateway implements it with mochi's inline client so local
// Receive policies apply, and its OnPublish hook must not enqueue what the
// inline client publishes (loop prevention, see the package doc).
//
// An error wrapping ErrLocalUnavailable means the message could be published
// later (the local broker is stopping or not serving yet): the bridge leaves
// it unacknowledged and ends the session, and the upstream redelivers it
// after the next connect (QoS 1, persistent session). Any other error is
// final for that message: it is acknowledged, counted as dropped and logged.
type Publisher interface {
	PublishLocal(topic string, payload []byte, retain bool, qos byte) error
}

// ErrLocalUnavailable: see Publisher.
var ErrLocalUnavailable = errors.New("local broker unavailable")

// Upstream is one broker URL. Accepted schemes: mqtts:// (also ssl://,
// tls://; default port 8883) and mqtt:// (also tcp://; default port 1883,
// plaintext: the gateway config allows it for loopback only).
type Upstream struct {
	URL        *url.URL
	ServerName string   // TLS server name (SNI and verification); default: the URL's host
	ALPN       []string // TLS ALPN protocols for this upstream; default Config.ALPN (aws-iot-core on port 443: x-amzn-mqtt-ca)
}

// UserProps names the MQTT 5 user properties added to every upstream message
// so the cloud can drop duplicates. An empty key leaves that property out.
// The other envelopes use the same names ("device" and "seq" when empty).
type UserProps struct {
	DeviceKey string // value: store.Message.Device (the publisher's thing name)
	SeqKey    string // value: store.Message.Seq in decimal
}

// DeadLetter describes a message the upstream refused; it is passed to
// Config.OnDeadLetter (for the audit log) after Queue.DeadLetter succeeded.
type DeadLetter struct {
	Seq    uint64
	Route  string
	Device string
	Topic  string // upstream topic
	Code   byte   // PUBACK reason code (>= 0x80)
	Reason string
}

// Config configures a Bridge. Zero durations and sizes take the defaults
// noted on each field.
type Config struct {
	// Name tells bridges apart in logs, status and metrics (label
	// bridge=<name>); letters, digits, '-' and '_'; default "default".
	Name      string
	Profile   Profile    // generic (default), aws-iot-core or azure-iot-hub: defaults and checks, see Profile
	Protocol  Protocol   // MQTT5 (default) or MQTT311
	Upstreams []Upstream // tried in order; after a lost connection the first is tried again first
	ClientID  string     // required; also the upstream session's identity
	// Envelope carries device and sequence upstream; default
	// user-properties for MQTT 5, none for 3.1.1 (Warnings says so),
	// property-bag for azure-iot-hub.
	Envelope Envelope
	// Username and password for the CONNECT. The password comes from
	// PasswordFile (mode 0600, read at every connection attempt, so a
	// rotated file is picked up) or Password (from a secret store); never
	// both, and never logged.
	Username     string
	PasswordFile string
	Password     []byte
	ALPN         []string // TLS ALPN protocols for every upstream without its own
	Proxy        *url.URL // HTTP CONNECT proxy, http://[user:password@]host:port; nil: direct
	// MaxPayload refuses (dead-letters) messages whose upstream payload is
	// larger, before sending; 0: no limit but the server's packet size.
	MaxPayload int
	// MaxRate caps publishes per second on a connection, live and backlog
	// alike (aws-iot-core: 90, under its 100/s); 0 = unlimited.
	MaxRate float64
	// TLS is built by the caller: RootCAs for the upstream, and the client
	// certificate whose PrivateKey is a crypto.Signer (hw key, file/TPM/HSM).
	// ServerName is set per upstream from Upstream.ServerName or the URL host.
	TLS            *tls.Config
	KeepAlive      time.Duration // default 30s; 0 after defaults is not possible, use a small value
	ConnectTimeout time.Duration // bounds dial + TLS + CONNACK per attempt; default 10s
	BackoffMin     time.Duration // default 1s
	BackoffMax     time.Duration // default 2m
	Inflight       int           // max unacknowledged QoS 1 publishes; default 1024; also bounded by the server's Receive Maximum
	DrainRate      float64       // messages/s while a backlog drains; 0 = unlimited
	UserProps      UserProps
	Routes         []Route
	SessionExpiry  time.Duration // upstream session expiry; default 1h (inbound commands queued upstream while offline survive that long)
	OnDeadLetter   func(DeadLetter)
	// HoldInbound leaves every inbound PUBLISH but a Call's response
	// undelivered and unacknowledged: the upstream keeps it in the session
	// and sends it again at the next connect [MQTT-4.4.0-1]. For a bridge
	// that only makes Calls while the gateway is stopped (`edgegw key
	// rotate`), so the commands queued upstream are not lost to it.
	HoldInbound bool
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.Name == "" {
		c.Name = "default"
	}
	if c.Profile == "" {
		c.Profile = ProfileGeneric
	}
	c.Upstreams = append([]Upstream(nil), c.Upstreams...) // applyProfile fills ALPN per upstream
	c.applyProfile()
	if c.Protocol == 0 {
		c.Protocol = MQTT5
	}
	if c.Envelope == "" {
		c.Envelope = EnvelopeUserProperties
		if c.Protocol == MQTT311 {
			c.Envelope = EnvelopeNone
		}
	}
	if c.MaxRate > 0 && (c.DrainRate == 0 || c.DrainRate > c.MaxRate) {
		c.DrainRate = c.MaxRate
	}
	if c.KeepAlive <= 0 {
		c.KeepAlive = 30 * time.Second
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	if c.BackoffMin <= 0 {
		c.BackoffMin = time.Second
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = 2 * time.Minute
	}
	if c.BackoffMax < c.BackoffMin {
		c.BackoffMax = c.BackoffMin
	}
	if c.Inflight <= 0 {
		c.Inflight = 1024
	}
	if c.Inflight > maxPublishID {
		c.Inflight = maxPublishID
	}
	if c.SessionExpiry <= 0 {
		c.SessionExpiry = time.Hour
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports configuration errors, naming the field. It does not read
// the password file (New does).
func (c *Config) Validate() error {
	if !validName(c.Name) {
		return fmt.Errorf("bridge: name %q: use 1 to 64 letters, digits, '-' or '_'", c.Name)
	}
	p := "bridge " + c.Name
	if err := c.validate(); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if errs := c.checkProfile(); len(errs) > 0 {
		return fmt.Errorf("%s: profile %s: %w", p, c.Profile, errors.Join(errs...))
	}
	return nil
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func (c *Config) validate() error {
	if _, err := ParseProfile(string(c.Profile)); err != nil {
		return err
	}
	if c.Protocol != MQTT5 && c.Protocol != MQTT311 {
		return fmt.Errorf("protocol %v: want 5 or 3.1.1", c.Protocol)
	}
	if _, err := ParseEnvelope(string(c.Envelope)); err != nil {
		return err
	}
	if c.Envelope == EnvelopeUserProperties && c.Protocol != MQTT5 {
		return errors.New("envelope user-properties needs protocol 5: MQTT 3.1.1 has no user properties; use topic-suffix or json")
	}
	if c.PasswordFile != "" && c.Password != nil {
		return errors.New("password_file and a password from the secret store are both set: keep one")
	}
	if (c.PasswordFile != "" || c.Password != nil) && c.Username == "" {
		return errors.New("a password needs a username (MQTT sends no password without one)")
	}
	if len(c.Username) > 65535 {
		return errors.New("username longer than 65535 bytes")
	}
	if c.Proxy != nil {
		if err := proxy.Validate(c.Proxy); err != nil {
			return err
		}
	}
	if c.MaxPayload < 0 {
		return fmt.Errorf("max_payload %d: must be >= 0", c.MaxPayload)
	}
	if c.MaxRate < 0 {
		return fmt.Errorf("max_rate %v: must be >= 0", c.MaxRate)
	}
	if len(c.Upstreams) == 0 {
		return errors.New("upstreams: at least one is required")
	}
	for i, u := range c.Upstreams {
		if u.URL == nil {
			return fmt.Errorf("upstreams[%d]: url is required", i)
		}
		switch u.URL.Scheme {
		case "mqtts", "ssl", "tls", "mqtt", "tcp":
		default:
			return fmt.Errorf("upstreams[%d]: url %q: scheme must be mqtts:// or mqtt://", i, u.URL.Redacted())
		}
		if u.URL.Hostname() == "" {
			return fmt.Errorf("upstreams[%d]: url %q: host is missing", i, u.URL.Redacted())
		}
		if isTLSScheme(u.URL.Scheme) && c.TLS == nil {
			return fmt.Errorf("upstreams[%d]: %s needs tls (client certificate and CA)", i, u.URL.Scheme)
		}
	}
	if c.ClientID == "" {
		return errors.New("client_id is required")
	}
	if c.DrainRate < 0 {
		return fmt.Errorf("drain_rate %v: must be >= 0", c.DrainRate)
	}
	if c.KeepAlive > 65535*time.Second {
		return fmt.Errorf("keepalive %v: at most 65535s", c.KeepAlive)
	}
	return nil
}

func isTLSScheme(s string) bool { return s == "mqtts" || s == "ssl" || s == "tls" }

// State is a snapshot for `edgegw status` and metrics. Counters only grow.
type State struct {
	Name           string // Config.Name: the bridge label of every metric
	Protocol       string // "5" or "3.1.1"
	Connected      bool
	Upstream       string // URL of the current (or last) upstream, redacted
	LastError      string
	ConnectedSince time.Time
	Window         int // current in-flight window: min(Inflight, server Receive Maximum); 3.1.1: Inflight

	Reconnects   uint64 // successful connections after the first
	Sent         uint64 // PUBLISH packets written upstream (resends included)
	Acked        uint64 // messages acknowledged to the queue (QoS 1 PUBACK, QoS 0 written)
	DeadLettered uint64 // negative PUBACKs, moved to the dead-letter area
	Resent       uint64 // unacknowledged at a lost connection, so sent again: the bound on duplicates
	Paced        uint64 // backlog messages that went through the drain rate limiter
	// NoSubscribers counts positive PUBACKs with reason 0x10 (No matching
	// subscribers): the upstream took the message and nobody was subscribed
	// to it, so it went nowhere. Acknowledged to the queue like any success
	// [MQTT-3.4.2.1]; a rising count means the cloud side is not listening.
	NoSubscribers  uint64
	UnknownPubacks uint64 // PUBACKs for a packet identifier not in flight on that connection: ignored
	// Writes counts writes to the upstream connection (flushes of its
	// buffer: PUBLISHes, PUBACKs, pings); Sent/Writes is how many PUBLISHes
	// leave per write. SlotReleases counts the times the reader gave the
	// window slots of the PUBACKs it had read back to the writer, all of
	// those from one read of the connection at once: Acked/SlotReleases is
	// how many PUBACKs came per read.
	Writes       uint64
	SlotReleases uint64

	InboundReceived  uint64 // PUBLISH packets from the upstream
	InboundDelivered uint64 // published locally
	InboundDropped   uint64 // no in route matched, or the Publisher failed (logged)
	// InboundRoutes: every in (and both) route of the routes in use, in
	// config order, with what it brought down; zero before its first
	// message. A route's counts survive SetRoutes while its name stays.
	InboundRoutes []RouteInbound

	InflightNow int
	RateMsgs    float64 // acknowledged messages per second, smoothed over a few seconds
}

// RouteInbound is one in route's share of the messages from the upstream.
// A message matching no in route is counted in State.InboundDropped only.
type RouteInbound struct {
	Route     string
	Delivered uint64 // published locally
	Dropped   uint64 // the local publish failed (logged)
}

// inCounts are one in route's counters, by route name in Bridge.inRoutes.
type inCounts struct{ delivered, dropped atomic.Uint64 }

// inRoute returns the counters of the in route named name, made on first use.
func (b *Bridge) inRoute(name string) *inCounts {
	if c, ok := b.inRoutes.Load(name); ok {
		return c.(*inCounts)
	}
	c, _ := b.inRoutes.LoadOrStore(name, new(inCounts))
	return c.(*inCounts)
}

// Bridge forwards the queue upstream and brings inbound commands down.
// Create it with New, start it with Run.
type Bridge struct {
	cfg    Config
	q      Queue
	local  Publisher
	log    *slog.Logger
	routes atomic.Pointer[Routes]
	resub  chan struct{} // routes changed

	connected atomic.Bool
	window    atomic.Int64
	inflight  atomic.Int64
	c         counters
	inRoutes  sync.Map // in route name -> *inCounts (State.InboundRoutes)

	mu          sync.Mutex
	upstream    string
	lastError   string
	connectedAt time.Time
	rate        float64

	// lastID is the last publish packet identifier used, carried from one
	// connection to the next (only Run's goroutine touches it, between
	// sessions), so identifiers in flight on a lost connection are not
	// reused at once on the new one: a stray PUBACK for an old identifier
	// then finds nothing instead of acknowledging a different message.
	lastID uint16

	id     identity                // SwapIdentity (identity.go)
	tap    atomic.Pointer[tap]     // the Call waiting for its response
	callMu sync.Mutex              // one Call at a time
	sess   atomic.Pointer[session] // the live connection, for Call

	// tracePuback, when set (tests), sees every PUBACK matched to a message,
	// before the queue is told.
	tracePuback func(seq uint64, code byte)
}

type counters struct {
	reconnects, sent, acked, deadLettered, resent, paced atomic.Uint64
	noSubscribers, unknownPubacks                        atomic.Uint64
	inReceived, inDelivered, inDropped                   atomic.Uint64
	writes, releases                                     atomic.Uint64
}

// New checks cfg and returns a Bridge. q and local must not be nil; logger
// may be nil (discard).
func New(cfg Config, q Queue, local Publisher, logger *slog.Logger) (*Bridge, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if q == nil || local == nil {
		return nil, errors.New("bridge: queue and publisher are required")
	}
	rs, err := cfg.compileRoutes(cfg.Routes)
	if err != nil {
		return nil, err
	}
	if cfg.PasswordFile != "" {
		if _, err := ReadPasswordFile(cfg.PasswordFile); err != nil {
			return nil, fmt.Errorf("bridge %s: %w", cfg.Name, err)
		}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	b := &Bridge{cfg: cfg, q: q, local: local, log: logger.With("component", "bridge", "bridge", cfg.Name), resub: make(chan struct{}, 1)}
	b.routes.Store(rs)
	b.id.init()
	return b, nil
}

// compileRoutes compiles routes and refuses those the profile's cloud would.
func (c *Config) compileRoutes(routes []Route) (*Routes, error) {
	rs, err := NewRoutes(routes)
	if err != nil {
		return nil, fmt.Errorf("bridge %s: %w", c.Name, err)
	}
	if errs := CheckRoutes(c.Profile, c.ClientID, c.Envelope, rs.all); len(errs) > 0 {
		return nil, fmt.Errorf("bridge %s: profile %s: %w", c.Name, c.Profile, errors.Join(errs...))
	}
	return rs, nil
}

// Name returns the bridge's name.
func (b *Bridge) Name() string { return b.cfg.Name }

// Routes returns the compiled routes in use (for the gateway's OnPublish).
func (b *Bridge) Routes() *Routes { return b.routes.Load() }

// SetRoutes swaps in new routes (SIGHUP reload). Queued messages keep their
// route name; a message whose route no longer exists is sent by the first
// out route matching its topic, or dead-lettered if none does. Upstream
// subscriptions follow on the live connection.
func (b *Bridge) SetRoutes(routes []Route) error {
	rs, err := b.cfg.compileRoutes(routes)
	if err != nil {
		return err
	}
	b.routes.Store(rs)
	select {
	case b.resub <- struct{}{}:
	default:
	}
	return nil
}

// State returns a snapshot.
func (b *Bridge) State() State {
	b.mu.Lock()
	s := State{Name: b.cfg.Name, Protocol: b.cfg.Protocol.String(), Upstream: b.upstream, LastError: b.lastError, RateMsgs: b.rate}
	if b.connected.Load() {
		s.ConnectedSince = b.connectedAt
	}
	b.mu.Unlock()
	s.Connected = b.connected.Load()
	s.Window = int(b.window.Load())
	s.InflightNow = int(b.inflight.Load())
	s.Reconnects = b.c.reconnects.Load()
	s.Sent = b.c.sent.Load()
	s.Acked = b.c.acked.Load()
	s.DeadLettered = b.c.deadLettered.Load()
	s.Resent = b.c.resent.Load()
	s.NoSubscribers = b.c.noSubscribers.Load()
	s.UnknownPubacks = b.c.unknownPubacks.Load()
	s.Writes = b.c.writes.Load()
	s.SlotReleases = b.c.releases.Load()
	s.Paced = b.c.paced.Load()
	s.InboundReceived = b.c.inReceived.Load()
	s.InboundDelivered = b.c.inDelivered.Load()
	s.InboundDropped = b.c.inDropped.Load()
	for _, r := range b.routes.Load().all {
		if r.Direction.in() {
			c := b.inRoute(r.Name)
			s.InboundRoutes = append(s.InboundRoutes, RouteInbound{Route: r.Name, Delivered: c.delivered.Load(), Dropped: c.dropped.Load()})
		}
	}
	return s
}

func (b *Bridge) setError(err error) {
	b.mu.Lock()
	b.lastError = err.Error()
	b.mu.Unlock()
}

// queueError marks an error from the queue itself: Run stops on it, since
// reconnecting cannot help.
type queueError struct{ err error }

func (e *queueError) Error() string { return "bridge: reading the queue: " + e.err.Error() }
func (e *queueError) Unwrap() error { return e.err }

// Run connects and forwards until ctx is done (then it returns nil) or the
// queue fails (then it returns that error). Connection failures are retried
// forever: upstreams in order, then a jittered exponential backoff between
// BackoffMin and BackoffMax.
func (b *Bridge) Run(ctx context.Context) error {
	rateDone := make(chan struct{})
	go func() { defer close(rateDone); b.sampleRate(ctx) }()
	defer func() { <-rateDone }()

	backoff := b.cfg.BackoffMin
	everConnected := false
	for {
		progressed, kicked := false, false
		for _, up := range b.cfg.Upstreams {
			if ctx.Err() != nil {
				return nil
			}
			s, err := b.dial(ctx, up)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				b.setError(err)
				b.log.Warn("upstream connection failed", "upstream", up.URL.Redacted(), "err", err)
				continue
			}
			if everConnected {
				b.c.reconnects.Add(1)
			}
			everConnected, progressed = true, true
			backoff = b.cfg.BackoffMin
			b.sess.Store(s)
			err = s.run(ctx)
			b.sess.Store(nil)
			// Everything this connection handed out and did not get
			// acknowledged goes out again, in order, on the next one.
			b.q.Rewind()
			var qe *queueError
			if errors.As(err, &qe) {
				return qe
			}
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, errReconnect) {
				b.log.Info("upstream reconnecting", "upstream", up.URL.Redacted(), "reason", err)
				kicked = true
				break
			}
			b.setError(err)
			b.log.Warn("upstream connection lost", "upstream", up.URL.Redacted(), "err", err)
			break // start again from the first (preferred) upstream
		}
		if kicked {
			continue // asked to reconnect (SwapIdentity): no backoff
		}
		if !progressed {
			backoff = min(backoff*2, b.cfg.BackoffMax)
		}
		// Equal jitter: half fixed, half random, so many gateways that lost
		// the same broker do not come back in lockstep.
		d := backoff/2 + rand.N(backoff/2+1)
		if err := sleepCtx(ctx, d); err != nil {
			return nil
		}
	}
}

// sampleRate updates the smoothed ack rate once a second.
func (b *Bridge) sampleRate(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last := b.c.acked.Load()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n := b.c.acked.Load()
		b.mu.Lock()
		b.rate = 0.5*b.rate + 0.5*float64(n-last)
		b.mu.Unlock()
		last = n
	}
}
