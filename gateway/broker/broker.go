package broker

import (
	"crypto"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/gateway/authorizer"
	"github.com/edgegw/edgegw/gateway/authz"
	"github.com/edgegw/edgegw/gateway/broker/listen"
	"github.com/edgegw/edgegw/gateway/loopback"
)

// Limits are the broker's hardening limits (config section `limits`).
type Limits struct {
	HandshakeTimeout     time.Duration // TLS handshake + CONNECT (default 10s)
	MaxPendingHandshakes int           // connections between accept and CONNECT (256)
	MaxPacketSize        uint32        // bytes, checked before the packet is allocated (256 KiB)
	MaxClients           int64         // connected clients (5000)
	ClientWriteQueue     int32         // per-client outbound packets (256: mochi allocates 8 bytes each per client at connect)
	ReceiveMaximum       uint16        // per-client inbound QoS 1/2 in flight (1024)
	SessionExpiryMax     time.Duration // cap on persistent session expiry (24h)
	SessionMaxMessages   int           // QoS 1/2 messages held for one offline session (10000; sessions.go)
	SessionMaxBytes      int64         // topic + payload bytes held for one offline session (16 MiB)
	RetainedMaxMessages  int           // retained store caps (10000)
	RetainedMaxBytes     int64         // (64 MiB)
	MaxTopicLength       int           // bytes (256)
	MaxTopicLevels       int           // (16)
	MaxKeepalive         time.Duration // MQTT 5 keepalives of 0 or above it become it, told by Server Keep Alive (65535s; acks.go)
	TopicAliasMaximum    uint16        // inbound topic aliases per MQTT 5 client, announced in CONNACK (10)
}

// DefaultLimits are the documented defaults of the `limits` section.
func DefaultLimits() Limits {
	return Limits{
		HandshakeTimeout:     10 * time.Second,
		MaxPendingHandshakes: 256,
		MaxPacketSize:        256 << 10,
		MaxClients:           5000,
		ClientWriteQueue:     256,
		ReceiveMaximum:       1024,
		SessionExpiryMax:     24 * time.Hour,
		SessionMaxMessages:   10000,
		SessionMaxBytes:      16 << 20,
		RetainedMaxMessages:  10000,
		RetainedMaxBytes:     64 << 20,
		MaxTopicLength:       256,
		MaxTopicLevels:       16,
		MaxKeepalive:         65535 * time.Second,
		TopicAliasMaximum:    10,
	}
}

func (l *Limits) fill() {
	d := DefaultLimits()
	if l.HandshakeTimeout <= 0 {
		l.HandshakeTimeout = d.HandshakeTimeout
	}
	if l.MaxPendingHandshakes <= 0 {
		l.MaxPendingHandshakes = d.MaxPendingHandshakes
	}
	if l.MaxPacketSize == 0 {
		l.MaxPacketSize = d.MaxPacketSize
	}
	if l.MaxClients <= 0 {
		l.MaxClients = d.MaxClients
	}
	if l.ClientWriteQueue <= 0 {
		l.ClientWriteQueue = d.ClientWriteQueue
	}
	if l.ReceiveMaximum == 0 {
		l.ReceiveMaximum = d.ReceiveMaximum
	}
	if l.SessionExpiryMax <= 0 {
		l.SessionExpiryMax = d.SessionExpiryMax
	}
	if l.MaxKeepalive <= 0 {
		l.MaxKeepalive = d.MaxKeepalive
	}
	if l.TopicAliasMaximum == 0 {
		l.TopicAliasMaximum = d.TopicAliasMaximum
	}
	if l.SessionMaxMessages <= 0 {
		l.SessionMaxMessages = d.SessionMaxMessages
	}
	if l.SessionMaxBytes <= 0 {
		l.SessionMaxBytes = d.SessionMaxBytes
	}
}

// ListenerOptions describe one listener.
type ListenerOptions struct {
	Name    string
	Address string
	// TLS is nil for a plaintext listener, which must be on a loopback address.
	TLS *listen.TLSFiles
	// Key signs for the server certificate (an hw.Key); required with TLS.
	Key          crypto.Signer
	Identity     listen.IdentitySource
	PasswordFile string // "" = no password factor
	// Authorizer, when set, decides CONNECTs with a custom authorizer
	// (authorizer.go) instead of the registry.
	Authorizer *authorizer.Config
	// Thing, on a plaintext listener, is the thing every client of the
	// listener is, whatever its client ID (listenerthing.go); "" = the client
	// ID is the thing name.
	Thing string
}

