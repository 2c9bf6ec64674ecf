package shadowrun

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegw/edgegw/bridge"
	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/gateway/authz"
	"github.com/edgegw/edgegw/gateway/broker"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/observe"
	"github.com/edgegw/edgegw/gateway/shadow"
	"github.com/edgegw/edgegw/store"
)

const (
	// shadowSpace is the shadows' key space in the queue's database.
	shadowSpace = "shadow"
	// shadowRouteOut queues the Syncer's requests to the cloud.
	shadowRouteOut = "shadow-sync"
	// shadowRouteIn names the in routes of the synced shadows.
	shadowRouteIn = "shadow-sync-in-"
	// shadowRepoll is how often the outbox is offered again (a change the
	// cloud refused for a passing reason) and the uplink state read while
	// there is something to follow: an outbox, a connection settling.
	shadowRepoll = 500 * time.Millisecond
	// shadowIdleRepoll is how often the uplink state is read otherwise (a
	// connection that came, went or was replaced is noticed this late at
	// most); a local change does not wait for it (Syncer.Wake).
	shadowIdleRepoll = 5 * time.Second
	// shadowStall: an online outbox that has not moved for this long is
	// started over (a cloud answer lost, a request that could not be
	// queued): the Syncer is told the link went down and came back.
	shadowStall = 30 * time.Second
)

// shadowStore is a shadow.Store over a key space of the queue's database.
// Its failures are *storeError, so that a caller of the shadow package can
// tell them (passing: try again) from a bad message.
type shadowStore struct{ kv *store.KV }

var _ shadow.Store = shadowStore{}

// storeError is a failure of the shadow store.
type storeError struct{ err error }

func (e *storeError) Error() string { return e.err.Error() }
func (e *storeError) Unwrap() error { return e.err }

func storeErr(err error) error {
	if err == nil {
		return nil
	}
	return &storeError{err}
}

func (s shadowStore) Get(ctx context.Context, key string) ([]byte, error) {
	v, err := s.kv.Get(ctx, key)
	if errors.Is(err, store.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w: %w", shadow.ErrNotFound, err)
	}
	return v, storeErr(err)
}

func (s shadowStore) List(ctx context.Context, prefix string) ([]string, error) {
	keys, err := s.kv.List(ctx, prefix)
	return keys, storeErr(err)
}

func (s shadowStore) Write(ctx context.Context, b *shadow.Batch) error {
	ops := make([]store.KVOp, len(b.Ops))
	for i, o := range b.Ops {
		ops[i] = store.KVOp{Key: o.Key, Value: o.Value}
	}
	return storeErr(s.kv.Write(ctx, ops))
}

// Broker is what the shadows need of the local broker; *broker.Broker
// satisfies it.
type Broker interface {
	SetShadows(broker.ShadowService)
	PublishShadow(shadow.Response)
	ShadowMetrics() *broker.ShadowMetrics
}

// Auditor records shadow conflicts and sync failures; *audit.Log satisfies it.
type Auditor interface{ Record(audit.Event) }

// Queue is the database the shadows live in and the queue that carries the
// Syncer's requests upstream; *store.Queue satisfies it.
type Queue interface {
	KV(space string) (*store.KV, error)
	Enqueue(ctx context.Context, m store.Message) (uint64, error)
}

// Uplink is the bridge the Syncer follows; *bridge.Bridge satisfies it.
type Uplink interface{ State() bridge.State }

var (
	_ Broker  = (*broker.Broker)(nil)
	_ Auditor = (*audit.Log)(nil)
	_ Queue   = (*store.Queue)(nil)
	_ Uplink  = (*bridge.Bridge)(nil)
)

// Shadows is what the daemon runs for the shadows section.
type Shadows struct {
	log    *slog.Logger
	aud    Auditor
	b      Broker
	svc    *shadow.Service
	sync   *shadow.Syncer // nil without shadows.sync
	kv     *store.KV
	q      Queue // carries the Syncer's requests
	br     Uplink
	synced map[string]bool // "THING/SHADOW" of the synced shadows

	conflicts, failures, dropped atomic.Int64
	repolls                      atomic.Int64 // run's timer wakeups (tests: slow while idle)

	cancel    context.CancelFunc
	done      chan struct{}
	mu        sync.Mutex // serialises Syncer actions (their upstream order)
	closeOnce sync.Once
}

