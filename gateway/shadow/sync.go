package shadow

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/edgegw/edgegw/gateway/authz"
)

// Direction is which way a synced shadow's changes travel.
type Direction uint8

// Directions: Up sends local changes to the cloud, Down applies cloud changes
// locally, Both does both.
const (
	Up   Direction = 1
	Down Direction = 2
	Both           = Up | Down
)

func (d Direction) String() string {
	switch d {
	case Up:
		return "up"
	case Down:
		return "down"
	case Both:
		return "both"
	}
	return fmt.Sprintf("Direction(%d)", uint8(d))
}

// ParseDirection accepts the config spellings "up", "down" and "both".
func ParseDirection(s string) (Direction, error) {
	for _, d := range [...]Direction{Up, Down, Both} {
		if s == d.String() {
			return d, nil
		}
	}
	return 0, fmt.Errorf("sync direction %q: want up, down or both", s)
}

// Owner is the side whose value wins when the same field changed on both sides
// while they could not talk.
type Owner uint8

// Owners. OwnerDefault means the device for reported and the cloud for desired.
const (
	OwnerDefault Owner = iota
	OwnerCloud
	OwnerDevice
)

func (o Owner) String() string {
	switch o {
	case OwnerCloud:
		return "cloud"
	case OwnerDevice:
		return "device"
	}
	return "default"
}

// ParseOwner accepts the config spellings "cloud" and "device", and "" for the
// default.
func ParseOwner(s string) (Owner, error) {
	switch s {
	case "":
		return OwnerDefault, nil
	case "cloud":
		return OwnerCloud, nil
	case "device":
		return OwnerDevice, nil
	}
	return 0, fmt.Errorf("sync owner %q: want cloud or device", s)
}

// SyncShadow configures one synced shadow. The cloud shadow has the same thing
// and shadow name as the local one.
type SyncShadow struct {
	Thing         string
	Shadow        string // "" for the classic shadow
	Direction     Direction
	DesiredOwner  Owner // default: the cloud
	ReportedOwner Owner // default: the device
}

func (c SyncShadow) owner(section string) Owner {
	if section == "desired" {
		if c.DesiredOwner == OwnerDefault {
			return OwnerCloud
		}
		return c.DesiredOwner
	}
	if c.ReportedOwner == OwnerDefault {
		return OwnerDevice
	}
	return c.ReportedOwner
}

// SyncOptions configure a Syncer.
type SyncOptions struct {
	// TokenPrefix marks the clientToken of every request the gateway sends to
	// the cloud ("PREFIX:SEQ", "PREFIX:get:N"), so that the cloud's answers to
	// them are recognised and never applied as cloud changes. Give each gateway
	// its own (for example its client ID). 1 to 40 of [A-Za-z0-9_.-]; default
	// "edgegw".
	TokenPrefix string
	Shadows     []SyncShadow
}

// Publish is one message the caller publishes upstream (QoS 1).
type Publish struct {
	Topic   string
	Payload []byte
}

// Conflict records a field that changed on both sides while the uplink was
// down, and which value was kept. Nothing is dropped silently: every discarded
// value is reported here, for the caller to log, count and audit.
type Conflict struct {
	Thing, Shadow string
	Section       string   // desired or reported
	Path          []string // the field, from the section root
	Winner        Owner    // OwnerCloud or OwnerDevice
	Kept          any      // the winning value (nil: the field was deleted)
	Discarded     any      // the losing value (nil: the field was deleted)
}

// Failure records a local change the cloud refused for good (a 4xx other than
// 409 and 429), or a cloud change the local service refused (413). The change
// leaves the outbox; the caller logs, counts and audits it.
type Failure struct {
	Thing, Shadow string
	Seq           uint64 // outbox sequence of a refused local change; 0 for a cloud change
	Code          int
	Message       string
}

// Actions is what a Syncer call asks the caller to do.
type Actions struct {
	Upstream  []Publish  // publish to the cloud, in order
	Local     []Response // publish on the local broker, in order
	Conflicts []Conflict
	Failures  []Failure
	Echoes    int // cloud messages recognised as answers to the gateway's own requests
	Stale     int // cloud messages with a version already seen
}

func (a *Actions) add(b Actions) {
	a.Upstream = append(a.Upstream, b.Upstream...)
	a.Local = append(a.Local, b.Local...)
	a.Conflicts = append(a.Conflicts, b.Conflicts...)
	a.Failures = append(a.Failures, b.Failures...)
	a.Echoes += b.Echoes
	a.Stale += b.Stale
}

