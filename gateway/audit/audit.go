package audit

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
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
	// EventDisconnect is an accepted client gone: Reason says why (the
	// client's DISCONNECT, a network error, a takeover...), Duration how
	// long it was connected.
	EventDisconnect = "disconnect"
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
	// Duration is how long the client was connected (disconnect events), in seconds.
	Duration float64 `json:"duration_seconds,omitempty"`
	// Site is the gateway's site (Options.Site), set on every line written.
	Site string `json:"site,omitempty"`
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
	// Site is written in every line's "site" field.
	Site string
	// Journal also writes each line to Log when there is a File. Without a
	// File the lines always go to Log (they would go nowhere else); with
	// one, only when asked, so the journal does not hold every line twice.
	Journal bool
}

// Log writes audit events as JSON lines (0640, O_APPEND) and to slog.
// It is safe for concurrent use.
type Log struct {
	log    *slog.Logger
	site   string
	toLog  bool   // write lines to log too (Options.Journal, or no File)
	path   string // Options.File, for Reopen
	mu     sync.Mutex
	f      *os.File
	enc    *json.Encoder
	burst  int
	window time.Duration
	denies map[string]*denyWindow
	opened chan struct{} // cap 1: a deny window opened (arms flushLoop)
	ticks  atomic.Int64  // flushLoop's wakeups (tests: none while no window is open)
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
		opened: make(chan struct{}, 1),
		stop:   make(chan struct{}),
		tap:    o.OnEvent,
		site:   o.Site,
		toLog:  o.Journal || o.File == "",
		path:   o.File,
	}
	if o.File != "" {
		f, err := openFile(o.File)
		if err != nil {
			return nil, err
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
			select {
			case a.opened <- struct{}{}:
			default:
			}
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
	if ev.Site == "" {
		ev.Site = a.site
	}
	if a.enc != nil {
		if err := a.enc.Encode(ev); err != nil {
			a.log.Error("writing audit log", "err", err)
		}
	}
	if !a.toLog {
		return
	}
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
	if ev.Duration != 0 {
		attrs = append(attrs, "duration_seconds", ev.Duration)
	}
	level := slog.LevelInfo
	switch ev.Event {
	case EventConnectRefused, EventDeny, EventDenySuppressed, EventHandshakeFailed, EventReloadFailed, EventDrop:
		level = slog.LevelWarn
	}
	a.log.Log(context.Background(), level, "audit", attrs...)
}

// flushLoop reports suppressed denies of windows that ended with no new
// deny. It ticks (every half window) only while a window is open: the
// first deny of a window arms it, and it stops once none is left.
func (a *Log) flushLoop() {
	defer a.wg.Done()
	t := time.NewTicker(a.window / 2)
	t.Stop()
	defer t.Stop()
	ticking := false
	for {
		select {
		case <-a.stop:
			a.flush(true)
			return
		case <-a.opened:
			if !ticking { // not a Reset while ticking: windows opening one after another must not put the flush off
				ticking = true
				t.Reset(a.window / 2)
			}
		case <-t.C:
			a.ticks.Add(1)
			if a.flush(false) == 0 {
				// A window opened since flush looked has sent on opened.
				ticking = false
				t.Stop()
			}
		}
	}
}

// flush reports and forgets the windows that ended (all: every window) and
// returns how many are still open.
func (a *Log) flush(all bool) int {
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
	return len(a.denies)
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
