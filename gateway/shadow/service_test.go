package shadow_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/shadow"
)

// Pages of the AWS IoT Core developer guide the tests reproduce.
const (
	docMQTT      = "https://docs.aws.amazon.com/iot/latest/developerguide/device-shadow-mqtt.html"
	docDocument  = "https://docs.aws.amazon.com/iot/latest/developerguide/device-shadow-document.html"
	docDataFlow  = "https://docs.aws.amazon.com/iot/latest/developerguide/device-shadow-data-flow.html"
	docErrors    = "https://docs.aws.amazon.com/iot/latest/developerguide/device-shadow-error-messages.html"
	docDiagnose  = "https://docs.aws.amazon.com/iot/latest/developerguide/diagnosing-shadows.html"
	docTutorial  = "https://docs.aws.amazon.com/iot/latest/developerguide/using-device-shadows.html"
	docAPINames  = "https://docs.aws.amazon.com/iot/latest/apireference/API_iotdata_GetThingShadow.html"
	simPrefix    = "$aws/things/mySimulatedThing/shadow/name/simShadow1"
	classicLamp  = "$aws/things/lamp/shadow"
	defaultStamp = 1591140517
)

func newService() *shadow.Service {
	return shadow.New(shadow.NewMemStore(), shadow.Options{Now: func() time.Time { return time.Unix(defaultStamp, 0) }})
}

// do publishes payload to topic at epoch second ts and returns the responses.
func do(t *testing.T, svc *shadow.Service, topic, payload string, ts int64) []shadow.Response {
	t.Helper()
	return svc.Handle(context.Background(), shadow.Request{Topic: topic, Payload: []byte(payload), Time: time.Unix(ts, 0), ClientID: "test"})
}

// mustAccept publishes an update that must be accepted.
func mustAccept(t *testing.T, svc *shadow.Service, topic, payload string, ts int64) []shadow.Response {
	t.Helper()
	out := do(t, svc, topic, payload, ts)
	if len(out) == 0 || !strings.HasSuffix(out[0].Topic, "/accepted") {
		t.Fatalf("publish %s to %s: got %s; want an accepted response", payload, topic, show(out))
	}
	return out
}

func show(out []shadow.Response) string {
	var b strings.Builder
	for _, r := range out {
		b.WriteString("\n  " + r.Topic + " " + string(r.Payload))
	}
	if b.Len() == 0 {
		return "no responses"
	}
	return b.String()
}

// wantResponses checks the topics and payloads (as JSON values) of out.
func wantResponses(t *testing.T, out []shadow.Response, want ...string) {
	t.Helper()
	if len(out) != len(want)/2 {
		t.Fatalf("got %d responses:%s\nwant %d", len(out), show(out), len(want)/2)
	}
	for i := 0; i < len(want); i += 2 {
		r := out[i/2]
		if r.Topic != want[i] {
			t.Errorf("response %d topic = %s; want %s", i/2, r.Topic, want[i])
		}
		wantJSON(t, r.Payload, want[i+1])
	}
}

func wantJSON(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("response %s is not JSON: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("test bug: want %s is not JSON: %v", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("got  %s\nwant %s", got, compact(want))
	}
}

func compact(s string) string {
	var v any
	_ = json.Unmarshal([]byte(s), &v)
	b, _ := json.Marshal(v)
	return string(b)
}