// Syncer keeps configured local shadows in sync with the cloud's Device Shadow
// service over the bridge. It does no I/O of its own: the caller subscribes
// upstream to Subscriptions, passes every message from those topics to
// Upstream, tells it when the uplink comes and goes (Connected, Disconnected),
// calls Pending when Wake fires, and publishes what the returned Actions say.
//
// How sync works, and why it cannot loop:
//   - A local update to a synced shadow (direction up or both) is written to a
//     durable outbox in the same Store batch as the shadow itself, so a crash
//     cannot keep one without the other. Outbox entries go upstream, oldest
//     first, as update requests with clientToken "PREFIX:SEQ" and no version
//     (so the cloud never answers 409: conflicts are settled here, below).
//     The cloud's /update/accepted or /update/documents with that token
//     acknowledges the entry, which then leaves the outbox. On reconnect every
//     unacknowledged entry is sent again (at least once; an update is
//     idempotent). An entry not yet sent absorbs the next change of the same
//     shadow when applying the merged change gives the same state, so an
//     outage of days leaves about one entry per shadow, not one per update.
//   - A cloud change (direction down or both) arrives as /update/documents or
//     /update/accepted with a foreign clientToken and a version above the last
//     cloud version seen; older or equal versions are stale and ignored (both
//     topics carry the same change, so each change is applied once). It is
//     applied locally without entering the outbox. Hence: the gateway's own
//     updates coming back are recognised by their token, and cloud changes are
//     never sent back up as such. No update can bounce.
//   - The Syncer keeps the last known cloud state: the base both sides last
//     agreed on. On reconnect it asks the cloud for the shadow (/get) before it
//     sends the outbox, and merges. (Should the cloud never answer, that
//     shadow's outbox waits for the next Connected.)
//   - A shadow configured for sync for the first time starts with an empty
//     base and its whole local state in the outbox (if it is synced up).
//
// The merge, and the conflict rule: local state, cloud state and base are
// merged field by field (a field is a leaf: nested objects are compared key by
// key, so {"light":{"color":..}} and {"light":{"level":..}} do not conflict;
// arrays are values). A field changed on one side only takes that side's
// value. A field changed on both sides to different values is a conflict: the
// section's owner wins. By default reported belongs to the device and desired
// to the cloud (SyncShadow.DesiredOwner and ReportedOwner change that); for a
// shadow synced down only the cloud always wins. The local shadow is updated
// to the result, and the shadow's unsent outbox entries are replaced by one
// that brings the cloud to the same result, so both sides converge. Every
// losing value is returned as a Conflict. Wall-clock timestamps are not used:
// an edge device may have no trustworthy clock.
//
// A cloud change that arrives while a change of ours to the same shadow is in
// flight is put off until ours is answered, then the Syncer asks for the whole
// shadow and merges: changes made while both sides are connected are ordered
// by the cloud, like those of any two of its clients; the rule above settles
// what the two sides did while they could not talk.
//
// Deleting a shadow is not synced: a delete on either side is left to that
// side, and the other keeps its copy.
type Syncer struct {
	svc *Service
	// mu guards what follows and the syncStates. Lock order: a shadow's lock
	// (Service.lock) first, then mu; mu is never held while taking a shadow's
	// lock.
	mu      sync.Mutex
	prefix  string
	shadows map[string]*syncState // by docKey
	order   []*syncState
	outbox  []*outboxEntry // by seq
	nextSeq uint64
	online  bool
	getSeq  uint64 // numbers /get requests; starts from the clock so restarts do not reuse one
	wakeCh  chan struct{}
}

type syncState struct {
	cfg        SyncShadow
	topic      Topic
	cloudVer   int64
	cloud      map[string]any // last known cloud state: desired/reported
	waitingGet bool           // outbox held until the answer to our /get
	fresh      bool           // never synced: no cloud state stored yet
	dirty      bool           // a cloud change waits for our in-flight changes to land
	getToken   string         // the clientToken of the /get waited for
}

type outboxEntry struct {
	Seq      uint64         `json:"seq"`
	Thing    string         `json:"thing"`
	Shadow   string         `json:"shadow,omitempty"`
	Time     int64          `json:"time"` // epoch seconds of the local update
	State    map[string]any `json:"state"`
	inFlight bool
	replaces uint64 // the entry this one absorbed, until commitLocked
}

func (e *outboxEntry) marshal() []byte {
	m := map[string]any{"seq": e.Seq, "thing": e.Thing, "time": e.Time, "state": e.State}
	if e.Shadow != "" {
		m["shadow"] = e.Shadow
	}
	return encode(m)
}

func outboxKey(seq uint64) string          { return fmt.Sprintf("o/%020d", seq) }
func cloudKey(thing, shadow string) string { return "c/" + thing + "/" + shadow }

const seqKey = "n"

