package bridge

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/edgegw/edgegw/store"
)

func TestMatch(t *testing.T) {
	tests := []struct {
		name, filter, topic string
		want                bool
	}{
		{"exact", "a/b", "a/b", true},
		{"exact differs", "a/b", "a/c", false},
		{"hash all", "#", "a/b/c", true},
		{"hash parent level [MQTT-4.7.1-2]", "sport/#", "sport", true},
		{"hash children", "sport/#", "sport/tennis/player1", true},
		{"hash other", "sport/#", "sports", false},
		{"plus one level", "sport/+", "sport/tennis", true},
		{"plus not two levels", "sport/+", "sport/tennis/x", false},
		{"plus empty level", "sport/+", "sport/", true},
		{"plus not parent", "sport/+", "sport", false},
		{"plus first", "+/tennis", "sport/tennis", true},
		{"leading slash plus", "+", "/finance", false},
		{"leading slash", "/+", "/finance", true},
		{"plus plus", "+/+", "/finance", true},
		{"dollar not hash [MQTT-4.7.2-1]", "#", "$SYS/x", false},
		{"dollar not plus", "+/x", "$SYS/x", false},
		{"dollar explicit", "$SYS/#", "$SYS/x", true},
		{"longer filter", "a/b/c", "a/b", false},
		{"longer topic", "a/b", "a/b/c", false},
		{"empty levels", "a//b", "a//b", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Match(tc.filter, tc.topic); got != tc.want {
				t.Errorf("Match(%q, %q) = %v; want %v", tc.filter, tc.topic, got, tc.want)
			}
		})
	}
}

// TestValidateFilter checks the bridge's wrapping of the topic rule (the
// rule's own cases are in package topic): sentinels to branch on, the filter
// named, the reason kept.
func TestValidateFilter(t *testing.T) {
	tests := []struct {
		name, filter string
		wantIs       error
		wantErr      string
	}{
		{"valid", "a/+/#", nil, ""},
		{"empty", "", ErrEmptyFilter, "topic filter is empty"},
		{"hash not last", "a/#/b", ErrBadFilter, `invalid topic filter "a/#/b": '#' must be the last level`},
		{"plus in a level", "a+/b", ErrBadFilter, `invalid topic filter "a+/b": '+' must be a whole level (e.g. a/+/c, not a/b+/c)`},
		{"NUL", "a\x00b", ErrBadFilter, `invalid topic filter "a\x00b": must not contain a NUL character`},
		{"too long, not repeated", strings.Repeat("a", 65536), ErrBadFilter, "invalid topic filter: longer than 65535 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateFilter(tt.filter)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.wantErr || !errors.Is(err, tt.wantIs) {
				t.Errorf("ValidateFilter(%.20q) = %v; want %q (errors.Is %v)", tt.filter, err, tt.wantErr, tt.wantIs)
			}
		})
	}
}

func TestRouteMappingMosquittoSemantics(t *testing.T) {
	rs, err := NewRoutes([]Route{
		{Name: "tele", Topic: "building/#", Direction: Out, QoS: 1, RemotePrefix: "sites/plant-7/"},
		{Name: "cmd", Topic: "cmd/#", Direction: In, QoS: 1, RemotePrefix: "sites/plant-7/"},
		{Name: "both", Topic: "x/+", Direction: Both, QoS: 0, LocalPrefix: "local/", RemotePrefix: "remote/"},
		{Topic: "$SYS/broker/#", Direction: Out, QoS: 0, RemotePrefix: "sites/plant-7/"},
	})
	if err != nil {
		t.Fatal(err)
	}
	out := []struct{ local, route, remote string }{
		{"building/f1/temp", "tele", "sites/plant-7/building/f1/temp"},
		{"local/x/1", "both", "remote/x/1"},
		{"$SYS/broker/uptime", "out:$SYS/broker/#", "sites/plant-7/$SYS/broker/uptime"},
		{"cmd/light-1", "", ""}, // in-only
		{"x/1", "", ""},         // local prefix missing
	}
	for _, tc := range out {
		r, ok := rs.FirstOut(tc.local)
		if ok != (tc.route != "") || r.Name != tc.route {
			t.Errorf("FirstOut(%q) = %q, %v; want %q", tc.local, r.Name, ok, tc.route)
			continue
		}
		if ok && r.RemoteTopic(tc.local) != tc.remote {
			t.Errorf("RemoteTopic(%q) = %q; want %q", tc.local, r.RemoteTopic(tc.local), tc.remote)
		}
	}
	in := []struct{ remote, route, local string }{
		{"sites/plant-7/cmd/light-1", "cmd", "cmd/light-1"},
		{"remote/x/2", "both", "local/x/2"},
		{"sites/plant-8/cmd/light-1", "", ""},
		{"sites/plant-7/building/f1", "", ""}, // out-only
	}
	for _, tc := range in {
		r, ok := rs.FirstIn(tc.remote)
		if ok != (tc.route != "") || r.Name != tc.route {
			t.Errorf("FirstIn(%q) = %q, %v; want %q", tc.remote, r.Name, ok, tc.route)
			continue
		}
		if ok && r.LocalTopic(tc.remote) != tc.local {
			t.Errorf("LocalTopic(%q) = %q; want %q", tc.remote, r.LocalTopic(tc.remote), tc.local)
		}
	}
	if got := len(MatchOut(rs.All(), "building/a")); got != 1 {
		t.Errorf("MatchOut: got %d routes; want 1", got)
	}
	if r, _ := rs.ByName("cmd"); r.RemoteFilter() != "sites/plant-7/cmd/#" {
		t.Errorf("RemoteFilter: got %q", r.RemoteFilter())
	}
}

