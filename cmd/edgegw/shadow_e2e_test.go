package main

// End-to-end tests of device shadows (issue 23 acceptance): the real
// `edgegw run` binary with a shadows section, Debian's mosquitto_rr and
// mosquitto_pub as devices over mutual TLS, least-privilege policies as AWS
// documents them, kill -9 in between.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

const shadowRegistry = `version: 1
default: {policies: []}
things:
  - {name: lamp-1, policies: [device]}
  - {name: lamp-2, policies: [device]}
  - {name: viewer, policies: [viewer]}
groups:
  - {name: lamps, match: {name: "lamp-*"}, policies: [device]}
`

// shadowDevicePolicy is AWS's least-privilege shadow policy for a device
// (device-shadow-mqtt, "Example policy"): its own shadow topics and its own
// thing, nothing else.
const shadowDevicePolicy = `{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"},
 {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": "arn:aws:iot:*:*:topic/$aws/things/${iot:Connection.Thing.ThingName}/shadow/*"},
 {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "arn:aws:iot:*:*:topicfilter/$aws/things/${iot:Connection.Thing.ThingName}/shadow/*"},
 {"Effect": "Allow", "Action": ["iot:GetThingShadow", "iot:UpdateThingShadow", "iot:DeleteThingShadow"],
  "Resource": ["arn:aws:iot:*:*:thing/${iot:Connection.Thing.ThingName}", "arn:aws:iot:*:*:thing/${iot:Connection.Thing.ThingName}/*"]}
]}`

// shadowViewerPolicy may use every shadow topic but only read shadows.
const shadowViewerPolicy = `{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Action": "iot:Connect", "Resource": "client/viewer*"},
 {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": "topic/$aws/things/*"},
 {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "topicfilter/$aws/things/*"},
 {"Effect": "Allow", "Action": "iot:GetThingShadow", "Resource": "thing/*"}
]}`

// newShadowGW starts `edgegw run` with a shadows section (shadows: YAML
// under it, "{}" for none) and, when up is set, a bridge to it.
func newShadowGW(t testing.TB, up *gatewaytest.Upstream, shadows string, policies map[string]string) *bridgeGW {
	t.Helper()
	g := &bridgeGW{t: t, bin: gatewaytest.Edgegw(t), dir: t.TempDir(), site: gatewaytest.NewPKI(t, "site"), up: up, log: new(gatewaytest.Buffer)}
	g.addr = gatewaytest.FreeAddr(t)
	g.conf = filepath.Join(g.dir, "edgegw.yaml")
	state := filepath.Join(g.dir, "state")
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`version: 1
site: plant-7
state_dir: %[1]s
listeners:
  - name: lan
    address: %[2]q
    tls: {ca: %[3]s, cert: %[4]s, key: "file:%[5]s", crl: %[6]s}
devices: devices.yaml
policies: policies/
store: {dir: %[1]s/queue, min_free: 16MiB, encryption_key: "file:%[1]s/queue.key"}
metrics: {address: ""}
admin: {socket: %[1]s/admin.sock}
audit: {file: %[7]s/audit.log}
shadows:
%[8]s
`, state, g.addr, g.site.CAFile, g.site.ServerCert, g.site.ServerKey, g.site.CRLFile, g.dir, shadows)
	if up != nil {
		keyPEM, err := os.ReadFile(up.Gateway.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		gatewaytest.WriteFile(t, filepath.Join(state, "gateway.key"), keyPEM, 0o600)
		cfg += fmt.Sprintf(`bridge:
  upstreams: [{url: "mqtts://%s", server_name: localhost}]
  client_id: plant-7-gw
  tls: {ca: %s, cert: %s, key: auto}
  keepalive: 5s
  connect_timeout: 3s
  backoff: {min: 100ms, max: 500ms}
  routes:
    - {name: telemetry, topic: "sensors/#", direction: out, qos: 1, remote_prefix: "sites/plant-7/"}
`, up.Addr, up.PKI.CAFile, up.Gateway.CertFile)
	}
	gatewaytest.WriteFile(t, g.conf, []byte(cfg), 0o644)
	if policies == nil {
		policies = map[string]string{"device": shadowDevicePolicy, "viewer": shadowViewerPolicy}
	}
	gatewaytest.WriteSiteFiles(t, g.dir, shadowRegistry, policies)
	g.launch(t, 6144)
	return g
}