// NewSyncer loads the outbox and the last known cloud states from svc's Store
// and attaches the Syncer to svc, so that svc records local updates of synced
// shadows. Call it once per Service, before the first request.
func NewSyncer(ctx context.Context, svc *Service, opts SyncOptions) (*Syncer, error) {
	prefix := opts.TokenPrefix
	if prefix == "" {
		prefix = "edgegw"
	}
	if !validTokenPrefix(prefix) {
		return nil, fmt.Errorf("shadow sync: token prefix %q: want 1 to 40 of A-Z a-z 0-9 _ . -", prefix)
	}
	s := &Syncer{svc: svc, prefix: prefix, shadows: map[string]*syncState{}, wakeCh: make(chan struct{}, 1),
		getSeq: uint64(time.Now().UnixNano())}
	for i, c := range opts.Shadows {
		if !authz.ValidThingName(c.Thing) {
			return nil, fmt.Errorf("shadow sync: shadows[%d]: thing %q: want 1 to 128 of a-z A-Z 0-9 : _ -", i, c.Thing)
		}
		if c.Shadow != "" && !ValidShadowName(c.Shadow) {
			return nil, fmt.Errorf("shadow sync: shadows[%d]: shadow %q: want 1 to 64 of a-z A-Z 0-9 $ : _ -", i, c.Shadow)
		}
		if c.Direction != Up && c.Direction != Down && c.Direction != Both {
			return nil, fmt.Errorf("shadow sync: shadows[%d] (%s): direction %d: want up, down or both", i, c.Thing, c.Direction)
		}
		if c.DesiredOwner > OwnerDevice || c.ReportedOwner > OwnerDevice {
			return nil, fmt.Errorf("shadow sync: shadows[%d] (%s): owner: want cloud or device", i, c.Thing)
		}
		k := docKey(c.Thing, c.Shadow)
		if _, dup := s.shadows[k]; dup {
			return nil, fmt.Errorf("shadow sync: shadows[%d]: %s/%q is configured twice", i, c.Thing, c.Shadow)
		}
		st := &syncState{cfg: c, topic: Topic{Thing: c.Thing, Shadow: c.Shadow}, cloud: map[string]any{}}
		if err := s.loadCloud(ctx, st); err != nil {
			return nil, err
		}
		s.shadows[k] = st
		s.order = append(s.order, st)
	}
	if err := s.loadOutbox(ctx); err != nil {
		return nil, err
	}
	for _, st := range s.order {
		if st.fresh {
			if err := s.firstSync(ctx, st); err != nil {
				return nil, err
			}
		}
	}
	svc.sync.Store(s)
	return s, nil
}

// firstSync runs once for a shadow newly configured for sync: a shadow synced
// up starts with its whole local state in the outbox, so that the first
// exchange with the cloud resolves local and cloud values by the conflict rule
// (rather than the cloud's state overwriting the device's reported values, or
// the local state never reaching the cloud). Writing the (empty) cloud state
// marks the shadow as known, in the same batch.
func (s *Syncer) firstSync(ctx context.Context, st *syncState) error {
	defer s.svc.lock(docKey(st.cfg.Thing, st.cfg.Shadow))()
	s.mu.Lock()
	defer s.mu.Unlock()
	var b Batch
	var e *outboxEntry
	if st.cfg.Direction&Up != 0 {
		d, err := s.svc.load(ctx, st.topic)
		if err != nil {
			return fmt.Errorf("shadow sync: %w", err)
		}
		if d.live() && (d.Desired != nil || d.Reported != nil) {
			sections := map[string]any{}
			if d.Desired != nil {
				sections["desired"] = d.Desired
			}
			if d.Reported != nil {
				sections["reported"] = d.Reported
			}
			e = s.recordLocked(st.topic, sections, d.Timestamp, &b)
		}
	}
	s.putCloud(st, &b)
	if err := s.svc.store.Write(ctx, &b); err != nil {
		return fmt.Errorf("shadow sync: starting to sync %s: %w", shadowID(st.topic), err)
	}
	st.fresh = false
	s.commitLocked(e)
	return nil
}

func validTokenPrefix(p string) bool {
	if len(p) < 1 || len(p) > 40 {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

func (s *Syncer) loadCloud(ctx context.Context, st *syncState) error {
	b, err := s.svc.store.Get(ctx, cloudKey(st.cfg.Thing, st.cfg.Shadow))
	if errors.Is(err, ErrNotFound) {
		st.fresh = true
		return nil
	}
	if err != nil {
		return fmt.Errorf("shadow sync: reading cloud state of %s: %w", shadowID(st.topic), err)
	}
	m, ok := decodeObject(b)
	if !ok {
		return fmt.Errorf("shadow sync: cloud state of %s is not a JSON object", shadowID(st.topic))
	}
	if st.cloudVer, err = intField(m, "version"); err != nil {
		return fmt.Errorf("shadow sync: cloud state of %s: %w", shadowID(st.topic), err)
	}
	if c, ok := m["state"].(map[string]any); ok {
		st.cloud = c
	}
	return nil
}

func (s *Syncer) putCloud(st *syncState, b *Batch) {
	b.Put(cloudKey(st.cfg.Thing, st.cfg.Shadow), encode(map[string]any{"version": st.cloudVer, "state": st.cloud}))
}

func (s *Syncer) loadOutbox(ctx context.Context) error {
	if b, err := s.svc.store.Get(ctx, seqKey); err == nil {
		n, perr := strconv.ParseUint(string(b), 10, 64)
		if perr != nil {
			return fmt.Errorf("shadow sync: outbox sequence %q: %w", b, perr)
		}
		s.nextSeq = n + 1
	} else if !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("shadow sync: reading outbox sequence: %w", err)
	}
	keys, err := s.svc.store.List(ctx, "o/")
	if err != nil {
		return fmt.Errorf("shadow sync: listing outbox: %w", err)
	}
	for _, k := range keys {
		b, err := s.svc.store.Get(ctx, k)
		if err != nil {
			return fmt.Errorf("shadow sync: reading outbox entry %s: %w", k, err)
		}
		var e outboxEntry
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.UseNumber()
		if err := dec.Decode(&e); err != nil {
			return fmt.Errorf("shadow sync: outbox entry %s: %w", k, err)
		}
		s.outbox = append(s.outbox, &e)
		s.nextSeq = max(s.nextSeq, e.Seq+1)
	}
	if s.nextSeq == 0 {
		s.nextSeq = 1
	}
	return nil
}

// Subscriptions are the upstream topics the caller subscribes to (QoS 1).
func (s *Syncer) Subscriptions() []string {
	var out []string
	for _, st := range s.order {
		t := st.topic
		out = append(out,
			t.with(OpUpdate, KindAccepted).String(), t.with(OpUpdate, KindRejected).String(),
			t.with(OpGet, KindAccepted).String(), t.with(OpGet, KindRejected).String())
		if st.cfg.Direction&Down != 0 {
			out = append(out, t.with(OpUpdate, KindDocuments).String())
		}
	}
	return out
}

// Wake fires (without blocking the writer) when a local update entered the
// outbox; the caller then calls Pending.
func (s *Syncer) Wake() <-chan struct{} { return s.wakeCh }

func (s *Syncer) wake() {
	select {
	case s.wakeCh <- struct{}{}:
	default:
	}
}

// Outbox returns the number of local changes not yet acknowledged by the cloud.
func (s *Syncer) Outbox() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.outbox)
}