// TestTutorialWalkthrough replays every message of AWS's named-shadow
// walkthrough (docTutorial) and checks each documented response document,
// versions and timestamps included.
func TestTutorialWalkthrough(t *testing.T) {
	svc := newService()
	// Before the shadow exists: get is rejected with 404.
	wantResponses(t, do(t, svc, simPrefix+"/get", "", 1591140400),
		simPrefix+"/get/rejected", `{"code":404,"message":"No shadow exists with name: 'simShadow1'","timestamp":1591140400}`)

	// The walkthrough's shadow is at version 3 when the device creates it; two
	// earlier reports of the same fields bring ours there.
	for range 2 {
		mustAccept(t, svc, simPrefix+"/update", `{"state":{"reported":{"ID":"SmartLamp21"}}}`, 1591140517)
	}
	create := `{"state":{"reported":{"ID":"SmartLamp21","ColorRGB":[128,128,128]}},"clientToken":"426bfd96-e720-46d3-95cd-014e3ef12bb6"}`
	out := do(t, svc, simPrefix+"/update", create, 1591140517)
	wantResponses(t, out[:1], simPrefix+"/update/accepted", `{
	  "state": {"reported": {"ID": "SmartLamp21", "ColorRGB": [128, 128, 128]}},
	  "metadata": {"reported": {"ID": {"timestamp": 1591140517},
	    "ColorRGB": [{"timestamp": 1591140517}, {"timestamp": 1591140517}, {"timestamp": 1591140517}]}},
	  "version": 3, "timestamp": 1591140517, "clientToken": "426bfd96-e720-46d3-95cd-014e3ef12bb6"}`)

	// The app's get-thing-shadow.
	wantResponses(t, do(t, svc, simPrefix+"/get", "", 1591141111), simPrefix+"/get/accepted", `{
	  "state": {"reported": {"ID": "SmartLamp21", "ColorRGB": [128, 128, 128]}},
	  "metadata": {"reported": {"ID": {"timestamp": 1591140517},
	    "ColorRGB": [{"timestamp": 1591140517}, {"timestamp": 1591140517}, {"timestamp": 1591140517}]}},
	  "version": 3, "timestamp": 1591141111}`)

	// The app sets desired: accepted, then the delta the device receives.
	appUpdate := `{"state":{"desired":{"ColorRGB":[255,255,0]}},"clientToken":"21b21b21-bfd2-4279-8c65-e2f697ff4fab"}`
	out = do(t, svc, simPrefix+"/update", appUpdate, 1591141596)
	colorMeta := `[{"timestamp": 1591141596}, {"timestamp": 1591141596}, {"timestamp": 1591141596}]`
	wantResponses(t, out[:2],
		simPrefix+"/update/accepted", `{
		  "state": {"desired": {"ColorRGB": [255, 255, 0]}},
		  "metadata": {"desired": {"ColorRGB": `+colorMeta+`}},
		  "version": 4, "timestamp": 1591141596, "clientToken": "21b21b21-bfd2-4279-8c65-e2f697ff4fab"}`,
		simPrefix+"/update/delta", `{
		  "version": 4, "timestamp": 1591141596,
		  "state": {"ColorRGB": [255, 255, 0]},
		  "metadata": {"ColorRGB": `+colorMeta+`},
		  "clientToken": "21b21b21-bfd2-4279-8c65-e2f697ff4fab"}`)
	if len(out) != 3 || out[2].Topic != simPrefix+"/update/documents" {
		t.Fatalf("app update: got%s; want accepted, delta, documents", show(out))
	}

	// The device reports the new color: accepted and documents.
	report := `{"state":{"reported":{"ColorRGB":[255,255,0]}},"clientToken":"a4dc2227-9213-4c6a-a6a5-053304f60258"}`
	out = do(t, svc, simPrefix+"/update", report, 1591142747)
	reportedMeta := `[{"timestamp": 1591142747}, {"timestamp": 1591142747}, {"timestamp": 1591142747}]`
	oldMeta := `[{"timestamp": 1591140517}, {"timestamp": 1591140517}, {"timestamp": 1591140517}]`
	wantResponses(t, out,
		simPrefix+"/update/accepted", `{
		  "state": {"reported": {"ColorRGB": [255, 255, 0]}},
		  "metadata": {"reported": {"ColorRGB": `+reportedMeta+`}},
		  "version": 5, "timestamp": 1591142747, "clientToken": "a4dc2227-9213-4c6a-a6a5-053304f60258"}`,
		simPrefix+"/update/documents", `{
		  "previous": {
		    "state": {"desired": {"ColorRGB": [255, 255, 0]}, "reported": {"ID": "SmartLamp21", "ColorRGB": [128, 128, 128]}},
		    "metadata": {"desired": {"ColorRGB": `+colorMeta+`},
		                 "reported": {"ID": {"timestamp": 1591140517}, "ColorRGB": `+oldMeta+`}},
		    "version": 4},
		  "current": {
		    "state": {"desired": {"ColorRGB": [255, 255, 0]}, "reported": {"ID": "SmartLamp21", "ColorRGB": [255, 255, 0]}},
		    "metadata": {"desired": {"ColorRGB": `+colorMeta+`},
		                 "reported": {"ID": {"timestamp": 1591140517}, "ColorRGB": `+reportedMeta+`}},
		    "version": 5},
		  "timestamp": 1591142747, "clientToken": "a4dc2227-9213-4c6a-a6a5-053304f60258"}`)

	// The app's final get: desired and reported agree, so no delta.
	wantResponses(t, do(t, svc, simPrefix+"/get", "", 1591143269), simPrefix+"/get/accepted", `{
	  "state": {"desired": {"ColorRGB": [255, 255, 0]}, "reported": {"ID": "SmartLamp21", "ColorRGB": [255, 255, 0]}},
	  "metadata": {"desired": {"ColorRGB": `+colorMeta+`},
	               "reported": {"ID": {"timestamp": 1591140517}, "ColorRGB": `+reportedMeta+`}},
	  "version": 5, "timestamp": 1591143269}`)
}