// Options configure the local broker.
type Options struct {
	Listeners []ListenerOptions
	Limits    Limits
	// Registry and Policies are the devices file and the policy directory,
	// read by LoadPolicy at start and on every reload.
	Registry string
	Policies string
	Logger   *slog.Logger
	Audit    *audit.Log // nil: slog only
	Metrics  *Metrics   // nil: a private one
	// Watch is the file poll interval for live reload of CRL, CA, registry,
	// policies and password files (0 = 250ms; <0 disables watching).
	Watch time.Duration
	// Presence, if set, is told of every accepted connection and its end (presence.go).
	Presence Presence
}

// Metrics are the broker's counters (atomic; exported to Prometheus by the
// metrics endpoint).
type Metrics struct {
	listen.Counters                                                // handshakes and pending-handshake admission (the front door)
	ConnectsAccepted, ConnectsRefused                              atomic.Int64
	PacketTooLarge                                                 atomic.Int64
	DeniedConnect, DeniedPublish, DeniedSubscribe                  atomic.Int64
	DeniedReceive, DeniedRetain                                    atomic.Int64
	DroppedQoS0, DroppedQoS1, InflightDropped                      atomic.Int64 // deliveries dropped by mochi
	InflightFull                                                   atomic.Int64 // QoS 1/2 deliveries mochi dropped at a subscriber's in-flight limit or with no free packet ID (drops.go)
	RetainedRejected                                               atomic.Int64
	BackpressureWaits, BackpressureTimeouts                        atomic.Int64
	Enqueued, EnqueueFailures                                      atomic.Int64
	EnqueueDisconnects                                             atomic.Int64 // 3.1.1 clients disconnected for a refused enqueue
	PipelineFull                                                   atomic.Int64 // OnPublish waited for a full pipeline (pipeline.go)
	RevocationDisconnects, PolicyDisconnects, SubscriptionsDropped atomic.Int64
	Reloads, ReloadFailures                                        atomic.Int64
	RuleForwarded, RuleRepublished, RuleFailures                   atomic.Int64 // rules.go
	AuthorizerDenied, AuthorizerExpired                            atomic.Int64 // authorizer.go
	PolicyBroken                                                   atomic.Int64 // policy files that did not load (reload.go)
	SessionsOffline                                                atomic.Int64 // gauge: persistent sessions whose client is away (sessions.go)
	SessionQueued, SessionDropped                                  atomic.Int64 // messages held for / dropped from offline sessions
	SessionsRestored                                               atomic.Int64 // offline sessions brought back from the store at start (sessionstore.go)
	SessionStoreFailures                                           atomic.Int64 // failed writes of offline sessions to the store
	ProtocolErrors                                                 atomic.Int64 // packets refused by conformance.go
}

// brokerListener is one configured listener and its reloadable state.
type brokerListener struct {
	opts      ListenerOptions
	identity  listen.IdentitySource
	trust     *listen.Trust // nil on plaintext
	passwords atomic.Pointer[listen.Passwords]
	guard     *listen.Guard
	adm       *listen.Admission // the guard's pending-handshake budget
	az        connAuthorizer    // nil: the registry decides CONNECTs (authorizer.go)
}

// Broker is the local MQTT broker (mochi) with edgegw's security and limits.
type Broker struct {
	opts     Options
	limits   Limits
	log      *slog.Logger
	audit    *audit.Log
	metrics  *Metrics
	srv      *mqtt.Server
	ls       []*brokerListener
	byID     map[string]*brokerListener
	policy   atomic.Pointer[authz.Engine]
	clients  sync.Map // *mqtt.Client -> *clientState
	outbound atomic.Pointer[outbound]
	shadows  atomic.Pointer[shadowRoom] // SetShadows (shadow.go)
	enrol    atomic.Pointer[enrolRoom]  // SetEnrol (enrol.go)
	rules    atomic.Pointer[ruleState]  // rules.go
	retained retainedAccount
	traffic  *Traffic       // traffic.go
	sessions sessions       // offline persistent sessions (sessions.go)
	sessw    *sessionWriter // their store (sessionstore.go); nil: memory only

	backpressureHigh int
	smallRecvMax     atomic.Int32 // connected clients whose Receive Maximum the broker honours (recvmax.go)
	minRecvMax       atomic.Int32 // the smallest of those (0: none)
	pipelineDepth    int

	subs       subsCache // whether a topic has local subscribers (pipeline.go)
	inlineMu   sync.Mutex
	inlineFree []*mqtt.Client // idle inline clients of pipeline workers

	reloadMu  sync.Mutex
	watchStop chan struct{}
	// loadedStamps are the watched files' stamps taken just before New
	// read them: the baseline of startWatch.
	loadedStamps map[string]fileStamp
	watchWG      sync.WaitGroup
	watchChecks  atomic.Int64 // looks at the watched files' stamps (tests: none while idle)
	closeOnce    sync.Once
}