// SyncStats is the Syncer's state for metrics and status.
type SyncStats struct {
	Online bool
	// Outbox is the number of local changes the cloud has not acknowledged.
	Outbox int
	// Oldest is when the oldest of them was made (zero when Outbox is 0):
	// now minus Oldest is the sync lag.
	Oldest time.Time
}

// Stats returns the Syncer's state.
func (s *Syncer) Stats() SyncStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := SyncStats{Online: s.online, Outbox: len(s.outbox)}
	if len(s.outbox) > 0 {
		oldest := s.outbox[0].Time
		for _, e := range s.outbox[1:] {
			oldest = min(oldest, e.Time)
		}
		st.Oldest = time.Unix(oldest, 0)
	}
	return st
}

// lockForLocal takes the Syncer's lock for a local update of shadow t when t
// is synced up, and returns its unlock (nil when t is not synced up). The
// caller holds it from recordLocked across the Store write to commitLocked, so
// that an entry absorbing the next change cannot be sent in between.
func (s *Syncer) lockForLocal(t Topic) func() {
	st := s.shadows[docKey(t.Thing, t.Shadow)]
	if st == nil || st.cfg.Direction&Up == 0 {
		return nil
	}
	s.mu.Lock()
	return s.mu.Unlock
}

// recordLocked adds an accepted local update of a synced shadow to the outbox,
// in the batch b that also writes the shadow; the entry joins the in-memory
// outbox when the batch is written (commitLocked). s.mu is held.
func (s *Syncer) recordLocked(t Topic, sections map[string]any, ts int64, b *Batch) *outboxEntry {
	st := s.shadows[docKey(t.Thing, t.Shadow)]
	if st == nil || st.cfg.Direction&Up == 0 {
		return nil
	}
	// A change not yet sent absorbs the next one, so a long outage leaves one
	// entry per shadow, not one per update: a shadow is state, and the cloud
	// needs only where it ended. (The cloud sees one update instead of many.)
	for i := len(s.outbox) - 1; i >= 0; i-- {
		last := s.outbox[i]
		if last.Thing != t.Thing || last.Shadow != t.Shadow {
			continue
		}
		if last.inFlight {
			break
		}
		if merged, ok := mergeState(last.State, sections); ok {
			// The merged entry takes a new sequence number: an answer still on
			// its way for the old one (sent before a reconnect) must not
			// acknowledge the absorbed change.
			e := &outboxEntry{Seq: s.nextSeq, Thing: t.Thing, Shadow: t.Shadow, Time: last.Time, State: merged, replaces: last.Seq}
			s.nextSeq++
			b.Delete(outboxKey(last.Seq))
			b.Put(outboxKey(e.Seq), e.marshal())
			b.Put(seqKey, []byte(strconv.FormatUint(e.Seq, 10)))
			return e
		}
		break
	}
	return s.newEntryLocked(t, sections, ts, b)
}

// newEntryLocked adds a new outbox entry to b. s.mu is held.
func (s *Syncer) newEntryLocked(t Topic, sections map[string]any, ts int64, b *Batch) *outboxEntry {
	e := &outboxEntry{Seq: s.nextSeq, Thing: t.Thing, Shadow: t.Shadow, Time: ts, State: map[string]any{}}
	for k, v := range sections {
		if v == nil {
			e.State[k] = nil
		} else {
			e.State[k] = cloneMap(v.(map[string]any))
		}
	}
	s.nextSeq++
	b.Put(outboxKey(e.Seq), e.marshal())
	b.Put(seqKey, []byte(strconv.FormatUint(e.Seq, 10)))
	return e
}

// commitLocked inserts e in sequence order: writes of different shadows may
// finish out of order.
func (s *Syncer) commitLocked(e *outboxEntry) {
	if e == nil {
		return
	}
	if e.replaces != 0 {
		s.outbox = slices.DeleteFunc(s.outbox, func(x *outboxEntry) bool { return x.Seq == e.replaces })
	}
	i, _ := slices.BinarySearchFunc(s.outbox, e.Seq, func(x *outboxEntry, seq uint64) int { return cmp.Compare(x.Seq, seq) })
	s.outbox = slices.Insert(s.outbox, i, e)
	s.wake()
}

