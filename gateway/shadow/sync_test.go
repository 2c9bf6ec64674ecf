package shadow_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/shadow"
)

// rig is a gateway (local Service, its Store and a Syncer) and a cloud played
// by a second Service with AWS's semantics, linked by an uplink that delivers the
// Syncer's publishes to the cloud and the cloud's messages on subscribed topics
// back to the Syncer, synchronously. Messages the cloud publishes while the
// uplink is down are lost, like QoS 0 deliveries to a clean session.
type rig struct {
	t       *testing.T
	ctx     context.Context
	store   *shadow.MemStore
	opts    shadow.SyncOptions
	local   *shadow.Service
	sync    *shadow.Syncer
	cloud   *shadow.Service
	online  bool
	subs    []string
	now     int64
	history []shadow.Response // every cloud message delivered to the gateway
	queue   []shadow.Publish  // sent by the gateway, not yet delivered to the cloud
	paused  bool              // hold the queue (messages in flight)
	pumping bool

	upstream  []shadow.Publish  // every message the gateway sent to the cloud
	localOut  []shadow.Response // every message the Syncer published locally
	conflicts []shadow.Conflict
	failures  []shadow.Failure
	echoes    int
	stale     int
	steps     int
}

func newRig(t *testing.T, cfg ...shadow.SyncShadow) *rig {
	r := &rig{t: t, ctx: context.Background(), store: shadow.NewMemStore(), now: 1700000000,
		opts:  shadow.SyncOptions{TokenPrefix: "gw1", Shadows: cfg},
		cloud: shadow.New(shadow.NewMemStore(), shadow.Options{})}
	r.start()
	return r
}

// start builds the gateway's Service and Syncer over the rig's Store, as a
// restarted process does.
func (r *rig) start() {
	r.t.Helper()
	r.local = shadow.New(r.store, shadow.Options{Now: func() time.Time { return time.Unix(r.now, 0) }})
	s, err := shadow.NewSyncer(r.ctx, r.local, r.opts)
	if err != nil {
		r.t.Fatalf("NewSyncer: %v", err)
	}
	r.sync, r.subs, r.online = s, s.Subscriptions(), false
}

func (r *rig) tick() time.Time { r.now++; return time.Unix(r.now, 0) }

// apply carries out the Syncer's actions; it fails the test if the exchange does
// not settle (an echo loop).
func (r *rig) apply(a shadow.Actions, err error) {
	r.t.Helper()
	if err != nil {
		r.t.Fatalf("syncer: %v", err)
	}
	r.localOut = append(r.localOut, a.Local...)
	r.conflicts = append(r.conflicts, a.Conflicts...)
	r.failures = append(r.failures, a.Failures...)
	r.echoes += a.Echoes
	r.stale += a.Stale
	for _, p := range a.Upstream {
		if r.steps++; r.steps > 1000 {
			r.t.Fatalf("more than 1000 messages between gateway and cloud: an echo loop")
		}
		r.upstream = append(r.upstream, p)
		if r.online {
			r.queue = append(r.queue, p)
		}
	}
	r.pump()
}

// pump delivers the queued upstream messages to the cloud in order (one MQTT
// connection delivers in order), unless the link is paused.
func (r *rig) pump() {
	r.t.Helper()
	if r.pumping || r.paused {
		return
	}
	r.pumping = true
	defer func() { r.pumping = false }()
	for len(r.queue) > 0 && r.online {
		p := r.queue[0]
		r.queue = r.queue[1:]
		r.fromCloud(r.cloud.Handle(r.ctx, shadow.Request{Topic: p.Topic, Payload: p.Payload, Time: r.tick()}))
	}
}

func (r *rig) fromCloud(out []shadow.Response) {
	r.t.Helper()
	if !r.online {
		return
	}
	for _, m := range out {
		if slices.Contains(r.subs, m.Topic) {
			r.history = append(r.history, m)
			r.apply(r.sync.Upstream(r.ctx, m.Topic, m.Payload))
		}
	}
}

func (r *rig) connect() {
	r.t.Helper()
	r.online = true
	r.apply(r.sync.Connected(r.ctx))
}

func (r *rig) disconnect() {
	r.online = false
	r.queue = nil // lost with the connection; the Syncer sends them again
	r.sync.Disconnected()
}

// device publishes on the local broker, then the bridge sends what is pending.
func (r *rig) device(topic, payload string) []shadow.Response {
	r.t.Helper()
	out := r.local.Handle(r.ctx, shadow.Request{Topic: topic, Payload: []byte(payload), Time: r.tick()})
	if len(out) == 0 || !strings.HasSuffix(out[0].Topic, "/accepted") {
		r.t.Fatalf("local %s %s: got%s; want accepted", topic, payload, show(out))
	}
	select {
	case <-r.sync.Wake():
		r.apply(r.sync.Pending(r.ctx), nil)
	default:
	}
	return out
}

// app publishes to the cloud's shadow service, as a cloud application does.
func (r *rig) app(topic, payload string) {
	r.t.Helper()
	out := r.cloud.Handle(r.ctx, shadow.Request{Topic: topic, Payload: []byte(payload), Time: r.tick()})
	if len(out) == 0 || !strings.HasSuffix(out[0].Topic, "/accepted") {
		r.t.Fatalf("cloud %s %s: got%s; want accepted", topic, payload, show(out))
	}
	r.fromCloud(out)
}