// rr sends one shadow request as thing with mosquitto_rr (MQTT 5) and
// returns the first message on the response topic resp.
func (g *bridgeGW) rr(t testing.TB, thing, topic, resp, payload string) (map[string]any, error) {
	t.Helper()
	bin := gatewaytest.Need(t, "mosquitto_rr", "mosquitto-clients")
	args := append(g.site.MosqTLSArgs(g.addr, g.cert(t, thing)), "-i", thing, "-q", "1", "-W", "10",
		"-t", topic, "-e", resp, "-m", payload)
	out, err := gatewaytest.Run(t, 20*time.Second, bin, args...)
	if err != nil {
		return nil, fmt.Errorf("mosquitto_rr %s -> %s: %w: %s", topic, resp, err, out)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &m); err != nil {
		return nil, fmt.Errorf("mosquitto_rr %s -> %s: not a JSON document: %q", topic, resp, out)
	}
	return m, nil
}

// at walks m along path ("state.desired.color"); nil when absent.
func at(m map[string]any, path string) any {
	var v any = m
	for _, k := range strings.Split(path, ".") {
		o, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = o[k]
	}
	return v
}

// TestShadowE2EMosquitto: the documented requests and their responses and
// errors over real MQTT (mosquitto_rr over mutual TLS), a thing limited to
// its own shadow by AWS's least-privilege policy, a reader refused with 403,
// and the shadows surviving kill -9 (in the queue's encrypted database;
// the gateway has no bridge here).
func TestShadowE2EMosquitto(t *testing.T) {
	g := newShadowGW(t, nil, "  sync: []", nil)
	const base = "$aws/things/lamp-1/shadow/"
	big := strings.Repeat("x", 9000)
	tests := []struct {
		name, thing, op, resp, payload string
		want                           map[string]any // path -> value
	}{
		{"get of no shadow is 404", "lamp-1", "get", "get/rejected", `{"clientToken":"c0"}`,
			map[string]any{"code": 404.0, "message": "No shadow exists with name: 'lamp-1'", "clientToken": "c0"}},
		{"update creates it", "lamp-1", "update", "update/accepted", `{"state":{"desired":{"color":"red"}},"clientToken":"c1"}`,
			map[string]any{"state.desired.color": "red", "version": 1.0, "clientToken": "c1"}},
		{"reported", "lamp-1", "update", "update/accepted", `{"state":{"reported":{"color":"blue"}}}`,
			map[string]any{"state.reported.color": "blue", "version": 2.0}},
		{"desired differing from reported gives a delta", "lamp-1", "update", "update/delta", `{"state":{"desired":{"color":"green"}}}`,
			map[string]any{"state.color": "green", "version": 3.0}},
		{"documents has previous and current", "lamp-1", "update", "update/documents", `{"state":{"desired":{"level":5}}}`,
			map[string]any{"previous.version": 3.0, "current.version": 4.0, "current.state.desired.level": 5.0}},
		{"get has state, delta, metadata", "lamp-1", "get", "get/accepted", `{}`,
			map[string]any{"state.desired.color": "green", "state.reported.color": "blue", "state.delta.color": "green", "version": 4.0}},
		{"stale version is 409", "lamp-1", "update", "update/rejected", `{"state":{"desired":{"color":"x"}},"version":1}`,
			map[string]any{"code": 409.0, "message": "Version conflict"}},
		{"invalid JSON is 400", "lamp-1", "update", "update/rejected", `{"state":`,
			map[string]any{"code": 400.0, "message": "Invalid JSON"}},
		{"missing state is 400", "lamp-1", "update", "update/rejected", `{"clientToken":"c9"}`,
			map[string]any{"code": 400.0, "message": "Missing required node: state", "clientToken": "c9"}},
		{"too deep is 400", "lamp-1", "update", "update/rejected", `{"state":{"desired":{"1":{"2":{"3":{"4":{"5":{"6":{"7":1}}}}}}}}}`,
			map[string]any{"code": 400.0, "message": "JSON contains too many levels of nesting; maximum is 6"}},
		{"state over 8 KB is 413", "lamp-1", "update", "update/rejected", `{"state":{"desired":{"big":"` + big + `"}}}`,
			map[string]any{"code": 413.0, "message": "The payload exceeds the maximum size allowed"}},
		{"named shadow", "lamp-1", "name/cfg/update", "name/cfg/update/accepted", `{"state":{"reported":{"fw":"1.2"}}}`,
			map[string]any{"state.reported.fw": "1.2", "version": 1.0}},
		{"a reader may get", "viewer", "get", "get/accepted", `{}`,
			map[string]any{"version": 4.0}},
		{"a reader may not update: 403", "viewer", "update", "update/rejected", `{"state":{"desired":{"color":"x"}}}`,
			map[string]any{"code": 403.0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := g.rr(t, tt.thing, base+tt.op, base+tt.resp, tt.payload)
			if err != nil {
				t.Fatal(err)
			}
			for path, want := range tt.want {
				if got := at(m, path); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("%s = %v; want %v (document %v)", path, got, want, m)
				}
			}
		})
	}

	// Least privilege: lamp-1 can neither publish to lamp-2's shadow nor
	// subscribe to its answers; lamp-2's shadow stays untouched.
	out, err := gatewaytest.Run(t, 15*time.Second, gatewaytest.Need(t, "mosquitto_pub", "mosquitto-clients"),
		append(g.site.MosqTLSArgs(g.addr, g.cert(t, "lamp-1")), "-V", "mqttv5", "-i", "lamp-1", "-q", "1",
			"-t", "$aws/things/lamp-2/shadow/update", "-m", `{"state":{"desired":{"color":"hijacked"}}}`)...)
	if !strings.Contains(out, "Not authorized") {
		t.Errorf("lamp-1 publishing to lamp-2's shadow: %v %q; want a refusal (PUBACK Not authorized)", err, out)
	}
	if _, err := g.rr(t, "lamp-1", "$aws/things/lamp-1/shadow/get", "$aws/things/lamp-2/shadow/get/accepted", `{}`); err == nil {
		t.Errorf("lamp-1 received on lamp-2's response topic; want its subscription refused")
	}
	if m, err := g.rr(t, "lamp-2", "$aws/things/lamp-2/shadow/get", "$aws/things/lamp-2/shadow/get/rejected", `{}`); err != nil || at(m, "code") != 404.0 {
		t.Errorf("lamp-2's shadow after lamp-1's attempt: %v %v; want still none (404)", m, err)
	}

	// kill -9: what was acknowledged is there after the restart.
	g.kill()
	g.start()
	m, err := g.rr(t, "lamp-1", base+"get", base+"get/accepted", `{}`)
	if err != nil {
		t.Fatal(err)
	}
	if at(m, "version") != 4.0 || at(m, "state.desired.color") != "green" || at(m, "state.desired.level") != 5.0 {
		t.Errorf("lamp-1's shadow after kill -9 = %v; want version 4, desired color green and level 5", m)
	}
	if m, err := g.rr(t, "lamp-1", base+"name/cfg/get", base+"name/cfg/get/accepted", `{}`); err != nil || at(m, "state.reported.fw") != "1.2" {
		t.Errorf("lamp-1's named shadow cfg after kill -9 = %v, %v; want reported fw 1.2", m, err)
	}
	if m, err := g.rr(t, "lamp-1", base+"delete", base+"delete/accepted", `{"clientToken":"d1"}`); err != nil || at(m, "version") != 4.0 || at(m, "clientToken") != "d1" {
		t.Errorf("delete: %v, %v; want delete/accepted with version 4 and clientToken d1", m, err)
	}
	if m, err := g.rr(t, "lamp-1", base+"get", base+"get/rejected", `{}`); err != nil || at(m, "code") != 404.0 {
		t.Errorf("get after delete: %v, %v; want 404", m, err)
	}
	if !strings.Contains(readFile(t, filepath.Join(g.dir, "audit.log")), `"resource":"thing/lamp-1"`) {
		t.Errorf("audit log has no denial on thing/lamp-1 (the viewer's update)")
	}
}