// Connected tells the Syncer the uplink is up (and subscribed). It asks the
// cloud for every shadow synced down, and sends the outbox of the others;
// the outbox of a shadow synced down follows the cloud's answer to the /get.
func (s *Syncer) Connected(ctx context.Context) (Actions, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.online = true
	for _, e := range s.outbox {
		e.inFlight = false
	}
	var a Actions
	for _, st := range s.order {
		st.waitingGet, st.dirty = false, false
		if st.cfg.Direction&Down != 0 {
			a.Upstream = append(a.Upstream, s.getRequest(st))
		}
	}
	a.add(s.pendingLocked())
	return a, nil
}

// getRequest asks the cloud for st's shadow. Each request has its own token
// ("PREFIX:get:N"), so that only the answer to the latest one is taken: an
// older answer, delivered late or twice, would take the shadow back in time.
func (s *Syncer) getRequest(st *syncState) Publish {
	st.waitingGet = true
	s.getSeq++
	st.getToken = s.prefix + ":get:" + strconv.FormatUint(s.getSeq, 10)
	return Publish{Topic: st.topic.with(OpGet, KindRequest).String(),
		Payload: encode(map[string]any{"clientToken": st.getToken})}
}

// Disconnected tells the Syncer the uplink is down: nothing is sent until
// Connected, and whatever was in flight is sent again then.
func (s *Syncer) Disconnected() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.online = false
	for _, e := range s.outbox {
		e.inFlight = false
	}
}

// Pending returns the outbox entries to send now: none while offline, none that
// are in flight, none of a shadow whose /get is unanswered. Call it when Wake
// fires and also every few seconds: an entry the cloud refused for a passing
// reason (409, 429, 5xx) is sent again by the next call.
func (s *Syncer) Pending(ctx context.Context) Actions {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pendingLocked()
}

func (s *Syncer) pendingLocked() Actions {
	var a Actions
	if !s.online {
		return a
	}
	for _, e := range s.outbox {
		st := s.shadows[docKey(e.Thing, e.Shadow)]
		if e.inFlight || st == nil || st.waitingGet {
			continue
		}
		e.inFlight = true
		a.Upstream = append(a.Upstream, Publish{
			Topic: st.topic.with(OpUpdate, KindRequest).String(),
			Payload: encode(map[string]any{"state": e.State,
				"clientToken": s.prefix + ":" + strconv.FormatUint(e.Seq, 10)}),
		})
	}
	return a
}

// Upstream handles one message the cloud published on a subscribed topic. A
// message for a shadow that is not synced is ignored.
func (s *Syncer) Upstream(ctx context.Context, topic string, payload []byte) (Actions, error) {
	t, ok := ParseTopic(topic)
	if !ok {
		return Actions{}, nil
	}
	st := s.shadows[docKey(t.Thing, t.Shadow)]
	if st == nil {
		return Actions{}, nil
	}
	defer s.svc.lock(docKey(t.Thing, t.Shadow))()
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := decodeObject(payload)
	if !ok {
		return Actions{}, fmt.Errorf("shadow sync: cloud message on %s is not a JSON object", topic)
	}
	token, _ := m["clientToken"].(string)
	ours := strings.HasPrefix(token, s.prefix+":")
	switch {
	case t.Op == OpUpdate && (t.Kind == KindAccepted || t.Kind == KindDocuments):
		ver, err := cloudVersion(m, t.Kind)
		if err != nil {
			return Actions{}, fmt.Errorf("shadow sync: cloud message on %s: %w", topic, err)
		}
		if ours {
			return s.ack(ctx, st, token, ver)
		}
		return s.cloudUpdate(ctx, st, t.Kind, m, ver)

	case t.Op == OpUpdate && t.Kind == KindRejected && ours:
		return s.rejected(ctx, st, token, m)

	case t.Op == OpGet && t.Kind == KindAccepted && st.waitingGet && token == st.getToken:
		ver, err := cloudVersion(m, t.Kind)
		if err != nil {
			return Actions{}, fmt.Errorf("shadow sync: cloud message on %s: %w", topic, err)
		}
		return s.getAccepted(ctx, st, m, ver)

	case t.Op == OpGet && t.Kind == KindRejected && st.waitingGet && token == st.getToken:
		return s.getRejected(ctx, st, m)
	}
	return Actions{}, nil
}

// cloudUpdate merges a change made by someone else in the cloud (update/accepted,
// or update/documents) at version ver, unless it is stale, a version was missed
// (then the state is asked for again), or a change of ours is in flight.
func (s *Syncer) cloudUpdate(ctx context.Context, st *syncState, kind Kind, m map[string]any, ver int64) (Actions, error) {
	if st.cfg.Direction&Down == 0 {
		return Actions{}, nil
	}
	if ver <= st.cloudVer {
		return Actions{Stale: 1}, nil
	}
	var next map[string]any
	if kind == KindAccepted {
		if ver != st.cloudVer+1 {
			// A version was missed: the /get answer brings it all.
			st.dirty = true
			return s.afterFlight(st), nil
		}
		sec, _ := m["state"].(map[string]any)
		if v, ok := m["state"]; ok && v == nil {
			sec = map[string]any{"desired": nil, "reported": nil} // "state": null clears both
		}
		next = cloneMap(st.cloud)
		applyPatch(next, s.changeFromPatch(st, sec))
	} else {
		cur, _ := m["current"].(map[string]any)
		state, _ := cur["state"].(map[string]any)
		next = sectionsOf(state)
	}
	if s.inFlight(st) {
		// The cloud's state does not yet show a change of ours that is on
		// its way: merge once it has landed (afterFlight asks again).
		st.dirty = true
		return Actions{}, nil
	}
	return s.applyCloud(ctx, st, next, ver)
}