// state returns the desired and reported state of a shadow of svc.
func state(t *testing.T, svc *shadow.Service, prefix string) string {
	t.Helper()
	out := svc.Handle(context.Background(), shadow.Request{Topic: prefix + "/get", Time: time.Unix(1, 0)})
	if len(out) != 1 || !strings.HasSuffix(out[0].Topic, "/get/accepted") {
		return "none"
	}
	var doc struct {
		State map[string]json.RawMessage
	}
	_ = json.Unmarshal(out[0].Payload, &doc)
	delete(doc.State, "delta")
	b, _ := json.Marshal(doc.State)
	return string(b)
}

func wantState(t *testing.T, where string, svc *shadow.Service, prefix, want string) {
	t.Helper()
	if got := state(t, svc, prefix); compact(got) != compact(want) {
		t.Fatalf("%s state = %s; want %s", where, got, compact(want))
	}
}

const lampTopic = "$aws/things/lamp/shadow"

func TestSyncReportedGoesUpAfterReconnect(t *testing.T) {
	r := newRig(t, shadow.SyncShadow{Thing: "lamp", Direction: shadow.Both})
	r.device(lampTopic+"/update", `{"state":{"reported":{"on":true,"level":3}}}`)
	first := time.Unix(r.now, 0)
	r.device(lampTopic+"/update", `{"state":{"reported":{"level":4}}}`)
	// The second change is merged into the first: one entry, as old as the first.
	if got, want := r.sync.Stats(), (shadow.SyncStats{Outbox: 1, Oldest: first}); got != want {
		t.Fatalf("Stats while offline = %+v; want %+v", got, want)
	}
	wantState(t, "cloud before reconnect", r.cloud, lampTopic, `none`)
	r.connect()
	wantState(t, "cloud", r.cloud, lampTopic, `{"reported":{"on":true,"level":4}}`)
	if got, want := r.sync.Stats(), (shadow.SyncStats{Online: true}); got != want {
		t.Fatalf("Stats after the cloud accepted = %+v; want %+v", got, want)
	}
}

func TestSyncDesiredComesDownAfterReconnect(t *testing.T) {
	r := newRig(t, shadow.SyncShadow{Thing: "lamp", Direction: shadow.Both})
	r.app(lampTopic+"/update", `{"state":{"desired":{"on":true}}}`) // while the uplink is down: the message is lost
	wantState(t, "local before reconnect", r.local, lampTopic, `none`)
	r.connect()
	wantState(t, "local", r.local, lampTopic, `{"desired":{"on":true}}`)
	// The device gets the delta on the local broker.
	var delta []byte
	for _, m := range r.localOut {
		if m.Topic == lampTopic+"/update/delta" {
			delta = m.Payload
		}
	}
	if delta == nil || !strings.Contains(string(delta), `"state":{"on":true}`) {
		t.Fatalf("local messages:%s\nwant an update/delta with state {\"on\":true}", show(r.localOut))
	}
	// Online, a cloud change comes down at once.
	r.app(lampTopic+"/update", `{"state":{"desired":{"on":false}}}`)
	wantState(t, "local", r.local, lampTopic, `{"desired":{"on":false}}`)
}