// TestOptimisticLocking reproduces docDataFlow "Optimistic locking": a stale
// version is refused with 409, the current one is accepted.
func TestOptimisticLocking(t *testing.T) {
	svc := newService()
	for range 10 {
		mustAccept(t, svc, classicLamp+"/update", `{"state":{"desired":{"colors":["RED","GREEN","BLUE"]}}}`, defaultStamp)
	}
	stale := `{"state":{"desired":{"colors":["BLUE"]}},"version":9,"clientToken":"426bfd96-e720-46d3-95cd-014e3ef12bb6"}`
	wantResponses(t, do(t, svc, classicLamp+"/update", stale, defaultStamp), classicLamp+"/update/rejected",
		`{"code":409,"message":"Version conflict","clientToken":"426bfd96-e720-46d3-95cd-014e3ef12bb6","timestamp":1591140517}`)
	mustAccept(t, svc, classicLamp+"/update", `{"state":{"desired":{"colors":["BLUE"]}},"version":10}`, defaultStamp)
	out := do(t, svc, classicLamp+"/get", "", defaultStamp)
	wantResponses(t, out, classicLamp+"/get/accepted", `{
	  "state": {"desired": {"colors": ["BLUE"]}, "delta": {"colors": ["BLUE"]}},
	  "metadata": {"desired": {"colors": [{"timestamp":1591140517}]}, "delta": {"colors": [{"timestamp":1591140517}]}},
	  "version": 11, "timestamp": 1591140517}`)
}