// getAccepted merges the cloud's answer to our /get (version ver), or marks the
// shadow dirty when a change of ours is in flight.
func (s *Syncer) getAccepted(ctx context.Context, st *syncState, m map[string]any, ver int64) (Actions, error) {
	st.waitingGet = false
	var a Actions
	if s.inFlight(st) {
		st.dirty = true
	} else {
		// Merged whatever the version: a lower one than the last seen means
		// the cloud shadow was deleted and created again after 48 hours.
		state, _ := m["state"].(map[string]any)
		got, err := s.applyCloud(ctx, st, sectionsOf(state), ver)
		if err != nil {
			return got, err
		}
		a = got
	}
	a.add(s.pendingLocked())
	return a, nil
}

// getRejected handles a refused /get: a 404 means the cloud has no shadow, so
// the local state goes up whole.
func (s *Syncer) getRejected(ctx context.Context, st *syncState, m map[string]any) (Actions, error) {
	st.waitingGet = false
	var a Actions
	if code, _ := m["code"].(json.Number); code == "404" && !s.inFlight(st) {
		// The cloud has no shadow (never created, or deleted there): the
		// local state goes up whole and creates it.
		st.cloud = map[string]any{}
		got, err := s.applyCloud(ctx, st, map[string]any{}, st.cloudVer)
		if err != nil {
			return got, err
		}
		a = got
	}
	a.add(s.pendingLocked())
	return a, nil
}

func cloudVersion(m map[string]any, k Kind) (int64, error) {
	if k == KindDocuments {
		cur, _ := m["current"].(map[string]any)
		return intField(cur, "version")
	}
	return intField(m, "version")
}

// sectionsOf keeps the desired and reported sections of a cloud state.
func sectionsOf(state map[string]any) map[string]any {
	out := map[string]any{}
	for _, k := range [...]string{"desired", "reported"} {
		if v, ok := state[k].(map[string]any); ok && len(v) > 0 {
			out[k] = cloneMap(v)
		}
	}
	return out
}

// changeFromPatch turns an accepted request state (where a section may be null)
// into per-section patches, a null section becoming a null for each known field.
func (s *Syncer) changeFromPatch(st *syncState, state map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, k := range [...]string{"desired", "reported"} {
		v, ok := state[k]
		if !ok {
			continue
		}
		if p, isObj := v.(map[string]any); isObj {
			out[k] = cloneMap(p)
			continue
		}
		if v == nil {
			known, _ := st.cloud[k].(map[string]any)
			p := map[string]any{}
			for f := range known {
				p[f] = nil
			}
			out[k] = p
		}
	}
	return out
}

// applyPatch applies per-section patches to a state (no metadata).
func applyPatch(state map[string]any, change map[string]map[string]any) {
	for k, p := range change {
		sec, _ := state[k].(map[string]any)
		if sec == nil {
			sec = map[string]any{}
		}
		merge(sec, map[string]any{}, p, "0")
		if len(sec) == 0 {
			delete(state, k)
		} else {
			state[k] = sec
		}
	}
}

