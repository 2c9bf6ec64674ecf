package uplink

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/bridge"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/gatewaytest"
	"github.com/edgegw/edgegw/store"
)

// TestBridgesMatcherAndQueues: a topic with a route in each of two bridges
// matches both routes, and the queueMux writes each copy to its bridge's
// own queue (a real store each); a route of no bridge is an error.
func TestBridgesMatcherAndQueues(t *testing.T) {
	one := []config.Route{
		{Name: "one-a", Topic: "a/#", Direction: config.DirectionOut, QoS: 1},
		{Name: "one-c", Topic: "c/#", Direction: config.DirectionOut, QoS: 1},
	}
	two := []config.Route{
		{Name: "two-b", Topic: "b/#", Direction: config.DirectionOut, QoS: 1},
		{Name: "two-c", Topic: "c/#", Direction: config.DirectionOut, QoS: 1},
	}
	m := newBridgesMatcher([]*bridge.Routes{compileRoutes(t, one), compileRoutes(t, two)}, append(slices.Clone(one), two...))
	for _, tc := range []struct {
		topic string
		want  []string
	}{
		{"a/1", []string{"one-a"}},
		{"b/1", []string{"two-b"}},
		{"c/1", []string{"one-c", "two-c"}},
		{"d/1", nil},
	} {
		if got := m.OutboundRoutes(tc.topic, 1); !slices.Equal(got, tc.want) {
			t.Errorf("OutboundRoutes(%q): got %q; want %q", tc.topic, got, tc.want)
		}
	}

	dir := t.TempDir()
	open := func(name string, routes []config.Route) *store.Queue {
		q, err := store.Open(store.Options{Dir: filepath.Join(dir, name), MinFreeBytes: 16 << 20, Routes: RouteLimitsFromConfig(routes)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { q.Close() })
		return q
	}
	q1, q2 := open("one", one), open("two", two)
	mux := queueMux{"one-a": q1, "one-c": q1, "two-b": q2, "two-c": q2}
	ctx := context.Background()
	for _, r := range m.OutboundRoutes("c/1", 1) {
		w, err := mux.Submit(ctx, store.Message{Route: r, Topic: "c/1", Payload: []byte("x"), QoS: 1})
		if err != nil {
			t.Fatalf("Submit %s: %v", r, err)
		}
		if _, err := w.Wait(ctx); err != nil {
			t.Fatalf("Wait %s: %v", r, err)
		}
	}
	if _, err := mux.Enqueue(ctx, store.Message{Route: "one-a", Topic: "a/1", QoS: 1}); err != nil {
		t.Fatal(err)
	}
	depth := func(q *store.Queue) map[string]int64 {
		out := map[string]int64{}
		for _, r := range q.Stats().Routes {
			out[r.Name] = r.Depth
		}
		return out
	}
	if got := depth(q1); got["one-a"] != 1 || got["one-c"] != 1 {
		t.Errorf("queue one: got %v; want one-a 1, one-c 1", got)
	}
	if got := depth(q2); got["two-c"] != 1 || got["two-b"] != 0 {
		t.Errorf("queue two: got %v; want two-c 1, two-b 0", got)
	}
	if _, err := mux.Enqueue(ctx, store.Message{Route: "nowhere", Topic: "x"}); err == nil || !strings.Contains(err.Error(), `route "nowhere" belongs to no running bridge`) {
		t.Errorf("Enqueue on an unknown route: got %v; want the no-bridge error", err)
	}
}

// TestCheckBridges: the config's bridges as package bridge judges them,
// with the file:line of each bridge's section, and its warnings.
func TestCheckBridges(t *testing.T) {
	const head = `version: 1
site: plant-7
listeners: [{name: local, address: "127.0.0.1:1883"}]
devices: devices.yaml
policies: policies/
`
	tests := []struct {
		name     string
		bridges  string
		wantErr  []string
		wantWarn []string
	}{
		{"ok", `bridges:
  - name: aws
    profile: aws-iot-core
    upstreams: [{url: "mqtt://127.0.0.1:1"}]
    client_id: gw
    routes: [{name: t, topic: "a/#", remote_prefix: "s/"}]
`, nil, nil},
		{"aws slashes", `bridges:
  - name: aws
    profile: aws-iot-core
    upstreams: [{url: "mqtt://127.0.0.1:1"}]
    client_id: gw
    routes: [{name: t, topic: "a/b/c/d/#", remote_prefix: "s/t/u/v/w/"}]
`, []string{`edgegw.yaml:8: bridges[0]: bridge aws: profile aws-iot-core: route "t": remote topic "s/t/u/v/w/a/b/c/d/#" has 8 slashes: AWS IoT Core allows at most 7 forward slashes`}, nil},
		{"bad profile", `bridge:
  profile: gcp
  upstreams: [{url: "mqtt://127.0.0.1:1"}]
  client_id: gw
  routes: [{topic: "a/#"}]
`, []string{`edgegw.yaml:7: bridge: bridge default: profile "gcp": want generic, aws-iot-core or azure-iot-hub`}, nil},
		{"311 without envelope", `bridges:
  - name: old
    protocol: "3.1.1"
    upstreams: [{url: "mqtt://127.0.0.1:1"}]
    client_id: gw
    routes: [{name: t, topic: "a/#", direction: both}]
`, nil, []string{"bridge old: envelope none:", `bridge old: route "t": direction both on MQTT 3.1.1`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// store.dir in the test's own directory: a queue in this
			// machine's /var/lib/edgegw (an installed package's) would add
			// the stranded-queue warning.
			conf := head + "store: {dir: " + filepath.Join(t.TempDir(), "queue") + "}\n" + tt.bridges
			cfg, err := config.Parse("edgegw.yaml", "/etc/edgegw", []byte(conf))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			warn, err := CheckBridges(cfg)
			var ce *config.Error
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("got %v; want no error", err)
			case tt.wantErr != nil && !errors.As(err, &ce):
				t.Fatalf("got %v; want a *config.Error", err)
			}
			for i, w := range tt.wantErr {
				if i >= len(ce.Errors) || !strings.HasPrefix(ce.Errors[i].Error(), w) {
					t.Errorf("error %d: got %v; want it to start with %q", i, err, w)
				}
			}
			if len(warn) != len(tt.wantWarn) {
				t.Fatalf("got warnings %q; want %d", warn, len(tt.wantWarn))
			}
			for i, w := range tt.wantWarn {
				if !strings.HasPrefix(warn[i], w) {
					t.Errorf("warning %d: got %q; want it to start with %q", i, warn[i], w)
				}
			}
		})
	}
}

