package rules

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/rules/sql/sqltest"
)

const (
	pageTemplates = "https://docs.aws.amazon.com/iot/latest/developerguide/iot-substitution-templates.html"
	pageRepublish = "https://docs.aws.amazon.com/iot/latest/developerguide/republish-rule-action.html"
	pageErrors    = "https://docs.aws.amazon.com/iot/latest/developerguide/rule-error-handling.html"
)

func mustRule(t *testing.T, cfg Config) *Rule {
	t.Helper()
	r, err := CompileRule(0, cfg)
	if err != nil {
		t.Fatalf("CompileRule: %v", err)
	}
	return r
}

// Substitution templates in action targets, from the pages that document them.
func TestActionTargets(t *testing.T) {
	cases := []struct {
		name, page, sql, target, topic, payload string
		kind                                    ActionKind
		wantTopic, wantPayload                  string
	}{
		{name: "templates/topic-republish", page: pageTemplates, kind: Republish,
			sql: "SELECT *, timestamp() AS timestamp FROM 'my/iot/topic'", target: "${topic()}/republish",
			topic: "my/iot/topic", payload: `{"deviceid":"iot123","temp":54.98}`,
			wantTopic: "my/iot/topic/republish", wantPayload: `{"deviceid":"iot123","temp":54.98,"timestamp":1579637878451}`},
		{name: "binary/field-in-topic", page: sqltest.PageBinary, kind: Republish,
			sql: "SELECT * FROM 'topic/subtopic'", target: "device/${device_id}",
			topic: "topic/subtopic", payload: `{"device_id":"d7"}`, wantTopic: "device/d7", wantPayload: `{"device_id":"d7"}`},
		{name: "republish/reserved-topic", page: pageRepublish, kind: Republish,
			sql: "SELECT * FROM 'some/topic'", target: "$$aws/things/MyThing/shadow/update",
			topic: "some/topic", payload: `{"state":{}}`, wantTopic: "$aws/things/MyThing/shadow/update", wantPayload: `{"state":{}}`},
		{name: "errors/expression-template", page: pageErrors, kind: Republish,
			sql: "SELECT * FROM 'testme/#'", target: "errors/${replace(topic(), '/', '-') + '-' + timestamp()}",
			topic: "testme/action", payload: `{}`, wantTopic: "errors/testme-action-1579637878451", wantPayload: `{}`},
		{name: "templates/alias-not-visible (derived)", page: pageTemplates, kind: Republish,
			sql: "SELECT temp AS t FROM 'a/+'", target: "x/${t}/${temp}",
			topic: "a/b", payload: `{"temp":5}`, wantTopic: "x//5", wantPayload: `{"t":5}`},
		{name: "templates/clientid", page: pageTemplates, kind: Republish,
			sql: "SELECT temp FROM 'a/+'", target: "from/${clientid()}/${topic(2)}",
			topic: "a/b", payload: `{"temp":5}`, wantTopic: "from/sensor-1/b", wantPayload: `{"temp":5}`},
		{name: "set/variable-in-template (derived)", page: sqltest.PageSet, kind: Republish,
			sql: "SET @dev = upper(topic(2)) SELECT temp FROM 'a/+'", target: "alarms/${@dev}",
			topic: "a/b7", payload: `{"temp":5}`, wantTopic: "alarms/B7", wantPayload: `{"temp":5}`},
		{name: "forward/default-topic", kind: Forward, sql: "SELECT temp FROM 'a/+'", topic: "a/b", payload: `{"temp":5}`,
			wantTopic: "a/b", wantPayload: `{"temp":5}`},
		{name: "forward/topic-template", kind: Forward, sql: "SELECT temp FROM 'a/+'", target: "sites/${topic(2)}",
			topic: "a/b", payload: `{"temp":5}`, wantTopic: "sites/b", wantPayload: `{"temp":5}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ac := ActionConfig{Republish: &RepublishConfig{Topic: tc.target, QoS: 1}}
			if tc.kind == Forward {
				ac = ActionConfig{Forward: &ForwardConfig{Route: "cloud", Topic: tc.target}}
			}
			r := mustRule(t, Config{Name: "r", SQL: tc.sql, Actions: []ActionConfig{ac}})
			m := &Message{Topic: tc.topic, Payload: []byte(tc.payload), ClientID: "sensor-1", Timestamp: time.UnixMilli(1579637878451)}
			if !r.Matches(m.Topic) {
				t.Fatalf("Matches(%q) = false; want true", m.Topic)
			}
			res := r.Evaluate(m)
			if !res.Matched || len(res.Failures) > 0 || len(res.Outputs) != 1 {
				t.Fatalf("got matched %v, failures %+v, %d outputs; want one output", res.Matched, res.Failures, len(res.Outputs))
			}
			o := res.Outputs[0]
			if o.Kind != tc.kind || o.Topic != tc.wantTopic {
				t.Errorf("got %v to %q; want %v to %q (reference: %s)", o.Kind, o.Topic, tc.kind, tc.wantTopic, tc.page)
			}
			if tc.kind == Republish && o.QoS != 1 {
				t.Errorf("got QoS %d; want 1", o.QoS)
			}
			if tc.kind == Forward && o.Route != "cloud" {
				t.Errorf("got route %q; want cloud", o.Route)
			}
			if !jsonEqual(t, o.Payload, []byte(tc.wantPayload)) {
				t.Errorf("got payload %s; want %s", o.Payload, tc.wantPayload)
			}
		})
	}
}

// An action whose target cannot be published to fails; the error action gets
// AWS's error message (rule-error-handling: one message per rule and message,
// with every failure).
func TestErrorAction(t *testing.T) {
	r := mustRule(t, Config{
		Name: "TestAction",
		SQL:  "SELECT * FROM 'testme/#'",
		Actions: []ActionConfig{
			{Republish: &RepublishConfig{Topic: "out/${kind}"}},
			{Forward: &ForwardConfig{Route: "cloud"}},
		},
		ErrorAction: &ActionConfig{Republish: &RepublishConfig{Topic: "rules/errors/${topic(2)}"}},
	})
	payload := `{"kind":"a/+"}`
	m := &Message{Topic: "testme/action", Payload: []byte(payload), ClientID: "iotconsole-1", TraceID: "7e146a2c"}
	res := r.Evaluate(m)
	if len(res.Outputs) != 1 || res.Outputs[0].Kind != Forward {
		t.Fatalf("got outputs %+v; want only the forward", res.Outputs)
	}
	if len(res.Failures) != 1 || res.Failures[0].Action != 0 || res.Failures[0].Resource != "out/a/+" {
		t.Fatalf("got failures %+v; want actions[0] on out/a/+", res.Failures)
	}
	if !strings.Contains(res.Failures[0].Message, ErrActionTarget.Error()) {
		t.Errorf("failure message %q; want it to name %q", res.Failures[0].Message, ErrActionTarget)
	}
	eo := res.ErrorOutput
	if eo == nil || eo.Kind != Republish || eo.Topic != "rules/errors/action" || eo.Action != -1 {
		t.Fatalf("got error output %+v; want a republish to rules/errors/action", eo)
	}
	var msg struct {
		RuleName              string `json:"ruleName"`
		Topic                 string `json:"topic"`
		ClientID              string `json:"clientId"`
		TraceID               string `json:"traceId"`
		Base64OriginalPayload string `json:"base64OriginalPayload"`
		Failures              []struct {
			FailedAction, FailedResource, ErrorMessage string
		} `json:"failures"`
	}
	if err := json.Unmarshal(eo.Payload, &msg); err != nil {
		t.Fatalf("error payload %s: %v", eo.Payload, err)
	}
	orig, _ := base64.StdEncoding.DecodeString(msg.Base64OriginalPayload)
	if msg.RuleName != "TestAction" || msg.Topic != "testme/action" || msg.ClientID != "iotconsole-1" || msg.TraceID != "7e146a2c" || string(orig) != payload {
		t.Errorf("got %s; want ruleName, topic, clientId, traceId and the original payload", eo.Payload)
	}
	if len(msg.Failures) != 1 || msg.Failures[0].FailedAction != "RepublishAction" || msg.Failures[0].FailedResource != "out/a/+" || msg.Failures[0].ErrorMessage == "" {
		t.Errorf("got failures %+v; want one RepublishAction on out/a/+", msg.Failures)
	}

	// A failure the caller meets later (a failed enqueue) goes through OnError.
	o, ok := r.OnError(m, []Failure{{Action: 1, Kind: Forward, Resource: "cloud", Message: "queue full"}})
	if !ok || !strings.Contains(string(o.Payload), `"failedAction":"ForwardAction","failedResource":"cloud","errorMessage":"queue full"`) {
		t.Errorf("OnError = %s, %v; want the ForwardAction failure", o.Payload, ok)
	}
	noErr := mustRule(t, Config{Name: "n", SQL: "SELECT * FROM 'a'", Actions: []ActionConfig{{Forward: &ForwardConfig{Route: "c"}}}})
	if _, ok := noErr.OnError(m, []Failure{{Message: "x"}}); ok {
		t.Error("OnError on a rule without error_action: got ok; want false")
	}
}

// SELECT *, x on a payload that is not a JSON object cannot add fields: the
// actions fail and the error action says why (binary-payloads: fields are
// added to an empty or JSON payload only).
func TestStarPlusOnBinaryFails(t *testing.T) {
	r := mustRule(t, Config{Name: "r", SQL: "SELECT *, 1 AS one FROM 'a'",
		Actions:     []ActionConfig{{Forward: &ForwardConfig{Route: "c"}}},
		ErrorAction: &ActionConfig{Republish: &RepublishConfig{Topic: "errs"}}})
	res := r.Evaluate(&Message{Topic: "a", Payload: []byte{0xff, 0x00}})
	if len(res.Outputs) != 0 || len(res.Failures) != 1 || !strings.Contains(res.Failures[0].Message, ErrNotObject.Error()) {
		t.Fatalf("got outputs %+v, failures %+v; want one failure naming %q", res.Outputs, res.Failures, ErrNotObject)
	}
	if res.ErrorOutput == nil || res.ErrorOutput.Topic != "errs" {
		t.Fatalf("got error output %+v; want one to errs", res.ErrorOutput)
	}
}

func TestSetProcess(t *testing.T) {
	set, err := Compile([]Config{
		{Name: "hot", SQL: "SELECT temp, topic(2) AS device FROM 'building/+/temp' WHERE temp > 30",
			Actions: []ActionConfig{{Republish: &RepublishConfig{Topic: "alarms/${topic(2)}", QoS: 1}}}},
		{Name: "all", SQL: "SELECT * FROM 'building/#'", Actions: []ActionConfig{{Forward: &ForwardConfig{Route: "cloud"}}}},
		{Name: "off", SQL: "SELECT * FROM 'building/#'", Disabled: true, Actions: []ActionConfig{{Forward: &ForwardConfig{Route: "x"}}}},
	})
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	cases := []struct {
		name, topic, payload string
		want                 []string // rule:kind:topic
	}{
		{"hot", "building/b1/temp", `{"temp":35}`, []string{"hot:republish:alarms/b1", "all:forward:building/b1/temp"}},
		{"cool", "building/b1/temp", `{"temp":20}`, []string{"all:forward:building/b1/temp"}},
		{"other topic", "building/b1/humidity", `{"temp":35}`, []string{"all:forward:building/b1/humidity"}},
		{"no rule", "garage/door", `{}`, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := &Message{Topic: tc.topic, Payload: []byte(tc.payload)}
			if got := set.Any(tc.topic); got != (tc.want != nil) {
				t.Errorf("Any(%q) = %v; want %v", tc.topic, got, tc.want != nil)
			}
			var got []string
			for _, res := range set.Process(m) {
				for _, o := range res.Outputs {
					got = append(got, res.Rule.Name()+":"+o.Kind.String()+":"+o.Topic)
				}
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("got %v; want %v", got, tc.want)
			}
		})
	}
	res := set.Process(&Message{Topic: "building/b9/temp", Payload: []byte(`{"temp":31.5,"hum":40}`)})
	if string(res[0].Payload) != `{"temp":31.5,"device":"b9"}` {
		t.Errorf("got %s; want {\"temp\":31.5,\"device\":\"b9\"}", res[0].Payload)
	}
}

func TestTrySQL(t *testing.T) {
	tr, err := TrySQL("SELECT temp, topic(2) AS device FROM 'building/+/temp' WHERE temp > 30",
		&Message{Topic: "building/b1/temp", Payload: []byte(`{"temp":35}`)})
	if err != nil || !tr.TopicMatches || !tr.Matched || string(tr.Payload) != `{"temp":35,"device":"b1"}` {
		t.Errorf("got %+v (payload %s), %v; want a match with {\"temp\":35,\"device\":\"b1\"}", tr, tr.Payload, err)
	}
	tr, err = TrySQL("SELECT * FROM 'other'", &Message{Topic: "building/b1/temp", Payload: []byte(`{}`)})
	if err != nil || tr.TopicMatches {
		t.Errorf("got %+v, %v; want TopicMatches false", tr, err)
	}
	if _, err := TrySQL("SELECT aws_lambda('f', *) AS x FROM 'a'", &Message{Topic: "a"}); !errors.Is(err, ErrCloudFunction) ||
		!strings.HasPrefix(err.Error(), "compiling the SQL: 1:8: function aws_lambda()") {
		t.Errorf("got %v; want the refusal of aws_lambda", err)
	}
}

// Rules are evaluated concurrently by many publishers; the pooled scratch
// space must not leak between them (run with -race).
func TestConcurrentEvaluate(t *testing.T) {
	r := mustRule(t, Config{Name: "r", SQL: "SELECT temp, topic(2) AS device, (SELECT VALUE n FROM e) AS names FROM 'b/+/t' WHERE temp > 0",
		Actions: []ActionConfig{{Forward: &ForwardConfig{Route: "c"}}}})
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dev := string(rune('a' + g))
			want := `{"temp":7,"device":"` + dev + `","names":["x"]}`
			for range 200 {
				res := r.Evaluate(&Message{Topic: "b/" + dev + "/t", Payload: []byte(`{"temp":7,"e":[{"n":"x"}]}`)})
				if string(res.Payload) != want {
					errs <- "got " + string(res.Payload) + "; want " + want
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// Error action templates see the SET variables too, also when the caller
// reports the failure later through OnError (iot-sql-set: "Error action
// substitution templates").
func TestSetVariablesInErrorAction(t *testing.T) {
	r := mustRule(t, Config{Name: "r", SQL: "SET @d = topic(2) SELECT * FROM 'a/+'",
		Actions:     []ActionConfig{{Forward: &ForwardConfig{Route: "c"}}},
		ErrorAction: &ActionConfig{Republish: &RepublishConfig{Topic: "errs/${@d}"}}})
	o, ok := r.OnError(&Message{Topic: "a/dev9", Payload: []byte(`{}`)}, []Failure{{Kind: Forward, Resource: "c", Message: "queue full"}})
	if !ok || o.Topic != "errs/dev9" {
		t.Errorf("OnError = %+v, %v; want a republish to errs/dev9", o, ok)
	}
	_, err := CompileRule(0, Config{Name: "r", SQL: "SELECT * FROM 'a/+'",
		Actions: []ActionConfig{{Republish: &RepublishConfig{Topic: "x/${@nope}"}}}})
	if err == nil || !strings.Contains(err.Error(), `actions[0].republish.topic: 1:1: in template ${@nope} at offset 2: @nope is not set`) {
		t.Errorf("got %v; want the unset variable in the template reported", err)
	}
}

const pageHeaders = "https://docs.aws.amazon.com/iot/latest/apireference/API_MqttHeaders.html"

// The republish action's MQTT 5 headers, every one a substitution template.
func TestRepublishHeaders(t *testing.T) {
	r := mustRule(t, Config{Name: "r", SQL: "SELECT * FROM 'dev/+/req'", Actions: []ActionConfig{{Republish: &RepublishConfig{
		Topic: "svc/${topic(2)}", QoS: 1,
		Headers: &HeadersConfig{
			PayloadFormatIndicator: "UTF8_DATA",
			ContentType:            "${ctype}",
			ResponseTopic:          "dev/${topic(2)}/resp",
			CorrelationData:        "${encode(id, 'base64')}",
			MessageExpiry:          "${ttl}",
			UserProperties:         []UserPropertyConfig{{Key: "device", Value: "${topic(2)}"}, {Key: "site", Value: "plant-7"}},
		},
	}}}})
	res := r.Evaluate(&Message{Topic: "dev/d1/req", Payload: []byte(`{"ctype":"application/json","id":"r-42","ttl":60}`)})
	if len(res.Failures) > 0 || len(res.Outputs) != 1 || res.Outputs[0].Headers == nil {
		t.Fatalf("got %+v; want one output with headers (reference: %s)", res, pageHeaders)
	}
	h := res.Outputs[0].Headers
	if h.PayloadUTF8 == nil || !*h.PayloadUTF8 || h.ContentType != "application/json" || h.ResponseTopic != "dev/d1/resp" ||
		string(h.CorrelationData) != "r-42" || h.MessageExpiry == nil || *h.MessageExpiry != 60 ||
		len(h.UserProperties) != 2 || h.UserProperties[0] != (UserProperty{Key: "device", Value: "d1"}) || h.UserProperties[1] != (UserProperty{Key: "site", Value: "plant-7"}) {
		t.Errorf("got headers %+v; want UTF8_DATA, application/json, dev/d1/resp, r-42, 60, device=d1 site=plant-7", h)
	}

	// A header that renders to an invalid value fails the action.
	res = r.Evaluate(&Message{Topic: "dev/d1/req", Payload: []byte(`{"ctype":"x","id":"r","ttl":"soon"}`)})
	if len(res.Outputs) != 0 || len(res.Failures) != 1 || !strings.Contains(res.Failures[0].Message, `headers.message_expiry gave "soon", which is not a number of seconds`) {
		t.Errorf("got outputs %+v, failures %+v; want the expiry refused", res.Outputs, res.Failures)
	}

	_, err := CompileRule(0, Config{Name: "r", SQL: "SELECT * FROM 'a'", Actions: []ActionConfig{{Republish: &RepublishConfig{
		Topic: "b", Headers: &HeadersConfig{PayloadFormatIndicator: "TEXT"}}}}})
	if err == nil || !strings.Contains(err.Error(), `actions[0].republish.headers.payload_format_indicator: "TEXT": use UNSPECIFIED_BYTES or UTF8_DATA`) {
		t.Errorf("got %v; want the payload format refused", err)
	}
}