// applyCloud merges the cloud state cloud (at version ver) with the local
// shadow, by a three-way merge against the last known cloud state (the base
// both sides last agreed on): a field changed on one side only takes that
// side's value; a field changed on both sides to different values is a
// conflict that the section's owner wins (for a shadow synced down only, the
// cloud). The local shadow is updated to the result, and the pending outbox
// entries of this shadow are replaced by one that brings the cloud to the same
// result. No entry of this shadow is in flight (the callers wait for them),
// so the cloud state already shows every change of ours that it will ever
// apply.
func (s *Syncer) applyCloud(ctx context.Context, st *syncState, cloud map[string]any, ver int64) (Actions, error) {
	var a Actions
	prev, err := s.svc.load(ctx, st.topic)
	if err != nil {
		return Actions{}, err
	}
	local := map[string]any{}
	if prev.live() {
		local = prev.state()
	}
	localPatch, cloudPatch := map[string]any{}, map[string]any{}
	for _, section := range [...]string{"desired", "reported"} {
		owner := st.cfg.owner(section)
		if st.cfg.Direction&Up == 0 {
			owner = OwnerCloud
		}
		b, l, c := sectionOf(st.cloud, section), sectionOf(local, section), sectionOf(cloud, section)
		r, _ := merge3(nil, b, l, c, owner, func(path []string, kept, lost any) {
			a.Conflicts = append(a.Conflicts, Conflict{Thing: st.cfg.Thing, Shadow: st.cfg.Shadow,
				Section: section, Path: path, Winner: owner, Kept: present(kept), Discarded: present(lost)})
		}).(map[string]any) // two objects merge into an object
		if p, changed := sectionPatch(l, r); changed {
			localPatch[section] = p
		}
		if st.cfg.Direction&Up != 0 {
			if p, changed := sectionPatch(c, r); changed {
				cloudPatch[section] = p
			}
		}
	}

	var b Batch
	ts := s.svc.unix(s.svc.now())
	var cur *document
	if len(localPatch) > 0 {
		var e *Error
		if cur, e = s.svc.apply(st.topic, prev, localPatch, ts, &b); e != nil {
			a.Failures = append(a.Failures, Failure{Thing: st.cfg.Thing, Shadow: st.cfg.Shadow, Code: e.Code, Message: e.Message})
			cur = nil
		}
	}
	var replaced []uint64
	oldest := ts
	for _, e := range s.outbox {
		if e.Thing == st.cfg.Thing && e.Shadow == st.cfg.Shadow {
			replaced = append(replaced, e.Seq)
			oldest = min(oldest, e.Time)
			b.Delete(outboxKey(e.Seq))
		}
	}
	var entry *outboxEntry
	if len(cloudPatch) > 0 {
		entry = s.newEntryLocked(st.topic, cloudPatch, oldest, &b)
	}
	oldVer, oldCloud := st.cloudVer, st.cloud
	st.cloudVer, st.cloud = ver, cloud
	s.putCloud(st, &b)
	if err := s.svc.store.Write(ctx, &b); err != nil {
		st.cloudVer, st.cloud = oldVer, oldCloud
		return Actions{}, fmt.Errorf("shadow sync: applying cloud version %d of %s: %w", ver, shadowID(st.topic), err)
	}
	s.outbox = slices.DeleteFunc(s.outbox, func(e *outboxEntry) bool { return slices.Contains(replaced, e.Seq) })
	s.commitLocked(entry)
	if cur != nil {
		a.Local = append(a.Local, updateResponses(st.topic, prev, cur, localPatch, false, "", ts)...)
	}
	if entry != nil {
		a.add(s.pendingLocked())
	}
	return a, nil
}

// inFlight reports whether an outbox entry of st is sent and unanswered.
func (s *Syncer) inFlight(st *syncState) bool {
	return slices.ContainsFunc(s.outbox, func(e *outboxEntry) bool {
		return e.inFlight && e.Thing == st.cfg.Thing && e.Shadow == st.cfg.Shadow
	})
}

// afterFlight asks the cloud for st's shadow when a cloud change was put off
// and nothing of st is in flight any more.
func (s *Syncer) afterFlight(st *syncState) Actions {
	if !st.dirty || st.cfg.Direction&Down == 0 || st.waitingGet || s.inFlight(st) || !s.online {
		return Actions{}
	}
	st.dirty = false
	return Actions{Upstream: []Publish{s.getRequest(st)}}
}

// absent stands for a missing field in merge3 (a stored state holds no null).
var absent any = new(struct{ missing bool })

// sectionOf returns a section of a state, an empty object when it is absent
// (a section left empty is removed), so that fields merge one by one.
func sectionOf(state map[string]any, section string) map[string]any {
	if m, ok := state[section].(map[string]any); ok {
		return m
	}
	return map[string]any{}
}

func field(v any, k string) any {
	if m, ok := v.(map[string]any); ok {
		if f, ok := m[k]; ok {
			return f
		}
	}
	return absent
}

// present maps absent to nil (a deleted field) for a Conflict.
func present(v any) any {
	if v == absent {
		return nil
	}
	return clone(v)
}

func same(a, b any) bool {
	if a == absent || b == absent {
		return a == b
	}
	return equal(a, b)
}

