package rules

import (
	"testing"
	"time"
)

// The typical edge rule: a threshold on one field, the device from the topic.
const typicalSQL = "SELECT temp, topic(2) AS device FROM 'building/+/temp' WHERE temp > 30"

var typicalPayload = []byte(`{"temp":31.5,"humidity":40,"battery":3.1,"fw":"1.4.2","seq":10442}`)

func benchRule(b *testing.B, sql string) *Rule {
	b.Helper()
	r, err := CompileRule(0, Config{Name: "bench", SQL: sql,
		Actions: []ActionConfig{{Republish: &RepublishConfig{Topic: "alarms/${topic(2)}"}}}})
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// BenchmarkTypicalRuleEval: WHERE and SELECT into the caller's buffer.
func BenchmarkTypicalRuleEval(b *testing.B) {
	r := benchRule(b, typicalSQL)
	m := &Message{Topic: "building/b7/temp", Payload: typicalPayload, Timestamp: time.Unix(1, 0)}
	var dst []byte
	b.ReportAllocs()
	for b.Loop() {
		out, matched, err := r.Eval(m, dst[:0])
		if !matched || err != nil {
			b.Fatalf("matched %v, %v", matched, err)
		}
		dst = out
	}
	if string(dst) != `{"temp":31.5,"device":"b7"}` {
		b.Fatalf("got %s", dst)
	}
}

// BenchmarkTypicalRuleEvaluate: the whole decision, with the republish target
// rendered from its template and the output owned by the caller.
func BenchmarkTypicalRuleEvaluate(b *testing.B) {
	r := benchRule(b, typicalSQL)
	m := &Message{Topic: "building/b7/temp", Payload: typicalPayload, Timestamp: time.Unix(1, 0)}
	b.ReportAllocs()
	for b.Loop() {
		if res := r.Evaluate(m); len(res.Outputs) != 1 {
			b.Fatalf("got %+v", res)
		}
	}
}

// BenchmarkTypicalRuleNoMatch: the common case at the edge, WHERE false.
func BenchmarkTypicalRuleNoMatch(b *testing.B) {
	r := benchRule(b, typicalSQL)
	m := &Message{Topic: "building/b7/temp", Payload: []byte(`{"temp":21.5,"humidity":40,"battery":3.1,"fw":"1.4.2","seq":10442}`)}
	b.ReportAllocs()
	for b.Loop() {
		if res := r.Evaluate(m); res.Matched {
			b.Fatal("matched")
		}
	}
}

// BenchmarkSetProcess10: ten rules loaded, a message matching two of them.
func BenchmarkSetProcess10(b *testing.B) {
	var cfgs []Config
	for i, sql := range []string{
		typicalSQL,
		"SELECT * FROM 'building/#'",
		"SELECT humidity FROM 'building/+/hum' WHERE humidity > 80",
		"SELECT VALUE battery FROM 'building/+/battery' WHERE battery < 3.0",
		"SELECT upper(fw) AS fw FROM 'building/+/info'",
		"SELECT temp FROM 'garage/+/temp'",
		"SELECT * FROM 'door/+/open' WHERE open = true",
		"SELECT encode(*, 'base64') AS raw FROM 'camera/+'",
		"SELECT CASE state WHEN 1 THEN 'on' ELSE 'off' END AS s FROM 'plug/+'",
		"SELECT seq FROM 'building/+/seq' WHERE seq % 100 = 0",
	} {
		cfgs = append(cfgs, Config{Name: "r" + string(rune('a'+i)), SQL: sql, Actions: []ActionConfig{{Forward: &ForwardConfig{Route: "cloud"}}}})
	}
	set, err := Compile(cfgs)
	if err != nil {
		b.Fatal(err)
	}
	m := &Message{Topic: "building/b7/temp", Payload: typicalPayload, Timestamp: time.Unix(1, 0)}
	b.ReportAllocs()
	for b.Loop() {
		if res := set.Process(m); len(res) != 2 {
			b.Fatalf("got %d results", len(res))
		}
	}
}