func TestNewRoutesRejects(t *testing.T) {
	tests := []struct {
		name  string
		route Route
		want  string
	}{
		{"bad filter", Route{Topic: "a/#/b", Direction: Out}, "'#' must be the last level"},
		{"no direction", Route{Topic: "a"}, "direction"},
		{"qos 3", Route{Topic: "a", Direction: Out, QoS: 3}, "qos 3"},
		{"wildcard prefix", Route{Topic: "a", Direction: Out, RemotePrefix: "x/+/"}, "remote_prefix"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewRoutes([]Route{tc.route})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v; want an error containing %q", err, tc.want)
			}
		})
	}
	if _, err := NewRoutes([]Route{{Name: "a", Topic: "a", Direction: Out}, {Name: "a", Topic: "b", Direction: Out}}); err == nil {
		t.Error("duplicate names: got nil error")
	}
}

func TestMatchOutDoesNotAllocate(t *testing.T) {
	rs, err := NewRoutes([]Route{
		{Name: "a", Topic: "building/+/temp", Direction: Out, RemotePrefix: "sites/plant-7/"},
		{Name: "b", Topic: "building/#", Direction: Both, LocalPrefix: "lan/", RemotePrefix: "sites/plant-7/"},
	})
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]Route, 0, 4)
	allocs := testing.AllocsPerRun(1000, func() {
		dst = rs.MatchOut(dst[:0], "lan/building/f1/temp")
		_, _ = rs.FirstOut("building/f1/temp")
	})
	if allocs != 0 {
		t.Errorf("allocs per MatchOut+FirstOut: got %v; want 0", allocs)
	}
}

// refMatch is the obvious implementation, for the fuzzer.
func refMatch(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	f, tl := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, fl := range f {
		if fl == "#" {
			return true
		}
		if i >= len(tl) || (fl != "+" && fl != tl[i]) {
			return false
		}
	}
	return len(f) == len(tl)
}

func FuzzMatch(f *testing.F) {
	for _, s := range [][2]string{{"a/#", "a"}, {"+/+", "/x"}, {"#", "$SYS"}, {"a/+/c", "a//c"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, filter, topic string) {
		if ValidateFilter(filter) != nil || strings.ContainsAny(topic, "+#\x00") || topic == "" {
			return
		}
		if got, want := Match(filter, topic), refMatch(filter, topic); got != want {
			t.Fatalf("Match(%q, %q) = %v; want %v", filter, topic, got, want)
		}
	})
}