// ErrPlaintextNotLoopback refuses a plaintext listener on a non-loopback address.
var ErrPlaintextNotLoopback = errors.New("plaintext listener must bind a loopback address (127.0.0.1, ::1)")

// New builds the broker, loads trust, policy and password files and
// binds every listener. Nothing is served until Start.
func New(o Options) (*Broker, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	// "component" replaces, not repeats (logging.go): mochi's lines say
	// component=mochi, ours component=broker, whatever o.Logger carries.
	o.Logger = WithComponents(o.Logger)
	if o.Metrics == nil {
		o.Metrics = new(Metrics)
	}
	if o.Audit == nil {
		a, err := audit.New(audit.Options{Log: o.Logger})
		if err != nil {
			return nil, err
		}
		o.Audit = a
	}
	o.Limits.fill()
	b := &Broker{
		opts: o, limits: o.Limits, log: o.Logger.With("component", "broker"),
		audit: o.Audit, metrics: o.Metrics, byID: map[string]*brokerListener{},
		watchStop: make(chan struct{}),
	}
	b.loadedStamps = stampFiles(o.Registry, o.Policies, o.Listeners) // before reading them (startWatch)
	eng, err := b.loadPolicy(o.Registry, o.Policies, nil)
	if err != nil {
		return nil, err
	}
	b.policy.Store(eng)

	lim := o.Limits
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = lim.MaxPacketSize
	caps.MaximumClients = lim.MaxClients
	caps.MaximumClientWritesPending = lim.ClientWriteQueue
	caps.ReceiveMaximum = lim.ReceiveMaximum
	caps.MaximumInflight = uint16(min(max(2*int(lim.ClientWriteQueue), 1024), math.MaxUint16))
	caps.MaximumSessionExpiryInterval = uint32(min(lim.SessionExpiryMax/time.Second, math.MaxUint32))
	// 0 = no forced expiry. mochi's default (86400) deletes every retained
	// and in-flight message older than a day, 3.1.1 ones included; with 0 only
	// an MQTT 5 Message Expiry Interval set by the publisher expires a message
	// (server.go clearExpiredRetainedMessages / Client.ClearExpiredInflights).
	caps.MaximumMessageExpiryInterval = 0
	caps.Compatibilities.ObscureNotAuthorized = false
	caps.Compatibilities.NoInheritedPropertiesOnAck = true // acks.go
	caps.TopicAliasMaximum = lim.TopicAliasMaximum
	b.backpressureHigh = max(int(lim.ClientWriteQueue)/2, 1)
	b.pipelineDepth = min(int(lim.ReceiveMaximum), pipelineMaxDepth)

	mochiLog := slog.New(packetRedactor{o.Logger.With("component", "mochi").Handler(), func(id string) {
		b.inflightFull(id, inflightFullReason(caps.MaximumInflight)) // drops.go
	}})
	b.srv = mqtt.New(&mqtt.Options{
		Capabilities:           caps,
		Logger:                 mochiLog,
		SysTopicResendInterval: math.MaxInt32, // $SYS is not published to clients
	})
	b.traffic = newTraffic(o.Listeners) // traffic.go: counted by the hook
	if err := b.srv.AddHook(&hook{b: b}, nil); err != nil {
		return nil, fmt.Errorf("adding broker hook: %w", err)
	}
	if err := b.srv.AddHook(&disconnectHook{b: b}, nil); err != nil { // disconnects.go
		return nil, fmt.Errorf("adding disconnect hook: %w", err)
	}
	for _, lo := range o.Listeners {
		if err := b.addListener(lo); err != nil {
			b.closeListeners()
			return nil, fmt.Errorf("listener %q: %w", lo.Name, err)
		}
	}
	return b, nil
}