// TestSyncOutboxMerges: changes made while the uplink is down are merged into
// one outbox entry per shadow when that gives the same end state, and kept
// apart when it would not.
func TestSyncOutboxMerges(t *testing.T) {
	tests := []struct {
		name    string
		updates []string
		entries int
		want    string // both sides' state after reconnect
	}{
		{"reports merge", []string{
			`{"state":{"reported":{"t":1,"l":{"a":1}}}}`, `{"state":{"reported":{"t":2,"l":{"b":2}}}}`,
			`{"state":{"reported":{"t":3}}}`, `{"state":{"desired":{"on":true}}}`,
		}, 1, `{"desired":{"on":true},"reported":{"l":{"a":1,"b":2,"c":3},"t":3,"x":1}}`},
		{"a deletion merges", []string{`{"state":{"reported":{"t":1}}}`, `{"state":{"reported":{"t":null,"u":1}}}`}, 1,
			`{"reported":{"l":{"a":1,"c":3},"u":1,"x":1}}`},
		{"an object after a deletion does not merge", []string{
			`{"state":{"reported":{"l":null}}}`, `{"state":{"reported":{"l":{"b":2}}}}`,
		}, 2, `{"reported":{"l":{"b":2},"x":1}}`},
		{"an object after a scalar does not merge", []string{
			`{"state":{"reported":{"l":5}}}`, `{"state":{"reported":{"l":{"b":2}}}}`,
		}, 2, `{"reported":{"l":{"b":2},"x":1}}`},
		{"a section written after it was cleared does not merge", []string{
			`{"state":{"reported":null}}`, `{"state":{"reported":{"l":{"b":2}}}}`,
		}, 2, `{"reported":{"l":{"b":2}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, shadow.SyncShadow{Thing: "lamp", Direction: shadow.Both})
			r.connect()
			r.device(lampTopic+"/update", `{"state":{"reported":{"l":{"a":1,"c":3},"x":1}}}`)
			r.disconnect()
			for _, u := range tt.updates {
				r.device(lampTopic+"/update", u)
			}
			if n := r.sync.Outbox(); n != tt.entries {
				t.Fatalf("outbox = %d; want %d", n, tt.entries)
			}
			r.connect()
			wantState(t, "local", r.local, lampTopic, tt.want)
			wantState(t, "cloud", r.cloud, lampTopic, tt.want)
		})
	}
}

// TestSyncLateAnswerDoesNotAckAMergedChange: the cloud's answer to an entry
// sent before a reconnect arrives after the entry absorbed a newer change; the
// newer change must still reach the cloud.
func TestSyncLateAnswerDoesNotAckAMergedChange(t *testing.T) {
	r := newRig(t, shadow.SyncShadow{Thing: "lamp", Direction: shadow.Up})
	r.connect()
	r.paused = true
	r.device(lampTopic+"/update", `{"state":{"reported":{"a":1}}}`) // sent, not yet answered
	sent := r.queue[0]
	r.disconnect()
	r.device(lampTopic+"/update", `{"state":{"reported":{"b":2}}}`) // absorbed into the unsent entry
	// The cloud did apply the first send; its answer comes after the reconnect.
	late := r.cloud.Handle(r.ctx, shadow.Request{Topic: sent.Topic, Payload: sent.Payload, Time: r.tick()})
	r.paused = false
	r.online = true
	r.fromCloud(late)
	r.online = false
	r.connect()
	wantState(t, "cloud", r.cloud, lampTopic, `{"reported":{"a":1,"b":2}}`)
	if n := r.sync.Outbox(); n != 0 {
		t.Fatalf("outbox = %d; want 0", n)
	}
}

// TestSyncNoEcho proves that no update bounces: every local update crosses the
// uplink once, every cloud update is applied locally once and never sent back.
func TestSyncNoEcho(t *testing.T) {
	r := newRig(t, shadow.SyncShadow{Thing: "lamp", Direction: shadow.Both},
		shadow.SyncShadow{Thing: "lamp", Shadow: "cfg", Direction: shadow.Both})
	r.connect()
	gets := len(r.upstream)
	const rounds = 20
	for i := range rounds {
		r.device(lampTopic+"/update", `{"state":{"reported":{"level":`+itoa(i)+`}}}`)
		r.app(lampTopic+"/update", `{"state":{"desired":{"level":`+itoa(i+1)+`}}}`)
		r.app(lampTopic+"/name/cfg/update", `{"state":{"desired":{"mode":"m`+itoa(i)+`"}}}`)
		r.device(lampTopic+"/name/cfg/update", `{"state":{"reported":{"mode":"m`+itoa(i)+`"}}}`)
	}
	if got, want := len(r.upstream)-gets, 2*rounds; got != want {
		t.Fatalf("messages sent to the cloud = %d; want %d (one per local update)", got, want)
	}
	if r.echoes != 2*2*rounds {
		t.Fatalf("cloud answers recognised as the gateway's own = %d; want %d (accepted and documents per update)", r.echoes, 4*rounds)
	}
	// Cloud changes were applied locally once each: the local version counts
	// 2 per round (one device report, one cloud change) per shadow.
	wantVersion := int64(2 * rounds)
	if v := version(t, r.local, lampTopic); v != wantVersion {
		t.Fatalf("local version = %d; want %d", v, wantVersion)
	}
	if v := version(t, r.cloud, lampTopic); v != wantVersion {
		t.Fatalf("cloud version = %d; want %d", v, wantVersion)
	}
	wantState(t, "local", r.local, lampTopic, `{"desired":{"level":20},"reported":{"level":19}}`)
	wantState(t, "cloud", r.cloud, lampTopic, `{"desired":{"level":20},"reported":{"level":19}}`)
	if len(r.conflicts) != 0 || len(r.failures) != 0 {
		t.Fatalf("conflicts %v, failures %v; want none", r.conflicts, r.failures)
	}
	// Another client's get in the cloud is not an answer to the gateway's.
	before := r.steps
	r.app(lampTopic+"/get", `{"clientToken":"app"}`)
	if r.steps != before {
		t.Fatalf("a foreign get answer made the gateway send %d messages; want 0", r.steps-before)
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func TestSyncDuplicateCloudMessagesAreStale(t *testing.T) {
	r := newRig(t, shadow.SyncShadow{Thing: "lamp", Direction: shadow.Down})
	r.connect()
	out := r.cloud.Handle(r.ctx, shadow.Request{Topic: lampTopic + "/update", Payload: []byte(`{"state":{"desired":{"on":true}}}`), Time: r.tick()})
	r.fromCloud(out) // accepted and documents: the second is the same version
	r.fromCloud(out) // delivered again (QoS 1 redelivery)
	if r.stale != 3 {
		t.Fatalf("stale = %d; want 3 (documents once, both again)", r.stale)
	}
	if v := version(t, r.local, lampTopic); v != 1 {
		t.Fatalf("local version = %d; want 1: the change applied once", v)
	}
}

// TestSyncConflicts covers the documented conflict rule: the section's owner
// wins, nothing is dropped without a Conflict.
func TestSyncConflicts(t *testing.T) {
	tests := []struct {
		name      string
		cfg       shadow.SyncShadow
		local     string // made on the gateway while the uplink is down
		cloud     string // made in the cloud meanwhile
		want      string // both sides after reconnect
		conflicts string // section/path=winner kept K discarded D, sorted
	}{{
		name:      "desired belongs to the cloud",
		cfg:       shadow.SyncShadow{Thing: "lamp", Direction: shadow.Both},
		local:     `{"state":{"desired":{"color":"red","level":1}}}`,
		cloud:     `{"state":{"desired":{"color":"blue"}}}`,
		want:      `{"desired":{"color":"blue","level":1}}`,
		conflicts: `desired/color=cloud kept "blue" discarded "red"`,
	}, {
		name:      "reported belongs to the device",
		cfg:       shadow.SyncShadow{Thing: "lamp", Direction: shadow.Both},
		local:     `{"state":{"reported":{"temp":20}}}`,
		cloud:     `{"state":{"reported":{"temp":99,"fw":"2"}}}`,
		want:      `{"reported":{"temp":20,"fw":"2"}}`,
		conflicts: `reported/temp=device kept 20 discarded 99`,
	}, {
		name:      "desired configured to belong to the device",
		cfg:       shadow.SyncShadow{Thing: "lamp", Direction: shadow.Both, DesiredOwner: shadow.OwnerDevice},
		local:     `{"state":{"desired":{"color":"red"}}}`,
		cloud:     `{"state":{"desired":{"color":"blue"}}}`,
		want:      `{"desired":{"color":"red"}}`,
		conflicts: `desired/color=device kept "red" discarded "blue"`,
	}, {
		name:      "reported configured to belong to the cloud",
		cfg:       shadow.SyncShadow{Thing: "lamp", Direction: shadow.Both, ReportedOwner: shadow.OwnerCloud},
		local:     `{"state":{"reported":{"temp":20}}}`,
		cloud:     `{"state":{"reported":{"temp":99}}}`,
		want:      `{"reported":{"temp":99}}`,
		conflicts: `reported/temp=cloud kept 99 discarded 20`,
	}, {
		name:  "different fields do not conflict",
		cfg:   shadow.SyncShadow{Thing: "lamp", Direction: shadow.Both},
		local: `{"state":{"reported":{"temp":20},"desired":{"a":1}}}`,
		cloud: `{"state":{"desired":{"b":2},"reported":{"fw":"2"}}}`,
		want:  `{"desired":{"a":1,"b":2},"reported":{"temp":20,"fw":"2"}}`,
	}, {
		name:  "the same value on both sides does not conflict",
		cfg:   shadow.SyncShadow{Thing: "lamp", Direction: shadow.Both},
		local: `{"state":{"desired":{"on":true}}}`,
		cloud: `{"state":{"desired":{"on":true}}}`,
		want:  `{"desired":{"on":true}}`,
	}, {
		name:      "nested fields conflict leaf by leaf",
		cfg:       shadow.SyncShadow{Thing: "lamp", Direction: shadow.Both},
		local:     `{"state":{"desired":{"light":{"color":"red","level":1}}}}`,
		cloud:     `{"state":{"desired":{"light":{"color":"blue","on":true}}}}`,
		want:      `{"desired":{"light":{"color":"blue","level":1,"on":true}}}`,
		conflicts: `desired/light/color=cloud kept "blue" discarded "red"`,
	}, {
		name:      "a deletion conflicts with a change",
		cfg:       shadow.SyncShadow{Thing: "lamp", Direction: shadow.Both},
		local:     `{"state":{"reported":{"temp":null}}}`,
		cloud:     `{"state":{"reported":{"temp":5}}}`,
		want:      `{}`,
		conflicts: `reported/temp=device kept null discarded 5`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, tt.cfg)
			// Both sides start from the same synced state.
			r.connect()
			r.device(lampTopic+"/update", `{"state":{"reported":{"temp":10}}}`)
			r.disconnect()

			r.device(lampTopic+"/update", tt.local)
			r.app(lampTopic+"/update", tt.cloud)
			r.connect()

			var got []string
			for _, c := range r.conflicts {
				kept, _ := json.Marshal(c.Kept)
				disc, _ := json.Marshal(c.Discarded)
				got = append(got, c.Section+"/"+strings.Join(c.Path, "/")+"="+c.Winner.String()+" kept "+string(kept)+" discarded "+string(disc))
			}
			slices.Sort(got)
			if strings.Join(got, "; ") != tt.conflicts {
				t.Errorf("conflicts = %q; want %q", strings.Join(got, "; "), tt.conflicts)
			}
			wantState(t, "local", r.local, lampTopic, withTemp(tt.want))
			wantState(t, "cloud", r.cloud, lampTopic, withTemp(tt.want))
			if n := r.sync.Outbox(); n != 0 {
				t.Fatalf("outbox after sync = %d; want 0", n)
			}
		})
	}
}

// withTemp adds the starting reported temp 10 unless the case changed it; an
// empty state stays empty.
func withTemp(s string) string {
	if s == `{}` {
		return s
	}
	var st map[string]map[string]any
	_ = json.Unmarshal([]byte(s), &st)
	if st["reported"] == nil {
		st["reported"] = map[string]any{}
	}
	if _, ok := st["reported"]["temp"]; !ok {
		st["reported"]["temp"] = 10
	}
	b, _ := json.Marshal(st)
	return string(b)
}

// TestSyncConflictInFlight: the cloud changes a field while the gateway's
// change of the same field is on its way. Both reach the cloud, which orders
// them like any two of its clients; the gateway puts off the cloud's change
// until its own has landed, then both sides hold the cloud's final value.
func TestSyncConflictInFlight(t *testing.T) {
	r := newRig(t, shadow.SyncShadow{Thing: "lamp", Direction: shadow.Both})
	r.connect()
	r.paused = true
	r.device(lampTopic+"/update", `{"state":{"desired":{"color":"red"}}}`) // in flight
	r.app(lampTopic+"/update", `{"state":{"desired":{"color":"blue"}}}`)   // the cloud applies it first
	wantState(t, "local while in flight", r.local, lampTopic, `{"desired":{"color":"red"}}`)
	r.paused = false
	r.pump()
	wantState(t, "cloud", r.cloud, lampTopic, `{"desired":{"color":"red"}}`)
	wantState(t, "local", r.local, lampTopic, `{"desired":{"color":"red"}}`)
	if len(r.conflicts) != 0 {
		t.Fatalf("conflicts = %+v; want none: the cloud ordered the two changes", r.conflicts)
	}
	if n := r.sync.Outbox(); n != 0 {
		t.Fatalf("outbox = %d; want 0", n)
	}
}

// TestSyncSurvivesRestart: a gateway killed with changes in its outbox and a
// cloud state it knew sends the changes after restart and does not apply old
// cloud changes again.
func TestSyncSurvivesRestart(t *testing.T) {
	r := newRig(t, shadow.SyncShadow{Thing: "lamp", Direction: shadow.Both})
	r.connect()
	r.app(lampTopic+"/update", `{"state":{"desired":{"on":true}}}`)
	r.disconnect()
	r.device(lampTopic+"/update", `{"state":{"reported":{"on":true}}}`)
	r.app(lampTopic+"/update", `{"state":{"desired":{"level":7}}}`) // lost: uplink down

	r.start() // the process restarts on the same Store
	if n := r.sync.Outbox(); n != 1 {
		t.Fatalf("outbox after restart = %d; want 1", n)
	}
	localVersion := version(t, r.local, lampTopic)
	r.connect()
	wantState(t, "cloud", r.cloud, lampTopic, `{"desired":{"on":true,"level":7},"reported":{"on":true}}`)
	wantState(t, "local", r.local, lampTopic, `{"desired":{"on":true,"level":7},"reported":{"on":true}}`)
	// Only the level change came down: one local version more.
	if v := version(t, r.local, lampTopic); v != localVersion+1 {
		t.Fatalf("local version = %d; want %d (only the missed change applied)", v, localVersion+1)
	}
	// A second restart and reconnect finds nothing new.
	r.start()
	r.connect()
	if v := version(t, r.local, lampTopic); v != localVersion+1 {
		t.Fatalf("local version after a second restart = %d; want %d", v, localVersion+1)
	}
}

func TestSyncDirections(t *testing.T) {
	t.Run("up only: cloud changes stay in the cloud", func(t *testing.T) {
		r := newRig(t, shadow.SyncShadow{Thing: "lamp", Direction: shadow.Up})
		r.connect()
		r.device(lampTopic+"/update", `{"state":{"reported":{"on":true}}}`)
		r.app(lampTopic+"/update", `{"state":{"desired":{"on":false}}}`)
		wantState(t, "local", r.local, lampTopic, `{"reported":{"on":true}}`)
		wantState(t, "cloud", r.cloud, lampTopic, `{"desired":{"on":false},"reported":{"on":true}}`)
	})
	t.Run("down only: local changes stay local", func(t *testing.T) {
		r := newRig(t, shadow.SyncShadow{Thing: "lamp", Direction: shadow.Down})
		r.connect()
		r.device(lampTopic+"/update", `{"state":{"reported":{"on":true}}}`)
		r.app(lampTopic+"/update", `{"state":{"desired":{"on":false}}}`)
		wantState(t, "local", r.local, lampTopic, `{"desired":{"on":false},"reported":{"on":true}}`)
		wantState(t, "cloud", r.cloud, lampTopic, `{"desired":{"on":false}}`)
		if n := r.sync.Outbox(); n != 0 {
			t.Fatalf("outbox = %d; want 0", n)
		}
	})
	t.Run("down only: the cloud wins a field both changed", func(t *testing.T) {
		r := newRig(t, shadow.SyncShadow{Thing: "lamp", Direction: shadow.Down, ReportedOwner: shadow.OwnerDevice})
		r.connect()
		r.app(lampTopic+"/update", `{"state":{"reported":{"temp":1}}}`)
		r.disconnect()
		r.device(lampTopic+"/update", `{"state":{"reported":{"temp":20,"fw":"2"}}}`)
		r.app(lampTopic+"/update", `{"state":{"reported":{"temp":99}}}`)
		r.connect()
		wantState(t, "local", r.local, lampTopic, `{"reported":{"temp":99,"fw":"2"}}`)
		wantState(t, "cloud", r.cloud, lampTopic, `{"reported":{"temp":99}}`)
		if len(r.conflicts) != 1 || r.conflicts[0].Winner != shadow.OwnerCloud {
			t.Fatalf("conflicts = %+v; want one won by the cloud", r.conflicts)
		}
	})
	t.Run("shadows not configured are not synced", func(t *testing.T) {
		r := newRig(t, shadow.SyncShadow{Thing: "lamp", Shadow: "cfg", Direction: shadow.Both})
		r.connect()
		r.device(lampTopic+"/update", `{"state":{"reported":{"on":true}}}`)
		wantState(t, "cloud", r.cloud, lampTopic, `none`)
		a, err := r.sync.Upstream(r.ctx, "$aws/things/other/shadow/update/documents", []byte(`{}`))
		if err != nil || !reflect.DeepEqual(a, shadow.Actions{}) {
			t.Fatalf("Upstream for an unsynced shadow = %+v, %v; want nothing", a, err)
		}
	})
}

// TestSyncCloudRefusal: a change the cloud refuses for good leaves the outbox
// as a Failure; it is not retried for ever, and not dropped silently.
func TestSyncCloudRefusal(t *testing.T) {
	r := newRig(t, shadow.SyncShadow{Thing: "lamp", Direction: shadow.Both})
	r.cloud = shadow.New(shadow.NewMemStore(), shadow.Options{Limits: shadow.Limits{MaxStateBytes: 20}})
	r.device(lampTopic+"/update", `{"state":{"reported":{"name":"a long value the cloud refuses"}}}`)
	r.connect()
	want := []shadow.Failure{{Thing: "lamp", Code: 413, Message: "The payload exceeds the maximum size allowed"}}
	for i := range r.failures {
		r.failures[i].Seq = 0 // which entry number is not the point
	}
	if !reflect.DeepEqual(r.failures, want) {
		t.Fatalf("failures = %+v; want %+v", r.failures, want)
	}
	if n := r.sync.Outbox(); n != 0 {
		t.Fatalf("outbox = %d; want 0", n)
	}
}

// TestSyncMissedVersion: a cloud change whose version skips one makes the
// Syncer ask for the whole shadow instead of applying a partial change.
func TestSyncMissedVersion(t *testing.T) {
	r := newRig(t, shadow.SyncShadow{Thing: "lamp", Direction: shadow.Down})
	r.connect()
	r.online = false // the next cloud message is lost
	r.app(lampTopic+"/update", `{"state":{"desired":{"a":1}}}`)
	r.online = true
	out := r.cloud.Handle(r.ctx, shadow.Request{Topic: lampTopic + "/update", Payload: []byte(`{"state":{"desired":{"b":2}}}`), Time: r.tick()})
	r.fromCloud(out[:1]) // only update/accepted (version 2, the Syncer knows 0)
	wantState(t, "local", r.local, lampTopic, `{"desired":{"a":1,"b":2}}`)
}

// TestSyncCloudClearsState: a cloud update {"state": null} clears the local
// shadow too (its update/accepted echoes "state": null).
func TestSyncCloudClearsState(t *testing.T) {
	for _, topicKind := range []string{"update/accepted", "update/documents"} {
		t.Run(topicKind, func(t *testing.T) {
			r := newRig(t, shadow.SyncShadow{Thing: "lamp", Direction: shadow.Down})
			r.subs = []string{lampTopic + "/" + topicKind, lampTopic + "/get/accepted"}
			r.connect()
			r.app(lampTopic+"/update", `{"state":{"desired":{"a":1},"reported":{"b":2}}}`)
			wantState(t, "local", r.local, lampTopic, `{"desired":{"a":1},"reported":{"b":2}}`)
			r.app(lampTopic+"/update", `{"state":null}`)
			wantState(t, "local", r.local, lampTopic, `{}`)
		})
	}
}

// TestSyncFirstTime: a shadow that exists on both sides before it is
// configured for sync is merged by the conflict rule on the first connect.
func TestSyncFirstTime(t *testing.T) {
	ctx := context.Background()
	store := shadow.NewMemStore()
	before := shadow.New(store, shadow.Options{})
	mustAccept(t, before, lampTopic+"/update", `{"state":{"desired":{"color":"red"},"reported":{"color":"red","temp":20}}}`, 1700000000)

	r := &rig{t: t, ctx: ctx, store: store, now: 1700000100,
		opts:  shadow.SyncOptions{TokenPrefix: "gw1", Shadows: []shadow.SyncShadow{{Thing: "lamp", Direction: shadow.Both}}},
		cloud: shadow.New(shadow.NewMemStore(), shadow.Options{})}
	r.app(lampTopic+"/update", `{"state":{"desired":{"color":"blue"},"reported":{"temp":5,"fw":"1"}}}`)
	r.start()
	r.connect()
	want := `{"desired":{"color":"blue"},"reported":{"color":"red","temp":20,"fw":"1"}}`
	wantState(t, "local", r.local, lampTopic, want)
	wantState(t, "cloud", r.cloud, lampTopic, want)
	if len(r.conflicts) != 2 {
		t.Fatalf("conflicts = %+v; want 2 (desired color to the cloud, reported temp to the device)", r.conflicts)
	}
	// A restart does not start over.
	r.start()
	r.connect()
	if n := r.sync.Outbox(); n != 0 || len(r.conflicts) != 2 {
		t.Fatalf("after a restart: outbox %d, conflicts %d; want 0 and still 2", n, len(r.conflicts))
	}
}

func TestNewSyncerRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		opts shadow.SyncOptions
		want string
	}{
		{"bad thing", shadow.SyncOptions{Shadows: []shadow.SyncShadow{{Thing: "a/b", Direction: shadow.Both}}}, `shadows[0]: thing "a/b"`},
		{"bad shadow", shadow.SyncOptions{Shadows: []shadow.SyncShadow{{Thing: "a", Shadow: "x y", Direction: shadow.Both}}}, `shadows[0]: shadow "x y"`},
		{"no direction", shadow.SyncOptions{Shadows: []shadow.SyncShadow{{Thing: "a"}}}, `shadows[0] (a): direction 0`},
		{"bad owner", shadow.SyncOptions{Shadows: []shadow.SyncShadow{{Thing: "a", Direction: shadow.Up, DesiredOwner: 9}}}, `shadows[0] (a): owner`},
		{"twice", shadow.SyncOptions{Shadows: []shadow.SyncShadow{{Thing: "a", Direction: shadow.Up}, {Thing: "a", Direction: shadow.Down}}}, `shadows[1]: a/"" is configured twice`},
		{"bad prefix", shadow.SyncOptions{TokenPrefix: "gw:1"}, `token prefix "gw:1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := shadow.NewSyncer(context.Background(), shadow.New(shadow.NewMemStore(), shadow.Options{}), tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewSyncer error = %v; want one containing %q", err, tt.want)
			}
		})
	}
}