// TestErrors publishes a request for each error docErrors lists that can arise
// here and checks the error response document (docDocument, "Error response
// document"): code, message, timestamp, and clientToken when the request had one.
func TestErrors(t *testing.T) {
	deep := func(levels int) string {
		return `{"state":{"desired":` + strings.Repeat(`{"a":`, levels) + `1` + strings.Repeat(`}`, levels) + `}}`
	}
	bigValue := strings.Repeat("x", shadow.DefaultMaxStateBytes)
	tests := []struct {
		name, topic, payload string
		code                 int
		message              string
		token                string
	}{
		{"invalid JSON", classicLamp + "/update", `{"state":`, 400, "Invalid JSON", ""},
		{"not an object", classicLamp + "/update", `["state"]`, 400, "Invalid JSON", ""},
		{"trailing garbage", classicLamp + "/update", `{"state":{}} x`, 400, "Invalid JSON", ""},
		{"empty update", classicLamp + "/update", ``, 400, "Invalid JSON", ""},
		{"missing state", classicLamp + "/update", `{"clientToken":"t-1"}`, 400, "Missing required node: state", "t-1"},
		{"state not an object", classicLamp + "/update", `{"state":"on","clientToken":"t-2"}`, 400, "State node must be an object", "t-2"},
		{"desired not an object", classicLamp + "/update", `{"state":{"desired":[1]}}`, 400, "Desired node must be an object", ""},
		{"reported not an object", classicLamp + "/update", `{"state":{"reported":5}}`, 400, "Reported node must be an object", ""},
		{"both not objects: desired is named", classicLamp + "/update", `{"state":{"reported":5,"desired":"x"}}`, 400, "Desired node must be an object", ""},
		{"version a string", classicLamp + "/update", `{"state":{},"version":"ten"}`, 400, "Invalid version", ""},
		{"version a fraction", classicLamp + "/update", `{"state":{},"version":1.5}`, 400, "Invalid version", ""},
		{"version negative", classicLamp + "/update", `{"state":{},"version":-1}`, 400, "Invalid version", ""},
		{"clientToken over 64 bytes", classicLamp + "/update", `{"state":{},"clientToken":"` + strings.Repeat("t", 65) + `"}`, 400, "Invalid clientToken", ""},
		{"clientToken not a string", classicLamp + "/update", `{"state":{},"clientToken":7}`, 400, "Invalid clientToken", ""},
		{"get with a long clientToken", classicLamp + "/get", `{"clientToken":"` + strings.Repeat("t", 65) + `"}`, 400, "Invalid clientToken", ""},
		{"7 levels of nesting", classicLamp + "/update", deep(7), 400, "JSON contains too many levels of nesting; maximum is 6", ""},
		{"unknown node in state", classicLamp + "/update", `{"state":{"desired":{"a":1},"metadata":{"a":1}}}`, 400, "State contains an invalid node", ""},
		{"delta not an object", classicLamp + "/update", `{"state":{"delta":1}}`, 400, "State contains an invalid node", ""},
		{"null in an array", classicLamp + "/update", `{"state":{"desired":{"colors":[null,"RED","GREEN"]}}}`, 400, "State contains an invalid node", ""},
		{"get missing classic shadow", classicLamp + "/get", `{"clientToken":"g-1"}`, 404, "No shadow exists with name: 'lamp'", "g-1"},
		{"delete missing named shadow", "$aws/things/lamp/shadow/name/cfg/delete", ``, 404, "No shadow exists with name: 'cfg'", ""},
		{"state over 8 KB", classicLamp + "/update", `{"state":{"reported":{"v":"` + bigValue + `"}},"clientToken":"big"}`, 413, "The payload exceeds the maximum size allowed", "big"},
		{"payload over 128 KiB", classicLamp + "/update", `{"state":{},"pad":"` + strings.Repeat(" ", shadow.DefaultMaxPayloadBytes) + `"}`, 413, "The payload exceeds the maximum size allowed", ""},
		{"not UTF-8", classicLamp + "/update", "{\"state\":{\"reported\":{\"a\":\"\xff\"}}}", 415, "Unsupported documented encoding; supported encoding is UTF-8", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := newService()
			out := do(t, svc, tt.topic, tt.payload, 1591057529)
			want := map[string]any{"code": tt.code, "message": tt.message, "timestamp": 1591057529}
			if tt.token != "" {
				want["clientToken"] = tt.token
			}
			wb, _ := json.Marshal(want)
			wantResponses(t, out, tt.topic+"/rejected", string(wb))
		})
	}
}

// TestLimitsAccepted checks the largest requests the limits allow.
func TestLimitsAccepted(t *testing.T) {
	svc := newService()
	six := `{"state":{"desired":{"a":{"b":{"c":{"d":{"e":{"f":1}}}}}}}}`
	mustAccept(t, svc, classicLamp+"/update", six, defaultStamp)
	// 8 KB of desired and reported together, as compact JSON: {"reported":{"v":"..."}}
	fill := strings.Repeat("x", shadow.DefaultMaxStateBytes-len(`{"desired":{"a":{"b":{"c":{"d":{"e":{"f":1}}}}}},"reported":{"v":""}}`))
	mustAccept(t, svc, classicLamp+"/update", `{"state":{"reported":{"v":"`+fill+`"}}}`, defaultStamp)
	out := do(t, svc, classicLamp+"/update", `{"state":{"reported":{"w":1}}}`, defaultStamp)
	wantResponses(t, out, classicLamp+"/update/rejected", `{"code":413,"message":"The payload exceeds the maximum size allowed","timestamp":1591140517}`)
	// The refused update changed nothing: the version is still 2.
	if got := version(t, svc, classicLamp); got != 2 {
		t.Fatalf("version after a refused update = %d; want 2", got)
	}
}

func version(t *testing.T, svc *shadow.Service, prefix string) int64 {
	t.Helper()
	out := do(t, svc, prefix+"/get", "", defaultStamp)
	if len(out) != 1 || !strings.HasSuffix(out[0].Topic, "/get/accepted") {
		t.Fatalf("get %s: got%s; want get/accepted", prefix, show(out))
	}
	var doc struct{ Version int64 }
	if err := json.Unmarshal(out[0].Payload, &doc); err != nil {
		t.Fatalf("get %s: %v", prefix, err)
	}
	return doc.Version
}