// prepareListener is everything addListener checks and loads before the
// bind (Preflight runs it too, so `edgegw check` refuses what New refuses).
func prepareListener(lo ListenerOptions) (*brokerListener, error) {
	bl := &brokerListener{opts: lo, identity: lo.Identity}
	if lo.TLS == nil || !lo.TLS.RequireClientCert {
		if !loopback.Addr(lo.Address) {
			return nil, fmt.Errorf("address %q: %w", lo.Address, ErrPlaintextNotLoopback)
		}
	}
	if lo.Thing != "" && lo.TLS != nil {
		return nil, fmt.Errorf("thing %q: only for a plaintext listener (TLS takes the thing from the client certificate)", lo.Thing)
	}
	if lo.TLS != nil {
		if lo.Key == nil {
			return nil, errors.New("TLS listener without a server key")
		}
		t, err := listen.NewTrust(*lo.TLS, lo.Key)
		if err != nil {
			return nil, err
		}
		bl.trust = t
	}
	if lo.PasswordFile != "" {
		pw, err := listen.LoadPasswords(lo.PasswordFile)
		if err != nil {
			return nil, err
		}
		bl.passwords.Store(&pw)
	}
	return bl, nil
}

func (b *Broker) addListener(lo ListenerOptions) error {
	bl, err := prepareListener(lo)
	if err != nil {
		return err
	}
	if bl.az, err = b.newListenerAuthorizer(lo); err != nil { // authorizer.go
		return err
	}
	nl, err := net.Listen("tcp", lo.Address)
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	var tlsConf func() *tls.Config
	if bl.trust != nil {
		tlsConf = bl.trust.TLSConfig
	}
	bl.adm = listen.NewAdmission(b.limits.MaxPendingHandshakes, &b.metrics.Counters, lo.Name, b.audit.Record)
	bl.guard = listen.NewGuard(nl, tlsConf, b.limits.HandshakeTimeout, b.limits.MaxPacketSize, bl.adm, &b.metrics.Counters,
		func(remote string, err error) {
			b.audit.Record(listen.HandshakeFailedEvent(lo.Name, lo.Identity, remote, err)) // device and hex serial
		})
	b.ls = append(b.ls, bl)
	b.byID[lo.Name] = bl
	return b.srv.AddListener(listeners.NewNet(lo.Name, bl.guard))
}

func (b *Broker) listenerByID(id string) *brokerListener { return b.byID[id] }

// Addr returns the bound address of the named listener (useful with port 0).
func (b *Broker) Addr(name string) net.Addr {
	if bl := b.byID[name]; bl != nil {
		return bl.guard.Addr()
	}
	return nil
}

// Metrics returns the broker's counters.
func (b *Broker) Metrics() *Metrics { return b.metrics }

// SetOutbound installs the durable path: messages matching routes are
// enqueued on q before the publisher's PUBACK. nil q removes it.
func (b *Broker) SetOutbound(q Enqueuer, routes RouteMatcher) {
	if q == nil || routes == nil {
		b.outbound.Store(nil)
		return
	}
	b.outbound.Store(&outbound{q: q, submit: submitterOf(q), routes: routes})
}

// Start serves all listeners and starts watching the reloadable files.
func (b *Broker) Start() error {
	if err := b.srv.Serve(); err != nil {
		return fmt.Errorf("starting broker: %w", err)
	}
	if b.opts.Watch >= 0 {
		b.startWatch()
	}
	for _, bl := range b.ls {
		b.log.Info("listening", "listener", bl.opts.Name, "address", bl.guard.Addr().String(), "tls", bl.trust != nil)
	}
	return nil
}

// Close stops the watcher, disconnects every client and closes listeners.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		close(b.watchStop)
		b.watchWG.Wait()
		// Stop accepting, then disconnect everyone before mochi's Close: its
		// closeListenerClients takes Clients.RLock twice (mochi issue #488) and
		// deadlocks if a client (dis)connects meanwhile.
		b.closeListeners()
		for _, cl := range b.srv.Clients.GetAll() {
			if !cl.Closed() {
				_ = b.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
			}
		}
		for i := 0; i < 200 && b.Clients() > 0; i++ {
			time.Sleep(10 * time.Millisecond)
		}
		_ = b.srv.Close()
		b.closeSessions() // sessionstore.go: the sessions kept offline by the disconnects are written
	})
	return nil
}

func (b *Broker) closeListeners() {
	for _, bl := range b.ls {
		if bl.guard != nil {
			_ = bl.guard.Close()
			bl.guard.Wait()
		}
	}
}

// Clients returns the number of connected clients.
func (b *Broker) Clients() int {
	n := 0
	b.clients.Range(func(_, _ any) bool { n++; return true })
	return n
}

// RetainedStats returns the retained store's message count and bytes.
func (b *Broker) RetainedStats() (int, int64) { return b.retained.stats() }