// TestSyncConcurrent runs devices updating synced shadows while the bridge
// drains the outbox and feeds the cloud's answers back, all at once (run it
// with -race). Afterwards the cloud holds what the devices reported last.
func TestSyncConcurrent(t *testing.T) {
	ctx := context.Background()
	local := shadow.New(shadow.NewMemStore(), shadow.Options{})
	cloud := shadow.New(shadow.NewMemStore(), shadow.Options{})
	things := []string{"a", "b", "c"}
	var cfg []shadow.SyncShadow
	for _, th := range things {
		cfg = append(cfg, shadow.SyncShadow{Thing: th, Direction: shadow.Both})
	}
	s, err := shadow.NewSyncer(ctx, local, shadow.SyncOptions{Shadows: cfg})
	if err != nil {
		t.Fatal(err)
	}
	subs := s.Subscriptions()
	var mu sync.Mutex // one bridge goroutine at a time talks to the cloud, like one MQTT connection
	send := func(a shadow.Actions, err error) {
		if err != nil {
			t.Errorf("syncer: %v", err)
		}
		queue := a.Upstream
		for steps := 0; len(queue) > 0; steps++ {
			if steps > 10000 {
				t.Errorf("the exchange does not settle")
				return
			}
			p := queue[0]
			queue = queue[1:]
			for _, m := range cloud.Handle(ctx, shadow.Request{Topic: p.Topic, Payload: p.Payload}) {
				if slices.Contains(subs, m.Topic) {
					got, err := s.Upstream(ctx, m.Topic, m.Payload)
					if err != nil {
						t.Errorf("Upstream: %v", err)
					}
					queue = append(queue, got.Upstream...)
				}
			}
		}
	}
	mu.Lock()
	send(s.Connected(ctx))
	mu.Unlock()

	const devices, updates = 4, 25
	var wg sync.WaitGroup
	for d := range devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range updates {
				th := things[(d+i)%len(things)]
				local.Handle(ctx, shadow.Request{Topic: "$aws/things/" + th + "/shadow/update",
					Payload: []byte(`{"state":{"reported":{"d` + itoa(d) + `":` + itoa(i) + `}}}`)})
			}
		}()
	}
	stop := make(chan struct{})
	bridge := make(chan struct{})
	go func() {
		defer close(bridge)
		for {
			select {
			case <-s.Wake():
				mu.Lock()
				send(s.Pending(ctx), nil)
				mu.Unlock()
			case <-stop:
				return
			}
		}
	}()
	wg.Wait()
	close(stop)
	<-bridge
	mu.Lock()
	send(s.Pending(ctx), nil)
	mu.Unlock()
	if n := s.Outbox(); n != 0 {
		t.Fatalf("outbox after draining = %d; want 0", n)
	}
	for _, th := range things {
		wantState(t, "cloud "+th, cloud, "$aws/things/"+th+"/shadow", state(t, local, "$aws/things/"+th+"/shadow"))
	}
}