// edgegw runs the edgegw binary with args (bounded) and returns its output
// and error.
func (g *bridgeGW) edgegw(t testing.TB, args ...string) (string, error) {
	t.Helper()
	return gatewaytest.Run(t, 30*time.Second, g.bin, append(args, "--socket", filepath.Join(g.dir, "state", "admin.sock"))...)
}

// TestShadowE2EAdmin: edgegw shadow get|update|delete|list through the admin
// socket, the device seeing the site engineer's change as a delta, and the
// counts in edgegw status and the metrics.
func TestShadowE2EAdmin(t *testing.T) {
	g := newShadowGW(t, nil, "  sync: []", nil)
	metrics := gatewaytest.FreeAddr(t)
	conf := readFile(t, g.conf)
	gatewaytest.WriteFile(t, g.conf, []byte(strings.Replace(conf, `metrics: {address: ""}`, fmt.Sprintf("metrics: {address: %q}", metrics), 1)), 0o644)
	g.stop()
	g.start()
	dev := shadowDevice(t, g, "lamp-1")

	steps := []struct {
		name    string
		args    []string
		wantErr bool
		want    []string // substrings of the output
	}{
		{"get of none", []string{"shadow", "get", "lamp-1"}, true, []string{"404", "No shadow exists with name: 'lamp-1'"}},
		{"update", []string{"shadow", "update", "lamp-1", `{"state":{"desired":{"power":"on"}}}`, "-o", "json"}, false, []string{`"power": "on"`, `"version": 1`}},
		{"get", []string{"shadow", "get", "lamp-1", "-o", "json"}, false, []string{`"delta"`, `"power": "on"`}},
		// The text form: one line per value under each state section.
		{"get, text", []string{"shadow", "get", "lamp-1"}, false, []string{"classic shadow of lamp-1, version 1, at 20", "desired:\n  power = \"on\"\n", "delta:\n  power = \"on\"\n"}},
		{"update a named shadow", []string{"shadow", "update", "lamp-1", "--name", "cfg", `{"state":{"reported":{"fw":{"main":"1.2"}}}}`}, false, []string{`named shadow "cfg" of lamp-1 updated, version 1`, "reported:\n  fw.main = \"1.2\"\n"}},
		{"list", []string{"shadow", "list", "lamp-1", "-o", "json"}, false, []string{`"cfg"`, `"named"`}},
		{"list, text", []string{"shadow", "list", "lamp-1"}, false, []string{"cfg\n"}},
		{"list, none", []string{"shadow", "list", "lamp-2"}, false, []string{"lamp-2 has no named shadows\n"}},
		{"stale version", []string{"shadow", "update", "lamp-1", `{"state":{"desired":{"power":"off"}},"version":7}`}, true, []string{"409", "Version conflict"}},
		{"bad thing name", []string{"shadow", "get", "lamp/1"}, true, []string{"400"}},
		{"delete", []string{"shadow", "delete", "lamp-1", "--name", "cfg", "-o", "json"}, false, []string{`"version": 1`}},
		{"delete, text", []string{"shadow", "delete", "lamp-1"}, false, []string{"classic shadow of lamp-1 deleted, version 1"}},
		// The deleted shadow stays stored (its version is kept for 48 hours).
		{"status", []string{"status"}, false, []string{"shadows:     2 stored"}},
		{"bad format", []string{"shadow", "get", "lamp-1", "-o", "yaml"}, true, []string{`-o "yaml": want table or json`}},
	}
	for _, st := range steps {
		out, err := g.edgegw(t, st.args...)
		if (err != nil) != st.wantErr {
			t.Errorf("%s: edgegw %s: %v; want error %v\n%s", st.name, strings.Join(st.args, " "), err, st.wantErr, out)
		}
		for _, w := range st.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: edgegw %s printed:\n%s\nwant %q in it", st.name, strings.Join(st.args, " "), out, w)
			}
		}
	}
	dev.await(t, "$aws/things/lamp-1/shadow/update/delta", func(d map[string]any) bool { return at(d, "state.power") == "on" })

	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatalf("scraping metrics: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("scraping metrics: %v", err)
	}
	out := string(body)
	for _, w := range []string{"edgegw_shadows 2\n", `edgegw_shadow_requests_total{outcome="handled"}`, `edgegw_shadow_requests_total{outcome="denied"} 0`} {
		if !strings.Contains(out, w) {
			t.Errorf("metrics lack %q", w)
		}
	}
}
