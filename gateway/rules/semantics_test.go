package rules

import (
	"regexp"
	"testing"
)

// Edge semantics that follow from the reference's tables but are not examples
// on its pages; each case says which rule it checks.
func TestEdgeSemantics(t *testing.T) {
	cases := []struct {
		name, expr, payload, want string
	}{
		{"int overflow becomes decimal", "9223372036854775807 + 1", `{}`, `{"v":9223372036854775808}`},
		{"int division by zero is undefined", "1 / 0", `{}`, `{}`},
		{"decimal modulo by zero is undefined", "1.5 % 0", `{}`, `{}`},
		{"java remainder keeps the dividend's sign", "-7 % 3", `{}`, `{"v":-1}`},
		{"integer division truncates toward zero", "-7 / 2", `{}`, `{"v":-3}`},
		{"string concat of object", "'o=' + o", `{"o":{"a":[1,"x"]}}`, `{"v":"o={\"a\":[1,\"x\"]}"}`},
		{"null does not convert to string", "'a' + n", `{"n":null}`, `{}`},
		{"escapes survive", "s", `{"s":"line\nquote\"tab\t\u00e9"}`, `{"v":"line\nquote\"tab\té"}`},
		{"repeated key: last wins", "k", `{"k":1,"k":2}`, `{"v":2}`},
		{"index into array", "a[1]", `{"a":[10,20,30]}`, `{"v":20}`},
		{"index into nested", "a[0].b[1]", `{"a":[{"b":[1,2]}]}`, `{"v":2}`},
		{"index out of range", "a[5]", `{"a":[10]}`, `{}`},
		{"member of non-object", "a.b", `{"a":5}`, `{}`},
		{"decimal overflow is undefined, not infinity", "x * x", `{"x":1e300}`, `{}`},
		{"a number beyond a double is undefined", "x", `{"x":1e400}`, `{}`},
		{"big decimal uses exponent", "x * 10", `{"x":1.5e300}`, `{"v":1.5E301}`},
		{"searched case", "CASE WHEN t > 30 THEN 'hot' WHEN t > 20 THEN 'warm' ELSE 'cold' END", `{"t":25}`, `{"v":"warm"}`},
		{"regexp replacement literal dollar", `regexp_replace("a1", "(\\d)", "\\$$1")`, `{}`, `{"v":"a$1"}`},
		{"regexp replacement group then letter", `regexp_replace("ab", "(a)", "$1x")`, `{}`, `{"v":"axb"}`},
		{"regexp invalid at runtime is undefined", `regexp_matches("a", p)`, `{"p":"("}`, `{}`},
		{"parse_time letters", `parse_time("EEE, d MMM yy hh:mm:ss.SSS a Z", 1481825251155)`, `{}`, `{"v":"Thu, 15 Dec 16 06:07:31.155 PM +0000"}`},
		{"parse_time zone id and offset", `parse_time("ZZZ ZZ", 0, 'Europe/Paris')`, `{}`, `{"v":"Europe/Paris +01:00"}`},
		{"time_to_epoch 12-hour clock", `time_to_epoch("03/12/2021 01:30 PM", "MM/dd/yyyy hh:mm a")`, `{}`, `{"v":1615555800000}`},
		{"time_to_epoch rejects 31 April", `time_to_epoch("2021-04-31", "yyyy-MM-dd")`, `{}`, `{}`},
		{"time_to_epoch rejects trailing text", `time_to_epoch("2021-04-01x", "yyyy-MM-dd")`, `{}`, `{}`},
		{"decode not json is string", `decode("aGVsbG8=", 'base64')`, `{}`, `{"v":"hello"}`},
		{"encode an object expression", `encode({'a': 1}, 'base64')`, `{}`, `{"v":"eyJhIjoxfQ=="}`},
		{"chr beyond ascii", "chr(200)", `{}`, `{}`},
		{"length counts characters", `length("héllo")`, `{}`, `{"v":5}`},
		{"substring counts characters", `substring("héllo", 1, 3)`, `{}`, `{"v":"él"}`},
		{"get index: a Decimal rounds to the nearest Int", "get(a, 1.6)", `{"a":[10,20,30]}`, `{"v":30}`},
		{"get index: a String is truncated", "get(a, '1.6')", `{"a":[10,20,30]}`, `{"v":20}`},
		{"get object key needs a string", "get(o, 1)", `{"o":{"1":"x"}}`, `{}`},
		{"trim removes tabs and newlines", "trim(s)", `{"s":"\t x \n"}`, `{"v":"x"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := TrySQL("SELECT "+tc.expr+" AS v FROM '#'", &Message{Topic: "a", Payload: []byte(tc.payload)})
			if err != nil {
				t.Fatalf("TrySQL: %v", err)
			}
			if !jsonEqual(t, tr.Payload, []byte(tc.want)) {
				t.Errorf("%s: got %s; want %s", tc.expr, tr.Payload, tc.want)
			}
		})
	}
}

// newuuid and rand are not deterministic; check their shape.
func TestRandomFunctions(t *testing.T) {
	uuid := regexp.MustCompile(`^"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"$`)
	seen := map[string]bool{}
	for range 20 {
		tr, err := TrySQL("SELECT VALUE newuuid() FROM '#'", &Message{Topic: "a"})
		if err != nil || !uuid.Match(tr.Payload) || seen[string(tr.Payload)] {
			t.Fatalf("newuuid() = %s, %v; want a fresh version 4 UUID", tr.Payload, err)
		}
		seen[string(tr.Payload)] = true
		tr, err = TrySQL("SELECT VALUE rand() >= 0 AND rand() < 1 FROM '#'", &Message{Topic: "a"})
		if err != nil || string(tr.Payload) != "true" {
			t.Fatalf("rand() in [0, 1) = %s, %v; want true", tr.Payload, err)
		}
	}
}
