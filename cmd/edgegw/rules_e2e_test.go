package main

// End-to-end tests of rules (issue 24): the real `edgegw run` binary,
// Debian's mosquitto as the upstream, mosquitto_pub as sensors and paho
// clients as local subscribers. Rules are AWS IoT SQL statements from the
// config; their forwards go through the durable queue before the sensor's
// PUBACK, their republishes are authorized as the rule's identity.

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// rulesGWOptions shape a gateway for the rules and authorizer tests.
type rulesGWOptions struct {
	registry  string
	policies  map[string]string
	routes    string            // YAML list items under bridge.routes
	listeners string            // more YAML list items under listeners
	tail      string            // top-level YAML after the bridge (rules: ...)
	files     map[string]string // more files in the config directory (name -> content, executable)
	clientID  string            // bridge.client_id; "" = plant-7-gw
}

// newRulesGW writes the config and starts `edgegw run` (a bridgeGW, so it
// can be killed and restarted like the bridge tests' gateway).
func newRulesGW(t testing.TB, up *gatewaytest.Upstream, o rulesGWOptions) *bridgeGW {
	t.Helper()
	g := &bridgeGW{t: t, bin: gatewaytest.Edgegw(t), dir: t.TempDir(), site: gatewaytest.NewPKI(t, "site"), up: up, log: new(gatewaytest.Buffer)}
	g.addr = gatewaytest.FreeAddr(t)
	g.conf = filepath.Join(g.dir, "edgegw.yaml")
	state := filepath.Join(g.dir, "state")
	keyPEM, err := os.ReadFile(up.Gateway.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	gatewaytest.WriteFile(t, filepath.Join(state, "gateway.key"), keyPEM, 0o600)
	if o.clientID == "" {
		o.clientID = "plant-7-gw"
	}
	cfg := fmt.Sprintf(`version: 1
site: plant-7
state_dir: %[1]s
listeners:
  - name: lan
    address: %[2]q
    tls: {ca: %[3]s, cert: %[4]s, key: "file:%[5]s", crl: %[6]s}
%[11]s
devices: devices.yaml
policies: policies/
store: {dir: %[1]s/queue, min_free: 16MiB}
metrics: {address: ""}
admin: {socket: ""}
audit: {file: %[7]s/audit.log}
bridge:
  upstreams: [{url: "mqtts://%[8]s", server_name: localhost}]
  client_id: %[14]s
  tls: {ca: %[9]s, cert: %[10]s, key: auto}
  keepalive: 5s
  connect_timeout: 3s
  backoff: {min: 100ms, max: 500ms}
  routes:%[12]s
%[13]s
`, state, g.addr, g.site.CAFile, g.site.ServerCert, g.site.ServerKey, g.site.CRLFile, g.dir,
		up.Addr, up.PKI.CAFile, up.Gateway.CertFile, o.listeners, o.routes, o.tail, o.clientID)
	gatewaytest.WriteFile(t, g.conf, []byte(cfg), 0o644)
	gatewaytest.WriteSiteFiles(t, g.dir, o.registry, o.policies)
	for name, content := range o.files {
		gatewaytest.WriteFile(t, filepath.Join(g.dir, name), []byte(content), 0o755)
	}
	g.launch(t, 6144)
	return g
}

const rulesRegistry = `version: 1
default: {policies: []}
things:
  - {name: alarm-engine, policies: [alarmer]}
  - {name: panel-1, policies: [panel]}
groups:
  - {name: sensors, match: {name: "sensor-*"}, policies: [sensor]}
`

const rulesSensorPolicy = `{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Action": "iot:Connect", "Resource": "client/${iot:Connection.Thing.ThingName}"},
 {"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/sensors/${iot:Connection.Thing.ThingName}/*"}
]}`

// The rule identity may publish alarms, nothing else.
const rulesAlarmerPolicy = `{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/alarms/*"}
]}`

const rulesPanelPolicy = `{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Action": "iot:Connect", "Resource": "client/${iot:Connection.Thing.ThingName}"},
 {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "topicfilter/alarms/#"},
 {"Effect": "Allow", "Action": "iot:Receive", "Resource": "topic/alarms/*"}
]}`

// rulesRoutes: nothing a sensor publishes matches a route; only what a rule
// forwards goes upstream.
const rulesRoutes = `
    - {name: cloud, topic: "rules/#", direction: out, qos: 1, remote_prefix: "sites/plant-7/"}`

// rulesSet: one rule drops unchanged readings and reshapes the rest into the
// cloud's shape; one raises a local alarm above a threshold, published as
// alarm-engine; one tries to republish where alarm-engine may not (denied,
// its error action reports it).
const rulesSet = `rules:
  - name: changed_readings
    sql: "SELECT seq, v AS value, topic(2) AS sensor FROM 'sensors/+/reading' WHERE v <> prev"
    actions:
      - forward: {route: cloud, topic: "rules/readings/${topic(2)}"}
  - name: hot
    sql: "SELECT temp, topic(2) AS sensor FROM 'sensors/+/temp' WHERE temp > 30"
    identity: alarm-engine
    actions:
      - republish: {topic: "alarms/${topic(2)}", qos: 1}
  - name: not_allowed
    sql: "SELECT temp FROM 'sensors/+/temp' WHERE temp > 30"
    identity: alarm-engine
    actions:
      - republish: {topic: "elsewhere/${topic(2)}"}
    error_action:
      republish: {topic: "alarms/rule-errors"}
`

func newRulesSite(t testing.TB, up *gatewaytest.Upstream) *bridgeGW {
	return newRulesGW(t, up, rulesGWOptions{
		registry: rulesRegistry,
		policies: map[string]string{"sensor": rulesSensorPolicy, "alarmer": rulesAlarmerPolicy, "panel": rulesPanelPolicy},
		routes:   rulesRoutes,
		tail:     rulesSet,
	})
}

// upstreamLog is a cloud-side subscriber keeping every message it gets.
type upstreamLog struct {
	mu   sync.Mutex
	msgs map[string][]string // topic -> payloads
}

// subscribeUpstream connects a cloud subscriber (clean session) to filter.
func subscribeUpstream(t testing.TB, up *gatewaytest.Upstream, filter string) *upstreamLog {
	t.Helper()
	l := &upstreamLog{msgs: map[string][]string{}}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", up.Addr, up.PKI.ClientTLS(up.Cloud))
	if err != nil {
		t.Fatal(err)
	}
	cl := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn),
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			l.mu.Lock()
			l.msgs[pr.Packet.Topic] = append(l.msgs[pr.Packet.Topic], string(pr.Packet.Payload))
			l.mu.Unlock()
			return true, nil
		}},
		OnClientError: func(error) {}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cl.Connect(ctx, &paho.Connect{ClientID: "rules-cloud", KeepAlive: 30, CleanStart: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Disconnect(&paho.Disconnect{}); conn.Close() })
	return l
}