// TestSyncCloudShadowRecreated: a cloud shadow deleted and created again after
// 48 hours starts again at version 1; the reconnect /get still brings its state.
func TestSyncCloudShadowRecreated(t *testing.T) {
	r := newRig(t, shadow.SyncShadow{Thing: "lamp", Direction: shadow.Down})
	r.connect()
	for i := range 3 {
		r.app(lampTopic+"/update", `{"state":{"desired":{"n":`+itoa(i)+`}}}`)
	}
	r.disconnect()
	r.app(lampTopic+"/delete", ``)
	r.now += 48*3600 + 1
	r.app(lampTopic+"/update", `{"state":{"desired":{"n":"new"}}}`)
	if v := version(t, r.cloud, lampTopic); v != 1 {
		t.Fatalf("cloud version after re-creation = %d; want 1", v)
	}
	r.connect()
	wantState(t, "local", r.local, lampTopic, `{"desired":{"n":"new"}}`)
}

func TestParseDirectionAndOwner(t *testing.T) {
	dirs := []struct {
		in   string
		want shadow.Direction
		ok   bool
	}{{"up", shadow.Up, true}, {"down", shadow.Down, true}, {"both", shadow.Both, true}, {"Up", 0, false}, {"", 0, false}}
	for _, tt := range dirs {
		got, err := shadow.ParseDirection(tt.in)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("ParseDirection(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	owners := []struct {
		in   string
		want shadow.Owner
		ok   bool
	}{{"", shadow.OwnerDefault, true}, {"cloud", shadow.OwnerCloud, true}, {"device", shadow.OwnerDevice, true}, {"gateway", 0, false}}
	for _, tt := range owners {
		got, err := shadow.ParseOwner(tt.in)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("ParseOwner(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// TestSyncConverges drives random interleavings of device and cloud updates,
// uplink drops, messages held in flight, cloud messages delivered again, and
// gateway restarts, with every choice of owners, then reconnects
// once more and checks that both sides hold the same state, and that no
// exchange looped (rig.apply fails the test after 1,000 messages).
func TestSyncConverges(t *testing.T) {
	keys := []string{"a", "b", "c"}
	values := []string{`1`, `2`, `"x"`, `null`, `{"n":1}`, `{"m":2}`, `[1,2]`}
	conflicts, merges := 0, 0
	for seed := range 500 {
		rng := rand.New(rand.NewPCG(uint64(seed), 7))
		owners := []shadow.Owner{shadow.OwnerDefault, shadow.OwnerCloud, shadow.OwnerDevice}
		r := newRig(t, shadow.SyncShadow{Thing: "lamp", Direction: shadow.Both,
			DesiredOwner: owners[rng.IntN(3)], ReportedOwner: owners[rng.IntN(3)]})
		var script []string
		update := func() string {
			sec := []string{"desired", "reported"}[rng.IntN(2)]
			if rng.IntN(20) == 0 {
				return `{"state":{"` + sec + `":null}}`
			}
			k := keys[rng.IntN(len(keys))]
			return `{"state":{"` + sec + `":{"` + k + `":` + values[rng.IntN(len(values))] + `}}}`
		}
		for range 40 {
			switch op := rng.IntN(11); {
			case op == 10:
				if r.online && len(r.history) > 0 {
					m := r.history[rng.IntN(len(r.history))]
					script = append(script, "redeliver "+m.Topic+" "+string(m.Payload))
					r.apply(r.sync.Upstream(r.ctx, m.Topic, m.Payload))
				}
			case op < 4:
				u := update()
				script = append(script, "device "+u)
				r.device(lampTopic+"/update", u)
			case op < 7:
				u := update()
				script = append(script, "cloud "+u)
				r.app(lampTopic+"/update", u)
			case op == 7:
				if r.online {
					script = append(script, "disconnect")
					r.disconnect()
				} else {
					script = append(script, "connect")
					r.connect()
				}
			case op == 8:
				script = append(script, "toggle pause")
				r.paused = !r.paused
				r.pump()
			case op == 9:
				script = append(script, "restart")
				r.disconnect()
				r.start()
			}
		}
		r.paused = false
		r.pump()
		r.disconnect()
		r.connect()
		local, cloud := state(t, r.local, lampTopic), state(t, r.cloud, lampTopic)
		if compact(local) != compact(cloud) {
			t.Fatalf("seed %d: local %s, cloud %s after:\n  %s", seed, local, cloud, strings.Join(script, "\n  "))
		}
		conflicts += len(r.conflicts)
		if len(r.localOut) > 0 {
			merges++
		}
	}
	// The runs must have exercised what they test.
	if conflicts == 0 || merges == 0 {
		t.Fatalf("%d conflicts and %d runs with cloud changes applied locally; want some of each", conflicts, merges)
	}
	t.Logf("%d conflicts resolved, %d runs applied cloud changes locally", conflicts, merges)
}

// TestSyncOldGetAnswerIgnored: an answer to an earlier /get, delivered again
// while a newer /get is outstanding, must not take the shadow back in time.
func TestSyncOldGetAnswerIgnored(t *testing.T) {
	r := newRig(t, shadow.SyncShadow{Thing: "lamp", Direction: shadow.Both})
	r.app(lampTopic+"/update", `{"state":{"desired":{"x":1}}}`)
	r.connect()
	old := r.history[len(r.history)-1] // the get/accepted with x=1
	if !strings.HasSuffix(old.Topic, "/get/accepted") {
		t.Fatalf("last cloud message on %s; want the get answer", old.Topic)
	}
	r.app(lampTopic+"/update", `{"state":{"desired":{"x":2}}}`)
	r.disconnect()
	r.paused = true
	r.connect() // a new /get, held
	r.apply(r.sync.Upstream(r.ctx, old.Topic, old.Payload))
	wantState(t, "local", r.local, lampTopic, `{"desired":{"x":2}}`)
	r.paused = false
	r.pump()
	wantState(t, "local", r.local, lampTopic, `{"desired":{"x":2}}`)
	wantState(t, "cloud", r.cloud, lampTopic, `{"desired":{"x":2}}`)
}

// TestSyncTwoGatewaysOneCloudShadow: two gateways (their own token prefixes)
// sync the same cloud shadow. A change from either reaches the other through
// the cloud once, and nothing bounces between them.
func TestSyncTwoGatewaysOneCloudShadow(t *testing.T) {
	ctx := context.Background()
	cloud := shadow.New(shadow.NewMemStore(), shadow.Options{})
	type gw struct {
		svc  *shadow.Service
		sync *shadow.Syncer
		subs []string
	}
	var gws []*gw
	for _, prefix := range []string{"gwA", "gwB"} {
		svc := shadow.New(shadow.NewMemStore(), shadow.Options{})
		s, err := shadow.NewSyncer(ctx, svc, shadow.SyncOptions{TokenPrefix: prefix,
			Shadows: []shadow.SyncShadow{{Thing: "lamp", Direction: shadow.Both}}})
		if err != nil {
			t.Fatal(err)
		}
		gws = append(gws, &gw{svc: svc, sync: s, subs: s.Subscriptions()})
	}
	sent := 0
	var send func(p shadow.Publish)
	deliver := func(out []shadow.Response) {
		for _, m := range out {
			for _, g := range gws {
				if !slices.Contains(g.subs, m.Topic) {
					continue
				}
				a, err := g.sync.Upstream(ctx, m.Topic, m.Payload)
				if err != nil {
					t.Fatalf("Upstream: %v", err)
				}
				for _, p := range a.Upstream {
					send(p)
				}
			}
		}
	}
	send = func(p shadow.Publish) {
		if sent++; sent > 100 {
			t.Fatalf("more than 100 messages to the cloud: a loop")
		}
		deliver(cloud.Handle(ctx, shadow.Request{Topic: p.Topic, Payload: p.Payload}))
	}
	for _, g := range gws {
		a, err := g.sync.Connected(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range a.Upstream {
			send(p)
		}
	}
	gets := sent
	for i, g := range gws {
		g.svc.Handle(ctx, shadow.Request{Topic: lampTopic + "/update", Payload: []byte(`{"state":{"reported":{"g` + itoa(i) + `":1}}}`)})
		for _, p := range g.sync.Pending(ctx).Upstream {
			send(p)
		}
	}
	if got := sent - gets; got != 2 {
		t.Fatalf("messages to the cloud = %d; want 2 (one update per gateway)", got)
	}
	want := `{"reported":{"g0":1,"g1":1}}`
	wantState(t, "cloud", cloud, lampTopic, want)
	for i, g := range gws {
		wantState(t, "gateway "+itoa(i), g.svc, lampTopic, want)
	}
}
