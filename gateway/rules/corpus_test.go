package rules

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/edgegw/edgegw/gateway/rules/sql/sqltest"
)

// The corpus (gateway/rules/sql/sqltest): SQL statements with an input
// message and the output AWS IoT documents for them, run through the engine
// (CompileRule, Rule.Matches, Rule.Evaluate).

func TestCorpus(t *testing.T) {
	cases := sqltest.Corpus()
	if len(cases) < 100 {
		t.Fatalf("corpus has %d cases; want at least 100", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			r, err := CompileRule(0, Config{Name: "corpus", SQL: tc.SQL, Actions: []ActionConfig{{Forward: &ForwardConfig{Route: "r"}}}})
			if err != nil {
				t.Fatalf("compile %q: %v (reference: %s)", tc.SQL, err, tc.Page)
			}
			topic := tc.Topic
			if topic == "" {
				topic = "topic/subtopic"
			}
			m := &Message{Topic: topic, Payload: []byte(tc.Payload)}
			if tc.Msg != nil {
				tc.Msg(m)
			}
			if got := r.Matches(topic); got != !tc.NoTopic {
				t.Fatalf("Matches(%q) = %v; want %v (reference: %s)", topic, got, !tc.NoTopic, tc.Page)
			}
			if tc.NoTopic {
				return
			}
			res := r.Evaluate(m)
			if res.Matched != !tc.NoMatch {
				t.Fatalf("matched = %v; want %v (reference: %s)", res.Matched, !tc.NoMatch, tc.Page)
			}
			if len(res.Failures) > 0 {
				t.Fatalf("failures %+v; want none", res.Failures)
			}
			if tc.NoMatch {
				return
			}
			if tc.Raw {
				if !bytes.Equal(res.Payload, []byte(tc.Want)) {
					t.Fatalf("got %q; want %q (reference: %s)", res.Payload, tc.Want, tc.Page)
				}
				return
			}
			if !jsonEqual(t, res.Payload, []byte(tc.Want)) {
				t.Fatalf("got %s; want %s (reference: %s)", res.Payload, tc.Want, tc.Page)
			}
		})
	}
	t.Logf("%d corpus cases", len(cases))
}

func jsonEqual(t *testing.T, got, want []byte) bool {
	t.Helper()
	var g, w any
	dg := json.NewDecoder(bytes.NewReader(got))
	dg.UseNumber()
	if err := dg.Decode(&g); err != nil {
		t.Fatalf("output %q is not JSON: %v", got, err)
	}
	dw := json.NewDecoder(bytes.NewReader(want))
	dw.UseNumber()
	if err := dw.Decode(&w); err != nil {
		t.Fatalf("want %q is not JSON: %v", want, err)
	}
	return reflect.DeepEqual(normalizeNumbers(g), normalizeNumbers(w))
}

// normalizeNumbers compares numbers by value: 5E-12 and 5e-12 are equal.
func normalizeNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		f, _ := x.Float64()
		return f
	case []any:
		for i := range x {
			x[i] = normalizeNumbers(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = normalizeNumbers(x[k])
		}
	}
	return v
}
