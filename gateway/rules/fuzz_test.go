package rules

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzCompile feeds arbitrary statements to the compiler: it must never panic,
// and a statement that compiles must evaluate on any payload without panicking.
func FuzzCompile(f *testing.F) {
	for _, tc := range corpus() {
		f.Add(tc.sql, tc.payload)
	}
	for _, s := range []string{
		"SELECT * FROM 'a' WHERE", "SELECT CASE WHEN a THEN b END AS c FROM 'x'", "SELECT {'a': [1, {'b': (SELECT * FROM c)}]} AS o FROM '#'",
		"SELECT a[0][1].b AS x FROM 'x'", "SELECT VALUE (SELECT VALUE (SELECT VALUE * FROM b) FROM a) FROM 'x'",
		"SELECT 'unclosed FROM 'x'", "SELECT -(-(-a)) AS x FROM 'x'", "SELECT cast(a AS Bool) AS b FROM 'x'",
	} {
		f.Add(s, `{"a":[{"b":[1,2]}],"c":[{"d":1}]}`)
	}
	f.Fuzz(func(t *testing.T, sql, payload string) {
		st, err := compileSQL(sql)
		if err != nil {
			if _, ok := err.(*SQLError); !ok {
				t.Fatalf("compile error %v is %T; want *SQLError", err, err)
			}
			return
		}
		for _, p := range []string{payload, `{"a":1,"b":"x","c":[1,{"d":null}],"e":{"f":true}}`, "", "\xff"} {
			c := newCtx(&Message{Topic: "a/b", Payload: []byte(p)})
			out, matched, err := st.run(c)
			if matched && err == nil && !st.value && !(st.hasStar && len(st.items) == 1) && !json.Valid(out) {
				t.Errorf("SELECT output %q of %q is not JSON", out, sql)
			}
			c.release()
		}
	})
}

// FuzzJSON checks the payload reader against encoding/json: the same documents
// are valid, and reading a key without building the document gives what
// building it gives.
func FuzzJSON(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"a":{"b":[1,2,{"c":"\u00e9\ud83d\ude00"}]},"a":2}`, `[1,2]`, `"x"`, `1e400`, `-0.5e-3`,
		`{"a" : tru}`, `{"a":1,}`, "{\"a\":\"\xff\"}", `  null `, `{"k":"\"\\\/\b\f\n\r\t"}`, `0123`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ok := validJSON(b)
		if utf8.Valid(b) && ok != json.Valid(b) {
			t.Fatalf("validJSON(%q) = %v; encoding/json says %v", b, ok, json.Valid(b))
		}
		if !ok {
			return
		}
		v := parseJSON(b)
		out := appendJSON(nil, v)
		if v.k != Undefined && !json.Valid(out) { // a lone number beyond a double is Undefined
			t.Fatalf("re-serialized %q as %q, which is not JSON", b, out)
		}
		if v.k != Object {
			return
		}
		for _, k := range v.c.keys {
			a, w := appendJSON(nil, lookupPath(b, []string{k})), appendJSON(nil, v.member(k))
			if string(a) != string(w) {
				t.Fatalf("lookupPath(%q, %q) = %s; parse gives %s", b, k, a, w)
			}
		}
	})
}

// FuzzTemplate: action templates come from the config file; compiling and
// rendering any of them must not panic.
func FuzzTemplate(f *testing.F) {
	for _, s := range []string{"${topic()}/republish", "$$aws/things/${topic(2)}/shadow/update", "a/${ {'k': '}'} }/b",
		"${replace(topic(), '/', '-') + '-' + timestamp()}", "${", "${}", "x/${'unclosed}", "${@v}", "$${x}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tpl, err := compileTemplate(s, nil, true)
		if err != nil {
			return
		}
		c := newCtx(&Message{Topic: "a/b", Payload: []byte(`{"k":"v"}`)})
		defer c.release()
		_ = tpl.render(c)
	})
}