// TestDocumentRules covers docDocument's rules one by one, each with the
// documented request and the state the documented result shows.
func TestDocumentRules(t *testing.T) {
	tests := []struct {
		name    string
		updates []string
		get     string // the expected get/accepted
	}{{
		name: "arrays are replaced whole (Array values in shadow documents)",
		updates: []string{
			`{"state":{"desired":{"colors":["RED","GREEN","BLUE"]}}}`,
			`{"state":{"desired":{"colors":["RED"]}}}`,
		},
		get: `{"state":{"desired":{"colors":["RED"]},"delta":{"colors":["RED"]}},
		  "metadata":{"desired":{"colors":[{"timestamp":1591140517}]},"delta":{"colors":[{"timestamp":1591140517}]}},
		  "version":2,"timestamp":1591140517}`,
	}, {
		name: "desired null removes the section (Empty shadow document properties)",
		updates: []string{
			`{"state":{"desired":{"color":"RED"}}}`,
			`{"state":{"reported":{"color":"red"},"desired":null}}`,
		},
		get: `{"state":{"reported":{"color":"red"}},"metadata":{"reported":{"color":{"timestamp":1591140517}}},
		  "version":2,"timestamp":1591140517}`,
	}, {
		name: "null deletes one field (docDataFlow, Deleting a property)",
		updates: []string{
			`{"state":{"desired":{"color":{"r":10},"engine":"ON"}}}`,
			`{"state":{"desired":{"engine":null}}}`,
		},
		get: `{"state":{"desired":{"color":{"r":10}},"delta":{"color":{"r":10}}},
		  "metadata":{"desired":{"color":{"r":{"timestamp":1591140517}}},"delta":{"color":{"r":{"timestamp":1591140517}}}},
		  "version":2,"timestamp":1591140517}`,
	}, {
		name: "nested objects merge and the delta keeps the path to the root (Delta state)",
		updates: []string{
			`{"state":{"desired":{"lights":{"color":{"r":255,"g":255,"b":255}}}}}`,
			`{"state":{"reported":{"lights":{"color":{"r":255,"g":0,"b":255}}}}}`,
		},
		get: `{"state":{"desired":{"lights":{"color":{"r":255,"g":255,"b":255}}},
		             "reported":{"lights":{"color":{"r":255,"g":0,"b":255}}},
		             "delta":{"lights":{"color":{"g":255}}}},
		  "metadata":{"desired":{"lights":{"color":{"r":{"timestamp":1591140517},"g":{"timestamp":1591140517},"b":{"timestamp":1591140517}}}},
		              "reported":{"lights":{"color":{"r":{"timestamp":1591140517},"g":{"timestamp":1591140517},"b":{"timestamp":1591140517}}}},
		              "delta":{"lights":{"color":{"g":{"timestamp":1591140517}}}}},
		  "version":2,"timestamp":1591140517}`,
	}, {
		name: "delta holds desired fields missing from reported, not reported-only fields (Delta state)",
		updates: []string{
			`{"state":{"desired":{"color":"RED","state":"STOP"}}}`,
			`{"state":{"reported":{"color":"GREEN","engine":"ON"}}}`,
		},
		get: `{"state":{"desired":{"color":"RED","state":"STOP"},"reported":{"color":"GREEN","engine":"ON"},
		             "delta":{"color":"RED","state":"STOP"}},
		  "metadata":{"desired":{"color":{"timestamp":1591140517},"state":{"timestamp":1591140517}},
		              "reported":{"color":{"timestamp":1591140517},"engine":{"timestamp":1591140517}},
		              "delta":{"color":{"timestamp":1591140517},"state":{"timestamp":1591140517}}},
		  "version":2,"timestamp":1591140517}`,
	}, {
		name: "a nested merge keeps the untouched fields",
		updates: []string{
			`{"state":{"reported":{"lights":{"on":true,"level":3}}}}`,
			`{"state":{"reported":{"lights":{"level":4}}}}`,
		},
		get: `{"state":{"reported":{"lights":{"on":true,"level":4}}},
		  "metadata":{"reported":{"lights":{"on":{"timestamp":1591140517},"level":{"timestamp":1591140517}}}},
		  "version":2,"timestamp":1591140517}`,
	}, {
		name: "state null clears both sections but keeps the shadow (docDataFlow, Deleting a shadow)",
		updates: []string{
			`{"state":{"desired":{"a":1},"reported":{"a":2}}}`,
			`{"state":null}`,
		},
		get: `{"state":{},"metadata":{},"version":2,"timestamp":1591140517}`,
	}, {
		name: "a delta sent back in state is ignored",
		updates: []string{
			`{"state":{"desired":{"on":true},"delta":{"on":false,"x":1}}}`,
		},
		get: `{"state":{"desired":{"on":true},"delta":{"on":true}},
		  "metadata":{"desired":{"on":{"timestamp":1591140517}},"delta":{"on":{"timestamp":1591140517}}},
		  "version":1,"timestamp":1591140517}`,
	}, {
		name: "JSON outside desired and reported is not stored (diagnosing-shadows)",
		updates: []string{
			`{"state":{"reported":{"t":21.5}},"extra":{"x":1}}`,
		},
		get: `{"state":{"reported":{"t":21.5}},"metadata":{"reported":{"t":{"timestamp":1591140517}}},"version":1,"timestamp":1591140517}`,
	}, {
		name: "numbers and strings come back exactly as sent",
		updates: []string{
			`{"state":{"reported":{"big":12345678901234567890,"f":1.50,"s":"<a&b>","u":"\u00e9"}}}`,
		},
		get: `{"state":{"reported":{"big":12345678901234567890,"f":1.50,"s":"<a&b>","u":"é"}},
		  "metadata":{"reported":{"big":{"timestamp":1591140517},"f":{"timestamp":1591140517},"s":{"timestamp":1591140517},"u":{"timestamp":1591140517}}},
		  "version":1,"timestamp":1591140517}`,
	}, {
		name:    "escapes survive the round trip",
		updates: []string{`{"state":{"reported":{"s":"q\"b\\n\n\u0001\u2028\t/"}}}`},
		get: `{"state":{"reported":{"s":"q\"b\\n\n\u0001\u2028\t/"}},"metadata":{"reported":{"s":{"timestamp":1591140517}}},
		  "version":1,"timestamp":1591140517}`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := newService()
			for _, u := range tt.updates {
				mustAccept(t, svc, classicLamp+"/update", u, defaultStamp)
			}
			wantResponses(t, do(t, svc, classicLamp+"/get", "", defaultStamp), classicLamp+"/get/accepted", tt.get)
		})
	}
}