// merge3 merges local and cloud against their common base, field by field;
// objects changed on both sides merge key by key, any other value changed on
// both sides is a conflict won by owner (reported through conflict).
func merge3(path []string, base, local, cloud any, owner Owner, conflict func(path []string, kept, lost any)) any {
	switch {
	case same(local, cloud):
		return local
	case same(local, base):
		return cloud
	case same(cloud, base):
		return local
	}
	lm, lok := local.(map[string]any)
	cm, cok := cloud.(map[string]any)
	if lok && cok {
		keys := make([]string, 0, len(lm)+len(cm))
		for k := range lm {
			keys = append(keys, k)
		}
		for k := range cm {
			if _, dup := lm[k]; !dup {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		out := make(map[string]any, len(keys))
		for _, k := range keys {
			p := append(path[:len(path):len(path)], k)
			if r := merge3(p, field(base, k), field(lm, k), field(cm, k), owner, conflict); r != absent {
				out[k] = r
			}
		}
		return out
	}
	kept, lost := cloud, local
	if owner == OwnerDevice {
		kept, lost = local, cloud
	}
	conflict(path, kept, lost)
	return kept
}

// sectionPatch is the update that turns section from into section to; an
// empty section is an absent one. changed is false when they are equal.
func sectionPatch(from, to map[string]any) (patch any, changed bool) {
	switch {
	case len(from) == 0 && len(to) == 0:
		return nil, false
	case len(to) == 0:
		return nil, true // the section goes
	case len(from) == 0:
		return cloneMap(to), true
	}
	d := diff(from, to)
	return d, d != nil
}

// mergePatch merges patch src into dst keeping nulls (a later change wins).
func mergePatch(dst, src map[string]any) {
	for k, v := range src {
		sm, sok := v.(map[string]any)
		dm, dok := dst[k].(map[string]any)
		if sok && dok {
			mergePatch(dm, sm)
			continue
		}
		dst[k] = clone(v)
	}
}

// canMergePatch reports whether applying src after dst equals applying their
// mergePatch once: not when src writes an object where dst deleted the field or
// set a non-object (applied in turn, the object replaces; merged, it would
// merge into whatever the target holds).
func canMergePatch(dst, src map[string]any) bool {
	for k, v := range src {
		sm, sok := v.(map[string]any)
		if !sok {
			continue
		}
		dv, had := dst[k]
		if !had {
			continue
		}
		dm, dok := dv.(map[string]any)
		if !dok || !canMergePatch(dm, sm) {
			return false
		}
	}
	return true
}

// mergeState merges the sections of a later local change into an earlier one,
// if the result is exact (see canMergePatch); ok is false otherwise.
func mergeState(earlier, later map[string]any) (merged map[string]any, ok bool) {
	for k, v := range later {
		lp, _ := v.(map[string]any)
		ev, had := earlier[k]
		if lp == nil || !had {
			continue
		}
		ep, _ := ev.(map[string]any)
		if ep == nil || !canMergePatch(ep, lp) {
			return nil, false // a section cleared, then written; or an exact merge is impossible
		}
	}
	merged = map[string]any{}
	for k, v := range earlier {
		merged[k] = clone(v)
	}
	for k, v := range later {
		lp, _ := v.(map[string]any)
		mp, _ := merged[k].(map[string]any)
		if lp == nil || mp == nil {
			merged[k] = clone(v)
			continue
		}
		mergePatch(mp, lp)
	}
	return merged, true
}

// ack handles the cloud's acceptance of outbox entry PREFIX:SEQ.
func (s *Syncer) ack(ctx context.Context, st *syncState, token string, ver int64) (Actions, error) {
	a := Actions{Echoes: 1}
	seq, err := strconv.ParseUint(strings.TrimPrefix(token, s.prefix+":"), 10, 64)
	if err != nil {
		return a, nil // not an outbox entry's token
	}
	i := slices.IndexFunc(s.outbox, func(e *outboxEntry) bool { return e.Seq == seq })
	if i < 0 {
		return a, nil // the second of accepted/documents for the same entry
	}
	e := s.outbox[i]
	next := cloneMap(st.cloud)
	change := map[string]map[string]any{}
	for k, v := range e.State {
		if p, ok := v.(map[string]any); ok {
			change[k] = p
		} else {
			change[k] = s.changeFromPatch(st, map[string]any{k: nil})[k]
		}
	}
	applyPatch(next, change)
	var b Batch
	b.Delete(outboxKey(seq))
	newVer := st.cloudVer
	gap := false
	switch {
	case ver == st.cloudVer+1:
		newVer = ver
	case ver > st.cloudVer+1:
		gap = true // someone else changed the cloud shadow in between
	}
	oldVer, oldCloud := st.cloudVer, st.cloud
	st.cloudVer, st.cloud = newVer, next
	s.putCloud(st, &b)
	if err := s.svc.store.Write(ctx, &b); err != nil {
		st.cloudVer, st.cloud = oldVer, oldCloud
		return Actions{}, fmt.Errorf("shadow sync: acknowledging outbox entry %d: %w", seq, err)
	}
	s.outbox = slices.Delete(s.outbox, i, i+1)
	if gap {
		st.dirty = true
	}
	a.add(s.afterFlight(st))
	return a, nil
}

// rejected handles the cloud's refusal of outbox entry PREFIX:SEQ: a permanent
// refusal (4xx but 409 and 429) drops the entry as a Failure; anything else
// leaves it for the next Pending.
func (s *Syncer) rejected(ctx context.Context, st *syncState, token string, m map[string]any) (Actions, error) {
	seq, err := strconv.ParseUint(strings.TrimPrefix(token, s.prefix+":"), 10, 64)
	if err != nil {
		return Actions{}, nil
	}
	i := slices.IndexFunc(s.outbox, func(e *outboxEntry) bool { return e.Seq == seq })
	if i < 0 {
		return Actions{}, nil
	}
	code64, _ := intField(m, "code")
	code := int(code64)
	msg, _ := m["message"].(string)
	if code < 400 || code >= 500 || code == 409 || code == 429 {
		s.outbox[i].inFlight = false
		return s.afterFlight(st), nil
	}
	var b Batch
	b.Delete(outboxKey(seq))
	if err := s.svc.store.Write(ctx, &b); err != nil {
		return Actions{}, fmt.Errorf("shadow sync: dropping refused outbox entry %d: %w", seq, err)
	}
	s.outbox = slices.Delete(s.outbox, i, i+1)
	a := Actions{Failures: []Failure{{Thing: st.cfg.Thing, Shadow: st.cfg.Shadow, Seq: seq, Code: code, Message: msg}}}
	a.add(s.afterFlight(st))
	return a, nil
}