func (l *upstreamLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, p := range l.msgs {
		n += len(p)
	}
	return n
}

// waitCount waits until at least want messages arrived (bounded).
func (l *upstreamLog) waitCount(t testing.TB, want int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for l.count() < want {
		if time.Now().After(deadline) {
			t.Fatalf("upstream got %d messages; want %d", l.count(), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRulesE2EDropUnchangedDurable: 200 readings from two sensors of which
// every 5th changed; the rule forwards only the changed ones, reshaped. The
// upstream is down while they are published and the gateway is SIGKILLed
// right after the last PUBACK: after the restart exactly the 40 changed
// readings arrive upstream, in the cloud's shape, so each forwarded message
// was on disk before its sensor's PUBACK.
func TestRulesE2EDropUnchangedDurable(t *testing.T) {
	up := gatewaytest.NewUpstream(t, cmdUpstream)
	g := newRulesSite(t, up)
	up.Stop()
	const perSensor, every = 100, 5
	want := map[string]bool{}
	for _, s := range []string{"sensor-1", "sensor-2"} {
		var lines []string
		v := 20
		for i := range perSensor {
			prev := v
			if i%every == 0 {
				v++
				want[fmt.Sprintf(`%s {"seq":%d,"value":%d,"sensor":%q}`, s, i, v, s)] = true
			}
			lines = append(lines, fmt.Sprintf(`{"seq": %d, "v": %d, "prev": %d, "unit": "C"}`, i, v, prev))
		}
		// mosquitto_pub -q 1 exits 0 only after every PUBACK.
		if err := g.mosqPubLines(t, s, "sensors/"+s+"/reading", lines); err != nil {
			t.Fatal(err)
		}
	}
	g.kill()
	// The cloud subscribes before the gateway comes back: what arrives
	// upstream is what the gateway had on disk at the kill.
	up.Start()
	cloud := subscribeUpstream(t, up, "sites/#")
	g.start()
	cloud.waitCount(t, len(want), 60*time.Second)
	time.Sleep(500 * time.Millisecond) // anything extra would arrive with the rest
	cloud.mu.Lock()
	defer cloud.mu.Unlock()
	got := map[string]int{}
	for topic, ps := range cloud.msgs {
		sensor, ok := strings.CutPrefix(topic, "sites/plant-7/rules/readings/")
		if !ok {
			t.Errorf("message on %s; want only sites/plant-7/rules/readings/SENSOR", topic)
			continue
		}
		for _, p := range ps {
			got[sensor+" "+p]++
		}
	}
	for m := range want {
		if got[m] == 0 {
			t.Errorf("forwarded reading %s missing upstream", m)
		}
	}
	for m := range got {
		if !want[m] {
			t.Errorf("upstream got %s; want only changed readings in the shape {seq, value, sensor}", m)
		}
	}
	t.Logf("%d readings published, %d changed, %d distinct upstream (%d messages with duplicates)", 2*perSensor, len(want), len(got), cloud.countLocked())
}

func (l *upstreamLog) countLocked() int {
	n := 0
	for _, p := range l.msgs {
		n += len(p)
	}
	return n
}

// TestRulesE2EThresholdAlarm: a reading above the threshold makes the rule
// republish an alarm that a subscribed panel receives, published as the
// rule's identity; readings below it raise nothing; a republish the
// identity's policy does not allow is refused and reported by the rule's
// error action (on a topic the panel may read).
func TestRulesE2EThresholdAlarm(t *testing.T) {
	up := gatewaytest.NewUpstream(t, cmdUpstream)
	g := newRulesSite(t, up)
	panel := g.subscribedSensor(t, "panel-1", "alarms/#")
	defer panel.close()
	if err := g.mosqPubLines(t, "sensor-7", "sensors/sensor-7/temp", []string{`{"temp": 21}`, `{"temp": 35.5}`, `{"temp": 22}`}); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	timeout := time.After(10 * time.Second)
	for len(got) < 2 {
		select {
		case p := <-panel.msgs:
			got[p.Topic] = string(p.Payload)
		case <-timeout:
			t.Fatalf("panel got %v within 10s; want an alarm on alarms/sensor-7 and an error report on alarms/rule-errors", got)
		}
	}
	if want := `{"temp":35.5,"sensor":"sensor-7"}`; got["alarms/sensor-7"] != want {
		t.Errorf("alarm = %q; want %q", got["alarms/sensor-7"], want)
	}
	var report struct {
		RuleName string `json:"ruleName"`
		Failures []struct {
			FailedAction, FailedResource, ErrorMessage string
		} `json:"failures"`
	}
	if err := json.Unmarshal([]byte(got["alarms/rule-errors"]), &report); err != nil {
		t.Fatalf("error report %q: %v", got["alarms/rule-errors"], err)
	}
	if report.RuleName != "not_allowed" || len(report.Failures) != 1 || report.Failures[0].FailedResource != "elsewhere/sensor-7" ||
		!strings.Contains(report.Failures[0].ErrorMessage, "not allowed") {
		t.Errorf("error report = %+v; want rule not_allowed, one failure on elsewhere/sensor-7 saying not allowed", report)
	}
	select {
	case p := <-panel.msgs:
		t.Errorf("panel got %s %q; want nothing more (21 and 22 are below the threshold)", p.Topic, p.Payload)
	case <-time.After(300 * time.Millisecond):
	}
	audit := readFile(t, filepath.Join(g.dir, "audit.log"))
	if !strings.Contains(audit, "rule not_allowed") {
		t.Errorf("audit log has no line for the refused republish of rule not_allowed:\n%s", audit)
	}
}

// TestRulesE2ECheck: `edgegw check` reports a rule whose SQL does not
// compile at the rule's line with the position in the statement, and a
// function that needs AWS.
func TestRulesE2ECheck(t *testing.T) {
	dir := t.TempDir()
	site := gatewaytest.NewPKI(t, "site")
	gatewaytest.WriteSiteFiles(t, dir, rulesRegistry, map[string]string{"sensor": rulesSensorPolicy, "alarmer": rulesAlarmerPolicy, "panel": rulesPanelPolicy})
	cfg := fmt.Sprintf(`version: 1
site: plant-7
state_dir: %[1]s/state
listeners:
  - name: lan
    address: "127.0.0.1:0"
    tls: {ca: %[2]s, cert: %[3]s, key: "file:%[4]s"}
devices: devices.yaml
policies: policies/
store: {dir: %[1]s/queue}
rules:
  - name: ok
    sql: "SELECT * FROM 'a/#'"
    identity: alarm-engine
    actions: [{republish: {topic: "alarms/x"}}]
  - name: bad_sql
    sql: "SELECT temp FROM 'a/#' WHERE temp >"
    identity: alarm-engine
    actions: [{republish: {topic: "alarms/x"}}]
  - name: cloud_fn
    sql: "SELECT get_dynamodb('t', 'k', 'v', 'arn:aws:iam::1:role/r') AS x FROM 'a'"
    identity: alarm-engine
    actions: [{republish: {topic: "alarms/y"}}]
  - name: nobody
    sql: "SELECT * FROM 'b'"
    identity: ghost
    actions: [{republish: {topic: "alarms/z"}}]
`, dir, site.CAFile, site.ServerCert, site.ServerKey)
	conf := filepath.Join(dir, "edgegw.yaml")
	gatewaytest.WriteFile(t, conf, []byte(cfg), 0o644)
	out, err := exec.Command(gatewaytest.Edgegw(t), "check", "-c", conf).CombinedOutput()
	if err == nil {
		t.Fatalf("edgegw check passed; want it to refuse the bad rules:\n%s", out)
	}
	for _, want := range []string{
		conf + `:17: rules[1].sql: SQL 1:`,
		conf + `:21: rules[2].sql: SQL 1:`,
		"get_dynamodb",
		conf + `:26: rules[3].identity: "ghost": `,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
}

// TestRulesE2EReload: SIGHUP compiles the edited rules and swaps them in (a
// lower threshold raises an alarm the old one would not); a rule that does
// not compile keeps the running rules and says so.
func TestRulesE2EReload(t *testing.T) {
	up := gatewaytest.NewUpstream(t, cmdUpstream)
	g := newRulesSite(t, up)
	panel := g.subscribedSensor(t, "panel-1", "alarms/#")
	defer panel.close()
	conf := readFile(t, g.conf)
	reload := func(newConf, wantLog string) {
		t.Helper()
		before := strings.Count(g.log.String(), wantLog)
		gatewaytest.WriteFile(t, g.conf, []byte(newConf), 0o644)
		if err := g.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for strings.Count(g.log.String(), wantLog) == before {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the log within 10s of SIGHUP", wantLog)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	alarm := func(temp string) (string, bool) {
		t.Helper()
		if err := g.mosqPubLines(t, "sensor-3", "sensors/sensor-3/temp", []string{`{"temp": ` + temp + `}`}); err != nil {
			t.Fatal(err)
		}
		select {
		case p := <-panel.msgs:
			return string(p.Payload), true
		case <-time.After(time.Second):
			return "", false
		}
	}
	if p, ok := alarm("25"); ok {
		t.Fatalf("alarm %q at 25 with threshold 30", p)
	}
	reload(strings.Replace(conf, "WHERE temp > 30", "WHERE temp > 20", 1), "rules reloaded")
	if _, ok := alarm("25"); !ok {
		t.Fatal("no alarm at 25 after the reload lowered the threshold to 20")
	}
	reload(strings.Replace(conf, "WHERE temp > 30", "WHERE temp >", 1), "rules in ")
	if !strings.Contains(g.log.String(), "not applied, keeping the running ones") {
		t.Errorf("log does not say the bad rules were not applied")
	}
	if _, ok := alarm("26"); !ok {
		t.Fatal("no alarm at 26 after a refused reload; want the running rules (threshold 20) kept")
	}
}
