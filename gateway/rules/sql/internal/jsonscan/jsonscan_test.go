package jsonscan

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/gateway/internal/jsonq"
)

// TestValid: the same verdict as encoding/json on valid UTF-8, and nesting
// deeper than maxDepth is not JSON.
func TestValid(t *testing.T) {
	for _, doc := range []string{`{"a":1}`, ` [1, 2.5e-3, "x\u00e9", true, null] `, `"\ud83d\ude00"`, `-0`,
		`{"a":1,}`, `[01]`, `{"a" tru}`, `"\x"`, "\"a\x01\"", `1 2`, `{"a":{"b":[{}]}}`, ``} {
		if got, want := Valid([]byte(doc)), json.Valid([]byte(doc)); got != want {
			t.Errorf("Valid(%q) = %v; encoding/json says %v", doc, got, want)
		}
	}
	deep := strings.Repeat("[", maxDepth+2) + strings.Repeat("]", maxDepth+2)
	if Valid([]byte(deep)) {
		t.Errorf("Valid of %d nested arrays = true; want false (over maxDepth %d)", maxDepth+2, maxDepth)
	}
}

// TestStrAndAppendQuoted: a string read back from jsonq.AppendQuoted is
// the original, and KeyEquals agrees with Str.
func TestStrAndAppendQuoted(t *testing.T) {
	for _, s := range []string{"", "plain", "quote \" back \\ slash", "tab\tnl\ncr\r\x01", "é😀", "a/b"} {
		q := jsonq.AppendQuoted(nil, s)
		if !json.Valid(q) {
			t.Fatalf("AppendQuoted(%q) = %s; not JSON", s, q)
		}
		r := Reader{B: q}
		if got, ok := r.Str(); !ok || got != s || r.Pos != len(q) {
			t.Errorf("Str(%s) = %q, %v at %d; want %q at %d", q, got, ok, r.Pos, s, len(q))
		}
		k := Reader{B: q}
		if !k.KeyEquals(s) || k.Pos != len(q) {
			t.Errorf("KeyEquals(%s, %q) false or not past it (at %d)", q, s, k.Pos)
		}
	}
}