// TestNullState: "state": null clears both sections and is echoed as sent.
func TestNullState(t *testing.T) {
	svc := newService()
	mustAccept(t, svc, classicLamp+"/update", `{"state":{"desired":{"a":1}}}`, defaultStamp)
	out := mustAccept(t, svc, classicLamp+"/update", `{"state":null,"clientToken":"n"}`, defaultStamp)
	wantResponses(t, out[:1], classicLamp+"/update/accepted", `{"state":null,"version":2,"timestamp":1591140517,"clientToken":"n"}`)
}

func TestNumbersKeptExactly(t *testing.T) {
	svc := newService()
	mustAccept(t, svc, classicLamp+"/update", `{"state":{"reported":{"big":12345678901234567890,"s":"<a&b>"}}}`, defaultStamp)
	out := do(t, svc, classicLamp+"/get", "", defaultStamp)
	for _, want := range []string{`12345678901234567890`, `"<a&b>"`} {
		if !strings.Contains(string(out[0].Payload), want) {
			t.Errorf("get = %s; want it to contain %s byte for byte", out[0].Payload, want)
		}
	}
}

// TestDeltaTopic checks when update/delta is published (docMQTT, /update/delta).
func TestDeltaTopic(t *testing.T) {
	tests := []struct {
		name      string
		before    []string
		update    string
		wantDelta string // "" for no delta message
	}{
		{"desired differs from reported", nil, `{"state":{"desired":{"on":true}}}`, `{"on":true}`},
		{"desired equal to reported", []string{`{"state":{"reported":{"on":true}}}`}, `{"state":{"desired":{"on":true}}}`, ""},
		{"all differing fields, not only the request's", []string{`{"state":{"desired":{"a":1}}}`}, `{"state":{"desired":{"b":2}}}`, `{"a":1,"b":2}`},
		{"a report does not publish a delta", []string{`{"state":{"desired":{"on":true}}}`}, `{"state":{"reported":{"on":false}}}`, ""},
		{"desired null publishes no delta", []string{`{"state":{"desired":{"on":true}}}`}, `{"state":{"desired":null}}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := newService()
			for _, u := range tt.before {
				mustAccept(t, svc, classicLamp+"/update", u, defaultStamp)
			}
			out := mustAccept(t, svc, classicLamp+"/update", tt.update, defaultStamp)
			var got []byte
			for _, r := range out {
				if r.Topic == classicLamp+"/update/delta" {
					got = r.Payload
				}
			}
			if tt.wantDelta == "" {
				if got != nil {
					t.Fatalf("got a delta %s; want none", got)
				}
				return
			}
			if got == nil {
				t.Fatalf("got%s; want a delta", show(out))
			}
			var d struct{ State json.RawMessage }
			_ = json.Unmarshal(got, &d)
			wantJSON(t, d.State, tt.wantDelta)
		})
	}
}

// TestDelete covers docDataFlow "Deleting a shadow": the accepted document, 404
// afterwards, and versions that continue within 48 hours and restart after.
func TestDelete(t *testing.T) {
	svc := newService()
	topic := "$aws/things/lamp/shadow/name/cfg"
	for range 4 {
		mustAccept(t, svc, topic+"/update", `{"state":{"reported":{"on":true}}}`, 1591057000)
	}
	wantResponses(t, do(t, svc, topic+"/delete", "", 1591057529),
		topic+"/delete/accepted", `{"version":4,"timestamp":1591057529}`)
	wantResponses(t, do(t, svc, topic+"/get", "", 1591057530),
		topic+"/get/rejected", `{"code":404,"message":"No shadow exists with name: 'cfg'","timestamp":1591057530}`)
	wantResponses(t, do(t, svc, topic+"/delete", `{"clientToken":"d-2"}`, 1591057531),
		topic+"/delete/rejected", `{"code":404,"message":"No shadow exists with name: 'cfg'","timestamp":1591057531,"clientToken":"d-2"}`)
	// A version naming the deleted one is the current version.
	out := mustAccept(t, svc, topic+"/update", `{"state":{"reported":{"on":false}},"version":4}`, 1591057600)
	wantResponses(t, out[:1], topic+"/update/accepted",
		`{"state":{"reported":{"on":false}},"metadata":{"reported":{"on":{"timestamp":1591057600}}},"version":5,"timestamp":1591057600}`)
	// documents after a re-creation has no previous.
	wantResponses(t, out[1:], topic+"/update/documents", `{"current":{"state":{"reported":{"on":false}},
	  "metadata":{"reported":{"on":{"timestamp":1591057600}}},"version":5},"timestamp":1591057600}`)

	mustAccept(t, svc, topic+"/delete", `{"clientToken":"d-3"}`, 1591057700)
	later := int64(1591057700 + 48*3600 + 1)
	out = mustAccept(t, svc, topic+"/update", `{"state":{"reported":{"on":true}}}`, later)
	var acc struct{ Version int64 }
	_ = json.Unmarshal(out[0].Payload, &acc)
	if acc.Version != 1 {
		t.Fatalf("version of a shadow re-created 48 h after its delete = %d; want 1", acc.Version)
	}
}

// TestClientTokenEcho checks that get and delete answer with the clientToken of
// their payload, as the AWS IoT Device SDKs require to match responses.
func TestClientTokenEcho(t *testing.T) {
	svc := newService()
	mustAccept(t, svc, classicLamp+"/update", `{"state":{"reported":{"on":true}},"clientToken":"lamp-0"}`, defaultStamp)
	out := do(t, svc, classicLamp+"/get", `{"clientToken":"lamp-1"}`, defaultStamp)
	wantResponses(t, out, classicLamp+"/get/accepted", `{"state":{"reported":{"on":true}},
	  "metadata":{"reported":{"on":{"timestamp":1591140517}}},"version":1,"timestamp":1591140517,"clientToken":"lamp-1"}`)
	// "Publish an empty message" (docMQTT, /get); content that is not JSON is
	// ignored, as for /delete ("The content of the message is ignored").
	wantResponses(t, do(t, svc, classicLamp+"/get", `not json`, defaultStamp), classicLamp+"/get/accepted", `{"state":{"reported":{"on":true}},
	  "metadata":{"reported":{"on":{"timestamp":1591140517}}},"version":1,"timestamp":1591140517}`)
	out = do(t, svc, classicLamp+"/delete", `{"clientToken":"lamp-2"}`, defaultStamp)
	wantResponses(t, out, classicLamp+"/delete/accepted", `{"version":1,"timestamp":1591140517,"clientToken":"lamp-2"}`)
}

// TestClassicAndNamedAreSeparate checks that the classic shadow and named
// shadows of one thing, and the same names on two things, are different shadows.
func TestClassicAndNamedAreSeparate(t *testing.T) {
	svc := newService()
	mustAccept(t, svc, "$aws/things/lamp/shadow/update", `{"state":{"reported":{"c":1}}}`, defaultStamp)
	mustAccept(t, svc, "$aws/things/lamp/shadow/name/b/update", `{"state":{"reported":{"n":1}}}`, defaultStamp)
	mustAccept(t, svc, "$aws/things/lamp/shadow/name/a$1/update", `{"state":{"reported":{"n":2}}}`, defaultStamp)
	mustAccept(t, svc, "$aws/things/lamp2/shadow/name/z/update", `{"state":{"reported":{"n":3}}}`, defaultStamp)
	mustAccept(t, svc, "$aws/things/lamp/shadow/name/gone/update", `{"state":{"reported":{"n":4}}}`, defaultStamp)
	mustAccept(t, svc, "$aws/things/lamp/shadow/name/gone/delete", ``, defaultStamp)
	names, err := svc.List(context.Background(), "lamp")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a$1", "b"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("List(lamp) = %q; want %q", names, want)
	}
	wantResponses(t, do(t, svc, "$aws/things/lamp/shadow/get", "", defaultStamp), "$aws/things/lamp/shadow/get/accepted",
		`{"state":{"reported":{"c":1}},"metadata":{"reported":{"c":{"timestamp":1591140517}}},"version":1,"timestamp":1591140517}`)
	if _, err := svc.List(context.Background(), "no/such"); err == nil {
		t.Fatal("List of an invalid thing name = nil error; want an error")
	}
}

// TestNotShadowRequests checks that Handle ignores every topic that is not a
// shadow request: responses, other topics, and invalid names.
func TestNotShadowRequests(t *testing.T) {
	svc := newService()
	for _, topic := range []string{
		"$aws/things/lamp/shadow/update/accepted",
		"$aws/things/lamp/shadow/update/delta",
		"building/lamp/shadow/update",
		"$aws/things/la mp/shadow/update",
		"$aws/things/lamp/shadow/name//update",
	} {
		if out := do(t, svc, topic, `{"state":{}}`, defaultStamp); out != nil {
			t.Errorf("Handle(%q) = %s; want nil", topic, show(out))
		}
	}
}

// TestReject is the broker's refusal of a request it authorized to publish but
// not to act on.
func TestReject(t *testing.T) {
	svc := newService()
	out := svc.Reject(shadow.Request{Topic: classicLamp + "/update", Payload: []byte(`{"state":{},"clientToken":"x"}`), Time: time.Unix(5, 0)}, shadow.ErrForbidden)
	wantResponses(t, out, classicLamp+"/update/rejected", `{"code":403,"message":"Forbidden","timestamp":5,"clientToken":"x"}`)
}

// TestConcurrentUpdates: many clients updating several shadows at once lose no
// update: each shadow's version counts its updates exactly.
func TestConcurrentUpdates(t *testing.T) {
	svc := newService()
	const clients, perClient, shadows = 8, 40, 4
	done := make(chan struct{})
	for c := range clients {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range perClient {
				topic := "$aws/things/t" + itoa((c+i)%shadows) + "/shadow/update"
				out := svc.Handle(context.Background(), shadow.Request{Topic: topic,
					Payload: []byte(`{"state":{"reported":{"c` + itoa(c) + `":` + itoa(i) + `}}}`), Time: time.Unix(defaultStamp, 0)})
				if len(out) == 0 || !strings.HasSuffix(out[0].Topic, "/accepted") {
					t.Errorf("update %s:%s", topic, show(out))
				}
			}
		}()
	}
	for range clients {
		<-done
	}
	for s := range shadows {
		if v := version(t, svc, "$aws/things/t"+itoa(s)+"/shadow"); v != clients*perClient/shadows {
			t.Errorf("shadow t%d version = %d; want %d", s, v, clients*perClient/shadows)
		}
	}
}
