package broker

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw/gateway/rules"
	"github.com/edgegw/edgegw/store"
)

func compileRules(t *testing.T, cfgs ...rules.Config) *rules.Set {
	t.Helper()
	s, err := rules.Compile(cfgs)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRulesForward: a rule's forward goes through the pipeline like a route:
// the output (not the incoming payload) is in the queue before the PUBACK;
// when the queue refuses it the publisher gets PUBACK 0x97, the message is
// not delivered locally, and the rule's error action reports the failure
// with AWS's error message (republished as the rule's identity).
func TestRulesForward(t *testing.T) {
	e := newEnv(t, nil)
	q := openQueue(t, store.RouteLimits{Name: "up", MaxMessages: 2, Overflow: store.Reject})
	e.b.SetOutbound(q, routeFunc(func(string, byte) []string { return nil })) // no route: only the rule forwards
	e.b.SetRules(compileRules(t, rules.Config{
		Name: "reshape", SQL: "SELECT v * 10 AS deci FROM 'sensors/+/t'", Identity: "monitor",
		Actions:     []rules.ActionConfig{{Forward: &rules.ForwardConfig{Route: "up", Topic: "up/${topic(2)}"}}},
		ErrorAction: &rules.ActionConfig{Republish: &rules.RepublishConfig{Topic: "cmd/sensor-b"}},
	}))
	mon, err := e.connectV5(t, e.pki.Issue(t, "monitor"), "monitor")
	if err != nil {
		t.Fatal(err)
	}
	mon.Subscribe(t, "sensors/#", 1)
	b, err := e.connectV5(t, e.pki.Issue(t, "sensor-b"), "sensor-b")
	if err != nil {
		t.Fatal(err)
	}
	b.Subscribe(t, "cmd/sensor-b", 1)
	a := e.rawConnect(t, "sensor-a", 5)
	const n = 4
	for i := range n {
		a.Publish(t, uint16(i+1), "sensors/sensor-a/t", 1, false, fmt.Sprintf(`{"v": %d}`, i))
	}
	for i := range n {
		pk, err := a.read(t)
		want := byte(0)
		if i >= 2 {
			want = packets.ErrQuotaExceeded.Code
		}
		if err != nil || pk.PacketID != uint16(i+1) || pk.ReasonCode != want {
			t.Fatalf("PUBACK #%d: id %d rc 0x%02x err %v; want id %d rc 0x%02x", i, pk.PacketID, pk.ReasonCode, err, i+1, want)
		}
	}
	for i, m := range drainN(t, q, 2) {
		if want := fmt.Sprintf(`{"deci":%d}`, i*10); m.Route != "up" || m.Topic != "up/sensor-a" || string(m.Payload) != want || m.Device != "sensor-a" {
			t.Errorf("queued #%d: route %s topic %s payload %s device %s; want up up/sensor-a %s sensor-a", i, m.Route, m.Topic, m.Payload, m.Device, want)
		}
	}
	for i := range 2 {
		if m := mon.ExpectOnly(t, "sensors/sensor-a/t"); string(m.Payload) != fmt.Sprintf(`{"v": %d}`, i) {
			t.Errorf("local delivery #%d: %q", i, m.Payload)
		}
	}
	for i := range 2 {
		m := b.ExpectOnly(t, "cmd/sensor-b")
		var report struct {
			RuleName string `json:"ruleName"`
			Topic    string `json:"topic"`
			ClientID string `json:"clientId"`
			Failures []struct {
				FailedAction   string `json:"failedAction"`
				FailedResource string `json:"failedResource"`
			} `json:"failures"`
		}
		if err := json.Unmarshal(m.Payload, &report); err != nil {
			t.Fatalf("error report #%d %q: %v", i, m.Payload, err)
		}
		if report.RuleName != "reshape" || report.Topic != "sensors/sensor-a/t" || report.ClientID != "sensor-a" ||
			len(report.Failures) != 1 || report.Failures[0].FailedAction != "ForwardAction" || report.Failures[0].FailedResource != "up" {
			t.Errorf("error report #%d = %+v; want rule reshape, sensor-a's topic, one ForwardAction failure on route up", i, report)
		}
	}
	if len(mon.Msgs) != 0 {
		t.Errorf("subscriber got a refused message: %q", (<-mon.Msgs).Payload)
	}
	eventually(t, "rule failures counted", func() bool { return e.metrics.RuleFailures.Load() == 2 && e.metrics.RuleForwarded.Load() == 2 })
}

// TestRulesQoS0AndHeaders: a QoS 0 message's forward is enqueued on the
// synchronous path; a republish carries the MQTT 5 headers its action sets
// and is published as the rule's identity only where its policy allows.
func TestRulesQoS0AndHeaders(t *testing.T) {
	e := newEnv(t, nil)
	q := openQueue(t)
	e.b.SetOutbound(q, routeFunc(func(string, byte) []string { return nil }))
	e.b.SetRules(compileRules(t,
		rules.Config{Name: "fw", SQL: "SELECT VALUE v FROM 'sensors/+/t'",
			Actions: []rules.ActionConfig{{Forward: &rules.ForwardConfig{Route: "up"}}}},
		rules.Config{Name: "rp", SQL: "SELECT v FROM 'sensors/+/t' WHERE v > 1", Identity: "monitor",
			Actions: []rules.ActionConfig{{Republish: &rules.RepublishConfig{Topic: "cmd/sensor-b", QoS: 1,
				Headers: &rules.HeadersConfig{ContentType: "application/json", UserProperties: []rules.UserPropertyConfig{{Key: "from", Value: "${clientid()}"}}}}}}},
	))
	b, err := e.connectV5(t, e.pki.Issue(t, "sensor-b"), "sensor-b")
	if err != nil {
		t.Fatal(err)
	}
	b.Subscribe(t, "cmd/sensor-b", 1)
	a := e.rawConnect(t, "sensor-a", 5)
	a.Publish(t, 0, "sensors/sensor-a/t", 0, false, `{"v": 1}`)
	a.Publish(t, 1, "sensors/sensor-a/t", 1, false, `{"v": 2}`)
	if pk, err := a.read(t); err != nil || pk.ReasonCode != 0 {
		t.Fatalf("PUBACK: %v rc 0x%02x; want 0", err, pk.ReasonCode)
	}
	for i, m := range drainN(t, q, 2) {
		if want := fmt.Sprint(i + 1); m.Route != "up" || m.Topic != "sensors/sensor-a/t" || string(m.Payload) != want {
			t.Errorf("queued #%d: %s %s %q; want up sensors/sensor-a/t %q", i, m.Route, m.Topic, m.Payload, want)
		}
	}
	m := b.ExpectOnly(t, "cmd/sensor-b")
	if string(m.Payload) != `{"v":2}` {
		t.Errorf("republished payload %q; want {\"v\":2}", m.Payload)
	}
	if m.Properties == nil || m.Properties.ContentType != "application/json" || m.Properties.User.Get("from") != "sensor-a" {
		t.Errorf("republished properties %+v; want content type application/json and user property from=sensor-a", m.Properties)
	}
	select {
	case extra := <-b.Msgs:
		t.Errorf("got %s %q; want one republish (v=1 is below the threshold)", extra.Topic, extra.Payload)
	default:
	}
}
