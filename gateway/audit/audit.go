package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// Audit event names (the "event" field of every audit line).
const (
	EventConnect             = "connect"          // accepted
	EventConnectRefused      = "connect_refused"  // refused: reason says why
	EventHandshakeFailed     = "handshake_failed" // TLS handshake failed (no/unknown/expired/revoked cert)
	EventDeny                = "deny"             // publish/subscribe/receive/retain denied
	EventDenySuppressed      = "deny_suppressed"  // count of deny lines not written (rate limit)
	EventRevoked             = "revoked_disconnect"
	EventPolicyDisconnect    = "policy_disconnect" // disconnected on reload: connect no longer allowed / thing disabled
	EventSubscriptionDropped = "subscription_dropped"
	EventReload              = "reload"
	EventReloadFailed        = "reload_failed"
	EventDrop                = "drop" // message dropped (slow subscriber, retained cap)
	// EventPolicyBroken is a policy file that did not load at start or
	// reload: what attaches it is denied until it is fixed.
	EventPolicyBroken = "policy_broken"
	// EventDeadLetter is a message the upstream refused (negative PUBACK);
	// it was moved to the queue's dead-letter area.
	EventDeadLetter = "dead_letter"
)

// Cause is why a TLS handshake or a CONNECT was refused, set by the broker
// where the refusal happens: a bounded set (Causes), so it can label the
// auth-failure metric without anyone reading the free-text Reason.
type Cause string

// The causes of handshake_failed and connect_refused events.
const (
	CauseNoCertificate    Cause = "no_certificate"
	CauseUnknownCA        Cause = "unknown_ca"
	CauseExpired          Cause = "expired"
	CauseRevoked          Cause = "revoked"
	CauseHandshakeTimeout Cause = "handshake_timeout"
	CauseTLS              Cause = "tls" // another TLS handshake failure
	CauseNotAuthorized    Cause = "not_authorized"
	CauseBadPassword      Cause = "bad_password"
	CauseUnknownThing     Cause = "unknown_thing" // no usable thing identity, unknown or disabled thing
)

// Causes lists every Cause, in the order metrics report them.
var Causes = []Cause{CauseNoCertificate, CauseUnknownCA, CauseExpired, CauseRevoked, CauseHandshakeTimeout,
	CauseTLS, CauseNotAuthorized, CauseBadPassword, CauseUnknownThing}

// Event is one line of the audit log. Payloads are never recorded.
type Event struct {
	Time      time.Time `json:"time"`
	Event     string    `json:"event"`
	Device    string    `json:"device,omitempty"` // thing name
	ClientID  string    `json:"client_id,omitempty"`
	Listener  string    `json:"listener,omitempty"`
	Remote    string    `json:"remote,omitempty"`
	Serial    string    `json:"serial,omitempty"` // client certificate serial (hex)
	Action    string    `json:"action,omitempty"`
	Resource  string    `json:"resource,omitempty"`
	Statement string    `json:"statement,omitempty"` // deciding policy statement, when known
	Reason    string    `json:"reason,omitempty"`
	Count     int64     `json:"count,omitempty"`
	// Cause classifies handshake_failed and connect_refused events (not
	// written to the log: Reason says it in words).
	Cause Cause `json:"-"`
}

// Options configure an Log.
type Options struct {
	File string // "" = slog only
	Log  *slog.Logger
	// DenyBurst deny lines per device are written per DenyWindow; the rest are
	// counted and reported in a deny_suppressed line when the window ends.
	DenyBurst  int
	DenyWindow time.Duration
	// OnEvent, if set, sees every event before rate limiting (metrics and
	// the admin socket's recent denials). It must be quick.
	OnEvent func(Event)
}

// Log writes audit events as JSON lines (0640, O_APPEND) and to slog.
// It is safe for concurrent use.
type Log struct {
	log    *slog.Logger
	mu     sync.Mutex
	f      *os.File
	enc    *json.Encoder
	burst  int
	window time.Duration
	denies map[string]*denyWindow
	stop   chan struct{}
	wg     sync.WaitGroup
	tap    func(Event) // Options.OnEvent
	// Suppressed counts deny lines not written (reported later, never lost).
	suppressed int64
}

type denyWindow struct {
	start      time.Time
	n          int
	suppressed int64
}

