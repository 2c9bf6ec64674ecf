package broker

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/shadow"
)

// shadowPolicy: a device may use the shadow topics of any thing (a sloppy
// topic grant) but the shadow actions only on its own thing, and no delete.
const shadowPolicy = `{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Action": "iot:Connect", "Resource": "client/${iot:Connection.Thing.ThingName}"},
 {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": "topic/$aws/things/*"},
 {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "topicfilter/$aws/things/*"},
 {"Effect": "Allow", "Action": "iot:RetainPublish", "Resource": "topic/$aws/things/${iot:Connection.Thing.ThingName}/shadow/update"},
 {"Effect": "Allow", "Action": ["iot:GetThingShadow", "iot:UpdateThingShadow"], "Resource": "thing/${iot:Connection.Thing.ThingName}"}
]}`

// TestShadowRequests: shadow requests are answered on the local broker, and
// the shadow actions of the policy decide besides iot:Publish (403 on
// .../rejected, audited).
func TestShadowRequests(t *testing.T) {
	e := newEnv(t, withThing("lamp", shadowPolicy))
	e.b.SetShadows(shadow.New(shadow.NewMemStore(), shadow.Options{}))
	c, err := e.connectV5(t, e.pki.Issue(t, "lamp"), "lamp")
	if err != nil || c.Ack.ReasonCode != 0 {
		t.Fatalf("connect: %v", err)
	}
	for _, f := range []string{"$aws/things/lamp/shadow/#", "$aws/things/other/shadow/#"} {
		if rc := c.Subscribe(t, f, 1); rc != 1 {
			t.Fatalf("subscribe %s: SUBACK 0x%02x", f, rc)
		}
	}
	tests := []struct {
		name, topic, payload string
		want                 []string // response topics, in order
		code                 int      // of the /rejected answer, if any
	}{
		{"update", "$aws/things/lamp/shadow/update", `{"state":{"desired":{"on":true}},"clientToken":"t1"}`,
			[]string{"update/accepted", "update/delta", "update/documents"}, 0},
		{"get", "$aws/things/lamp/shadow/get", `{"clientToken":"t2"}`, []string{"get/accepted"}, 0},
		{"bad JSON", "$aws/things/lamp/shadow/update", `{`, []string{"update/rejected"}, 400},
		{"delete not allowed", "$aws/things/lamp/shadow/delete", ``, []string{"delete/rejected"}, 403},
		{"another thing's shadow", "$aws/things/other/shadow/update", `{"state":{"reported":{"on":1}}}`, []string{"update/rejected"}, 403},
		{"another thing's named shadow", "$aws/things/other/shadow/name/cfg/get", ``, []string{"get/rejected"}, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if rc, err := c.Publish(t, tt.topic, 1, false, tt.payload); rc != 0 || err != nil {
				t.Fatalf("publish %s: PUBACK 0x%02x, %v", tt.topic, rc, err)
			}
			base := tt.topic[:strings.LastIndex(tt.topic, "/")+1]
			var got []string
			deadline := time.After(10 * time.Second)
			for len(got) < len(tt.want)+1 {
				select {
				case m := <-c.Msgs:
					if m.Topic == tt.topic {
						got = append(got, "request")
						continue
					}
					got = append(got, strings.TrimPrefix(m.Topic, base))
					if tt.code != 0 && strings.HasSuffix(m.Topic, "/rejected") {
						var r struct{ Code int }
						if err := json.Unmarshal(m.Payload, &r); err != nil || r.Code != tt.code {
							t.Errorf("%s = %s; want code %d", m.Topic, m.Payload, tt.code)
						}
					}
				case <-deadline:
					t.Fatalf("got %q within 10s; want the request and %q", got, tt.want)
				}
			}
			// The answers go out while OnPublish runs; mochi delivers the
			// request itself when it returns.
			if g, w := strings.Join(got, " "), strings.Join(append(tt.want, "request"), " "); g != w {
				t.Fatalf("got %q; want %q", g, w)
			}
		})
	}
	// RETAIN needs iot:RetainPublish, which the policy grants on update
	// only: a retained get is refused like any retained publish (PUBACK
	// 0x87); a retained update is answered and not retained.
	if rc, err := c.Publish(t, "$aws/things/lamp/shadow/get", 1, true, `{}`); rc != 0x87 {
		t.Errorf("retained get: PUBACK 0x%02x, %v; want 0x87 (no iot:RetainPublish)", rc, err)
	}
	if rc, err := c.Publish(t, "$aws/things/lamp/shadow/update", 1, true, `{"state":{"reported":{"on":2}}}`); rc != 0 || err != nil {
		t.Errorf("retained update: PUBACK 0x%02x, %v; want 0", rc, err)
	}
	c.ExpectOnly(t, "$aws/things/lamp/shadow/update/accepted")
	for seen := false; !seen; { // the request itself comes last
		select {
		case m := <-c.Msgs:
			seen = m.Topic == "$aws/things/lamp/shadow/update"
		case <-time.After(10 * time.Second):
			t.Fatal("the retained update itself was not delivered within 10s")
		}
	}
	if rc := c.Subscribe(t, "$aws/things/lamp/shadow/update", 1); rc != 1 {
		t.Fatalf("subscribe: SUBACK 0x%02x", rc)
	}
	select {
	case m := <-c.Msgs:
		t.Errorf("got %s (retain %v) on subscribing; want no retained shadow request", m.Topic, m.Retain)
	case <-time.After(300 * time.Millisecond):
	}
	m := e.b.ShadowMetrics()
	if got := m.Denied.Load(); got != 3 {
		t.Errorf("Denied = %d; want 3", got)
	}
	if got := m.Requests.Load(); got != 4 {
		t.Errorf("Requests = %d; want 4", got)
	}
	if !auditHas(t, e.audit, `"resource":"thing/other/cfg"`) {
		t.Errorf("audit log has no denial of thing/other/cfg")
	}
}
