package sql

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/edgegw/edgegw/gateway/rules/sql/internal/jsonscan"
)

// FuzzJSON checks the payload reader against encoding/json: the same documents
// are valid, and reading a key without building the document gives what
// building it gives.
func FuzzJSON(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"a":{"b":[1,2,{"c":"\u00e9\ud83d\ude00"}]},"a":2}`, `[1,2]`, `"x"`, `1e400`, `-0.5e-3`,
		`{"a" : tru}`, `{"a":1,}`, "{\"a\":\"\xff\"}", `  null `, `{"k":"\"\\\/\b\f\n\r\t"}`, `0123`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ok := jsonscan.Valid(b)
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