// New opens the audit file (created 0640 if absent).
func New(o Options) (*Log, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.DenyBurst <= 0 {
		o.DenyBurst = 10
	}
	if o.DenyWindow <= 0 {
		o.DenyWindow = 10 * time.Second
	}
	a := &Log{
		log:    o.Log.With("component", "audit"),
		burst:  o.DenyBurst,
		window: o.DenyWindow,
		denies: map[string]*denyWindow{},
		stop:   make(chan struct{}),
		tap:    o.OnEvent,
	}
	if o.File != "" {
		f, err := os.OpenFile(o.File, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return nil, fmt.Errorf("opening audit log: %w", err)
		}
		a.f = f
		a.enc = json.NewEncoder(f)
	}
	a.wg.Add(1)
	go a.flushLoop()
	return a, nil
}

// Record writes one event. Deny events are rate limited per device.
func (a *Log) Record(ev Event) {
	if a == nil {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	if a.tap != nil {
		a.tap(ev)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if ev.Event == EventDeny || ev.Event == EventDrop {
		key := ev.Device
		if key == "" {
			key = ev.ClientID
		}
		key = ev.Event + "\x00" + key
		w := a.denies[key]
		if w == nil || ev.Time.Sub(w.start) >= a.window {
			if w != nil && w.suppressed > 0 {
				a.writeLocked(Event{Time: ev.Time, Event: EventDenySuppressed, Device: ev.Device, ClientID: ev.ClientID, Reason: ev.Event, Count: w.suppressed})
			}
			w = &denyWindow{start: ev.Time}
			a.denies[key] = w
		}
		w.n++
		if w.n > a.burst {
			w.suppressed++
			a.suppressed++
			return
		}
	}
	a.writeLocked(ev)
}

func (a *Log) writeLocked(ev Event) {
	attrs := []any{"event", ev.Event}
	if ev.Device != "" {
		attrs = append(attrs, "device", ev.Device)
	}
	if ev.ClientID != "" && ev.ClientID != ev.Device {
		attrs = append(attrs, "client_id", ev.ClientID)
	}
	if ev.Remote != "" {
		attrs = append(attrs, "remote", ev.Remote)
	}
	if ev.Serial != "" {
		attrs = append(attrs, "serial", ev.Serial)
	}
	if ev.Action != "" {
		attrs = append(attrs, "action", ev.Action, "resource", ev.Resource)
	}
	if ev.Statement != "" {
		attrs = append(attrs, "statement", ev.Statement)
	}
	if ev.Reason != "" {
		attrs = append(attrs, "reason", ev.Reason)
	}
	if ev.Count != 0 {
		attrs = append(attrs, "count", ev.Count)
	}
	level := slog.LevelInfo
	switch ev.Event {
	case EventConnectRefused, EventDeny, EventDenySuppressed, EventHandshakeFailed, EventReloadFailed, EventDrop:
		level = slog.LevelWarn
	}
	a.log.Log(context.Background(), level, "audit", attrs...)
	if a.enc != nil {
		if err := a.enc.Encode(ev); err != nil {
			a.log.Error("writing audit log", "err", err)
		}
	}
}

// flushLoop reports suppressed denies of windows that ended with no new deny.
func (a *Log) flushLoop() {
	defer a.wg.Done()
	t := time.NewTicker(a.window / 2)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			a.flush(true)
			return
		case <-t.C:
			a.flush(false)
		}
	}
}

func (a *Log) flush(all bool) {
	now := time.Now().UTC()
	a.mu.Lock()
	defer a.mu.Unlock()
	for key, w := range a.denies {
		if !all && now.Sub(w.start) < a.window {
			continue
		}
		if w.suppressed > 0 {
			event, dev, _ := strings.Cut(key, "\x00")
			a.writeLocked(Event{Time: now, Event: EventDenySuppressed, Device: dev, Reason: event, Count: w.suppressed})
		}
		delete(a.denies, key)
	}
}

// SuppressedDenies is the number of deny lines folded into deny_suppressed.
func (a *Log) SuppressedDenies() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.suppressed
}

// Close reports pending suppressed counts and closes the file.
func (a *Log) Close() error {
	if a == nil {
		return nil
	}
	select {
	case <-a.stop:
		return nil
	default:
	}
	close(a.stop)
	a.wg.Wait()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f != nil {
		err := a.f.Close()
		a.f, a.enc = nil, nil
		return err
	}
	return nil
}