func TestAppendPublishDecodesWithPaho(t *testing.T) {
	b := &Bridge{cfg: Config{Envelope: EnvelopeUserProperties, UserProps: UserProps{DeviceKey: "device", SeqKey: "seq"}}}
	s := &session{b: b, server: serverLimits{retain: true}}
	for _, size := range []int{0, 100, 200, 20000, 3 << 20} {
		payload := bytes.Repeat([]byte{0xab}, size)
		m := store.Message{Payload: payload, Device: "temp-f01-001", Seq: 1234567890123, Retain: true}
		raw := s.appendPublish(nil, "sites/plant-7/", "building/f1", m.Payload, m, 1, 4242)
		pk, err := packets.ReadPacket(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("size %d: paho cannot decode: %v", size, err)
		}
		p := pk.Content.(*packets.Publish)
		if p.Topic != "sites/plant-7/building/f1" || p.PacketID != 4242 || p.QoS != 1 || !p.Retain || !bytes.Equal(p.Payload, payload) {
			t.Fatalf("size %d: decoded %s", size, p.Topic)
		}
		if len(p.Properties.User) != 2 || p.Properties.User[0] != (packets.User{Key: "device", Value: "temp-f01-001"}) ||
			p.Properties.User[1] != (packets.User{Key: "seq", Value: "1234567890123"}) {
			t.Fatalf("size %d: user properties %v", size, p.Properties.User)
		}
	}
	b.cfg.UserProps = UserProps{}
	raw := s.appendPublish(nil, "", "t", []byte("x"), store.Message{Payload: []byte("x")}, 0, 0)
	pk, err := packets.ReadPacket(bytes.NewReader(raw))
	if err != nil || pk.Content.(*packets.Publish).QoS != 0 || len(pk.Content.(*packets.Publish).Properties.User) != 0 {
		t.Fatalf("QoS 0 without properties: %v %v", pk, err)
	}
}

func TestBucketPaces(t *testing.T) {
	now := time.Unix(1000, 0)
	var slept time.Duration
	b := newBucket(100, func() time.Time { return now }, func(_ context.Context, d time.Duration) error {
		slept += d
		now = now.Add(d)
		return nil
	})
	for range 1010 {
		if err := b.take(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	// 10 burst tokens, then 1000 at 100/s: 10 s of waiting.
	if slept < 9900*time.Millisecond || slept > 10100*time.Millisecond {
		t.Errorf("slept %v for 1010 tokens at 100/s with burst 10; want about 10s", slept)
	}
	unlimited := newBucket(0, time.Now, nil)
	if err := unlimited.take(context.Background()); err != nil {
		t.Errorf("unlimited bucket: %v", err)
	}
}

// TestForwardEncodeAllocatesNothing: making a queued message ready for the
// wire (its out route, the remote topic with the route's prefixes, the
// envelope of user properties) and encoding its PUBLISH allocates nothing
// per message once the scratch buffer has grown: the remote prefix and the
// rest of the local topic are written one after the other, not joined.
func TestForwardEncodeAllocatesNothing(t *testing.T) {
	r := Route{Name: "telemetry", Topic: "local/building/#", Direction: Out, QoS: 1, LocalPrefix: "local/", RemotePrefix: "sites/plant-7/"}
	cfg := Config{Routes: []Route{r}, Envelope: EnvelopeUserProperties, UserProps: UserProps{DeviceKey: "device", SeqKey: "seq"}}
	rs, err := cfg.compileRoutes(cfg.Routes)
	if err != nil {
		t.Fatal(err)
	}
	b := &Bridge{cfg: cfg}
	b.routes.Store(rs)
	s := &session{b: b, server: serverLimits{maxQoS: 1, retain: true}}
	m := store.Message{Route: "telemetry", Topic: "local/building/f1/temp", Payload: []byte("21.5"), QoS: 1, Device: "temp-01", Seq: 77}
	var out outbound
	allocs := testing.AllocsPerRun(1000, func() {
		var ok bool
		if out, ok = s.prepare(m); !ok {
			t.Fatal("prepare refused the message")
		}
		s.scratch = s.appendPublish(s.scratch[:0], out.prefix, out.remote, out.payload, m, out.qos, 1)
	})
	if allocs != 0 {
		t.Errorf("prepare and encode: %v allocations per message; want 0", allocs)
	}
	pk, err := packets.ReadPacket(bytes.NewReader(s.scratch))
	if err != nil {
		t.Fatal(err)
	}
	if got := pk.Content.(*packets.Publish).Topic; got != "sites/plant-7/building/f1/temp" {
		t.Errorf("upstream topic %q; want sites/plant-7/building/f1/temp (Route.RemoteTopic)", got)
	}
	if got, want := out.pending(m).remote(), r.RemoteTopic(m.Topic); got != want {
		t.Errorf("in-flight record's topic %q; want %q", got, want)
	}
}