// TestBridgeConfigExtras: what a bridge section says beyond the first
// bridge's settings reaches bridge.Config; what it leaves out stays zero
// (the bridge's defaults).
func TestBridgeConfigExtras(t *testing.T) {
	b := &config.BridgeConfig{
		Name: "hub", Profile: "azure-iot-hub", Protocol: "3.1.1", Username: "u", PasswordFile: "/p",
		Proxy: "http://proxy.example:3128", Envelope: "property-bag", ALPN: []string{"mqtt"},
		MaxPayload: 1000, MaxRate: 50, ClientID: "dev",
		Upstreams: []config.Upstream{{URL: "mqtts://hub.example", ALPN: []string{"x"}}},
	}
	bc, err := BridgeConfigFromConfig(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if bc.Name != "hub" || bc.Profile != bridge.ProfileAzureIoTHub || bc.Protocol != bridge.MQTT311 || bc.Username != "u" ||
		bc.PasswordFile != "/p" || bc.Proxy.Host != "proxy.example:3128" || bc.Envelope != bridge.EnvelopePropertyBag ||
		!slices.Equal(bc.ALPN, []string{"mqtt"}) || bc.MaxPayload != 1000 || bc.MaxRate != 50 || !slices.Equal(bc.Upstreams[0].ALPN, []string{"x"}) {
		t.Errorf("got %+v; want every setting carried over", bc)
	}
	bc, err = BridgeConfigFromConfig(&config.BridgeConfig{ClientID: "gw"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if bc.Profile != "" || bc.Protocol != 0 || bc.Envelope != "" || bc.MaxRate != 0 || bc.Proxy != nil {
		t.Errorf("got %+v; want what was not written left zero", bc)
	}
}

// TestCheckBridgesStrandedQueue: a queue left in store.dir with no bridge
// named default to send it is a warning; with one, or with store.dir
// empty, there is none.
func TestCheckBridgesStrandedQueue(t *testing.T) {
	dir := t.TempDir()
	conf := func(name string) *config.Config {
		cfg, err := config.Parse("edgegw.yaml", dir, []byte(`version: 1
site: plant-7
listeners: [{name: local, address: "127.0.0.1:1883"}]
devices: devices.yaml
policies: policies/
store: {dir: queue}
bridges:
  - name: `+name+`
    upstreams: [{url: "mqtt://127.0.0.1:1"}]
    client_id: gw
    routes: [{name: t, topic: "a/#"}]
`))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	if w, err := CheckBridges(conf("aws")); err != nil || len(w) != 0 {
		t.Fatalf("empty store.dir: got %q, %v; want no warning", w, err)
	}
	gatewaytest.WriteFile(t, filepath.Join(dir, "queue", "MANIFEST"), []byte("x"), 0o600)
	if w, _ := CheckBridges(conf("aws")); len(w) != 1 || !strings.Contains(w[0], "no bridge is named default: its messages are not sent") {
		t.Errorf("queue in store.dir, no default bridge: got %q; want the stranded-queue warning", w)
	}
	if w, _ := CheckBridges(conf("default")); len(w) != 0 {
		t.Errorf("queue in store.dir, a default bridge: got %q; want no warning", w)
	}
}