// Open opens the shadow service on q's database (the first bridge's queue,
// or the store the gateway opens at store.dir without a bridge) and installs
// it on b. It returns nil, nil without a shadows section.
func Open(ctx context.Context, cfg *config.Config, b Broker, q Queue, aud Auditor, log *slog.Logger) (s *Shadows, err error) {
	if cfg.Shadows == nil {
		return nil, nil
	}
	s = &Shadows{log: log.With("component", "shadow"), aud: aud, b: b, q: q}
	defer func() {
		if err != nil {
			s.Close()
			s = nil
		}
	}()
	if s.kv, err = q.KV(shadowSpace); err != nil {
		return nil, fmt.Errorf("opening shadow store: %w", err)
	}
	s.svc = shadow.New(shadowStore{s.kv}, shadow.Options{Logger: s.log})
	if len(cfg.Shadows.Sync) > 0 {
		so := shadow.SyncOptions{TokenPrefix: shadowTokenPrefix(cfg)}
		for i, c := range cfg.Shadows.Sync {
			d, err := shadow.ParseDirection(c.Direction)
			if err != nil {
				return nil, cfg.Errorf(fmt.Sprintf("shadows.sync[%d].direction", i), "%v", err)
			}
			do, _ := shadow.ParseOwner(c.DesiredOwner) // validated by config
			ro, _ := shadow.ParseOwner(c.ReportedOwner)
			so.Shadows = append(so.Shadows, shadow.SyncShadow{Thing: c.Thing, Shadow: c.Shadow, Direction: d, DesiredOwner: do, ReportedOwner: ro})
		}
		if s.sync, err = shadow.NewSyncer(ctx, s.svc, so); err != nil {
			return nil, err
		}
		s.synced = map[string]bool{}
		for _, c := range so.Shadows {
			s.synced[c.Thing+"/"+c.Shadow] = true
		}
	}
	b.SetShadows(s.svc)
	s.log.Info("device shadows served", "synced", len(cfg.Shadows.Sync))
	return s, nil
}

var tokenPrefixRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,40}$`)

// shadowTokenPrefix: shadows.token_prefix, else the bridge's client ID when
// it fits a clientToken prefix, else the Syncer's default.
func shadowTokenPrefix(cfg *config.Config) string {
	if p := cfg.Shadows.TokenPrefix; p != "" {
		return p
	}
	if cfg.Bridge != nil && tokenPrefixRE.MatchString(cfg.Bridge.ClientID) {
		return cfg.Bridge.ClientID
	}
	return ""
}

// Routes are the bridge routes of shadow sync: one out route for the
// Syncer's requests and one in route per synced shadow.
func Routes(cfg *config.Config) []bridge.Route {
	if cfg.Shadows == nil || len(cfg.Shadows.Sync) == 0 {
		return nil
	}
	rs := []bridge.Route{{Name: shadowRouteOut, Topic: "$aws/things/+/shadow/#", Direction: bridge.Out, QoS: 1}}
	for _, f := range shadowFilters(cfg) {
		rs = append(rs, bridge.Route{Name: shadowRouteIn + f, Topic: f, Direction: bridge.In, QoS: 1})
	}
	return rs
}

// shadowFilters are the upstream subscriptions of shadow sync: one filter
// per synced shadow, .../shadow[/name/SHADOW]/+/+, which covers every topic
// of Syncer.Subscriptions (the Syncer ignores the answers it did not ask
// for: deltas, deletes, documents of a shadow synced up only). One filter
// rather than five: AWS IoT Core allows 50 subscriptions per connection.
func shadowFilters(cfg *config.Config) []string {
	var out []string
	for _, c := range cfg.Shadows.Sync {
		f := "$aws/things/" + c.Thing + "/shadow/"
		if c.Shadow != "" {
			f += "name/" + c.Shadow + "/"
		}
		out = append(out, f+"+/+")
	}
	return out
}

// RouteLimits is the queue route of the Syncer's requests.
func RouteLimits(cfg *config.Config) []store.RouteLimits {
	if cfg.Shadows == nil || len(cfg.Shadows.Sync) == 0 {
		return nil
	}
	return []store.RouteLimits{{Name: shadowRouteOut, Priority: 1}}
}

// Inbound wraps the bridge's local publisher: messages on the Syncer's
// subscriptions go to the Syncer, everything else to next.
func (s *Shadows) Inbound(next bridge.Publisher) bridge.Publisher {
	if s == nil || s.sync == nil {
		return next
	}
	return shadowInbound{next: next, s: s}
}

type shadowInbound struct {
	next bridge.Publisher
	s    *Shadows
}

func (p shadowInbound) PublishLocal(topic string, payload []byte, retain bool, qos byte) error {
	t, ok := shadow.ParseTopic(topic)
	if !ok || t.Kind == shadow.KindRequest || !p.s.synced[t.Thing+"/"+t.Shadow] {
		return p.next.PublishLocal(topic, payload, retain, qos)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	a, err := p.s.sync.Upstream(ctx, topic, payload)
	if err != nil {
		if se := (*storeError)(nil); errors.As(err, &se) || errors.Is(err, context.DeadlineExceeded) {
			// Not the message's fault: leave it unacknowledged for the
			// upstream to deliver again.
			p.s.log.Warn("cloud shadow message not applied; the upstream will send it again", "topic", topic, "err", err)
			return fmt.Errorf("applying %s: %w: %w", topic, bridge.ErrLocalUnavailable, err)
		}
		p.s.dropped.Add(1)
		p.s.log.Warn("cloud shadow message dropped", "topic", topic, "err", err)
		return nil
	}
	p.s.apply(ctx, a)
	return nil
}

// Start runs the Syncer beside br (nothing without sync).
func (s *Shadows) Start(br Uplink) {
	if s == nil || s.sync == nil || br == nil {
		return
	}
	s.br = br
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan struct{})
	go func() {
		defer close(s.done)
		s.run(ctx)
	}()
}

// run follows the uplink: Connected once a connection has been up for a
// moment (the bridge subscribes as soon as it connects; the Syncer's /get
// must not overtake the SUBSCRIBE), Disconnected when it drops or is
// replaced, the outbox offered on Wake and every shadowRepoll, and
// started over when it stalls (shadowStall). With nothing to follow it
// looks every shadowIdleRepoll only.
func (s *Shadows) run(ctx context.Context) {
	tick := time.NewTimer(shadowRepoll)
	defer tick.Stop()
	var online bool
	var since, movedAt time.Time
	var last shadow.SyncStats
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.sync.Wake():
		case <-tick.C:
			s.repolls.Add(1)
		}
		st := s.br.State()
		wentOnline := false
		switch {
		case online && (!st.Connected || !st.ConnectedSince.Equal(since)):
			online = false
			s.sync.Disconnected()
			s.log.Info("shadow sync offline")
		case online && time.Since(movedAt) > shadowStall:
			online = false
			s.sync.Disconnected()
			s.log.Warn("shadow sync made no progress; asking the cloud again", "outbox", last.Outbox, "stalled", shadowStall)
		case !online && st.Connected && time.Since(st.ConnectedSince) >= time.Second:
			online, since, movedAt = true, st.ConnectedSince, time.Now()
			s.mu.Lock()
			a, err := s.sync.Connected(ctx)
			if err != nil {
				s.log.Warn("shadow sync could not start", "err", err)
			} else {
				s.apply(ctx, a)
			}
			s.mu.Unlock()
			s.log.Info("shadow sync online", "outbox", s.sync.Outbox())
			wentOnline = true
		}
		if !wentOnline {
			s.mu.Lock()
			s.apply(ctx, s.sync.Pending(ctx))
			s.mu.Unlock()
			if ss := s.sync.Stats(); ss.Outbox == 0 || ss.Outbox != last.Outbox || !ss.Oldest.Equal(last.Oldest) {
				last, movedAt = ss, time.Now()
			}
		}
		next := shadowIdleRepoll
		if s.sync.Outbox() > 0 || st.Connected != online {
			next = shadowRepoll
		}
		tick.Reset(next)
	}
}

// apply does what the Syncer asks; s.mu is held.
func (s *Shadows) apply(ctx context.Context, a shadow.Actions) {
	for _, p := range a.Upstream {
		if _, err := s.q.Enqueue(ctx, store.Message{Route: shadowRouteOut, Topic: p.Topic, Payload: p.Payload, QoS: 1}); err != nil {
			// The change stays in the Syncer's outbox: sent again on the
			// next connection.
			s.log.Warn("shadow sync request not queued", "topic", p.Topic, "err", err)
		}
	}
	for _, r := range a.Local {
		s.b.PublishShadow(r)
	}
	for _, c := range a.Conflicts {
		s.conflicts.Add(1)
		res := "thing/" + c.Thing
		if c.Shadow != "" {
			res += "/" + c.Shadow
		}
		s.aud.Record(audit.Event{Event: "shadow_conflict", Device: c.Thing, Resource: res,
			Reason: fmt.Sprintf("%s.%s changed on both sides; the %s's value was kept", c.Section, strings.Join(c.Path, "."), c.Winner)})
	}
	for _, f := range a.Failures {
		s.failures.Add(1)
		res := "thing/" + f.Thing
		if f.Shadow != "" {
			res += "/" + f.Shadow
		}
		s.aud.Record(audit.Event{Event: "shadow_sync_failed", Device: f.Thing, Resource: res,
			Reason: fmt.Sprintf("outbox seq %d: %d %s", f.Seq, f.Code, f.Message)})
	}
}

// Stats is the state of the shadows for metrics and status.
type Stats struct {
	Shadows   int // shadows stored (deleted ones included while their version is kept)
	Synced    int // configured for sync
	Online    bool
	Outbox    int           // local changes the cloud has not acknowledged
	Lag       time.Duration // age of the oldest of them
	Conflicts int64
	Failures  int64
	Dropped   int64 // cloud messages that could not be applied
}

// Stats reads the shadows' state.
func (s *Shadows) Stats(ctx context.Context) Stats {
	var st Stats
	if s == nil {
		return st
	}
	if keys, err := s.kv.List(ctx, "d/"); err == nil {
		st.Shadows = len(keys)
	}
	st.Conflicts, st.Failures, st.Dropped = s.conflicts.Load(), s.failures.Load(), s.dropped.Load()
	if s.sync != nil {
		ss := s.sync.Stats()
		st.Synced = len(s.synced)
		st.Online, st.Outbox = ss.Online, ss.Outbox
		if !ss.Oldest.IsZero() {
			st.Lag = max(time.Since(ss.Oldest), 0)
		}
	}
	return st
}

// Close stops the Syncer and releases the shadows' key space; the caller
// closes the queue after.
func (s *Shadows) Close() {
	if s == nil {
		return
	}
	s.closeOnce.Do(s.closeNow)
}

func (s *Shadows) closeNow() {
	if s.b != nil {
		s.b.SetShadows(nil)
	}
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
	if s.kv != nil {
		s.kv.Close()
	}
}

var _ observe.Shadows = (*Shadows)(nil)

// ShadowStatus implements observe.Shadows.
func (s *Shadows) ShadowStatus(ctx context.Context) observe.ShadowStatus {
	st := s.Stats(ctx)
	out := observe.ShadowStatus{Stored: st.Shadows, Synced: st.Synced, Online: st.Online, Outbox: st.Outbox,
		LagSeconds: st.Lag.Seconds(), Conflicts: st.Conflicts, Failures: st.Failures, Dropped: st.Dropped}
	if m := s.b.ShadowMetrics(); m != nil {
		out.Requests, out.Denied = m.Requests.Load(), m.Denied.Load()
	}
	return out
}

// adminClientID is the origin of the site engineer's requests (logs); no
// thing can have it.
const adminClientID = "$edgegw-admin"

// ShadowRequest implements observe.Shadows: the request is handled like a
// device's (its responses are published locally, a synced shadow's change
// goes to the cloud), without a policy check: the admin socket is the
// site engineer's.
func (s *Shadows) ShadowRequest(ctx context.Context, op, thing, name string, payload []byte) (int, []byte) {
	if !authz.ValidThingName(thing) || name != "" && !shadow.ValidShadowName(name) {
		return 400, []byte(`{"code":400,"message":"not a thing name (1-128 of a-z A-Z 0-9 : _ -) or shadow name (1-64 of a-z A-Z 0-9 $ : _ -)"}`)
	}
	topic := "$aws/things/" + thing + "/shadow/"
	if name != "" {
		topic += "name/" + name + "/"
	}
	if len(payload) == 0 {
		payload = []byte("{}")
	}
	resps := s.svc.Handle(ctx, shadow.Request{Topic: topic + op, Payload: payload, ClientID: adminClientID, Time: time.Now()})
	if len(resps) == 0 {
		return 400, []byte(`{"code":400,"message":"unknown operation: want get, update or delete"}`)
	}
	for _, r := range resps {
		s.b.PublishShadow(r)
	}
	first := resps[0]
	if strings.HasSuffix(first.Topic, "/accepted") {
		return 200, first.Payload
	}
	var e struct{ Code int }
	if json.Unmarshal(first.Payload, &e) != nil || e.Code < 400 || e.Code > 599 {
		e.Code = 500
	}
	return e.Code, first.Payload
}

// ShadowList implements observe.Shadows.
func (s *Shadows) ShadowList(ctx context.Context, thing string) ([]string, error) {
	return s.svc.List(ctx, thing)
}
