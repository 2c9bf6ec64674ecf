package jsonq

import (
	"bytes"
	"encoding/json"
	"testing"
)

// TestAppendQuoted: for valid UTF-8 the quoting is encoding/json's without
// its HTML escapes; invalid UTF-8 becomes \ufffd; it appends to b.
func TestAppendQuoted(t *testing.T) {
	for _, s := range []string{"", "plain", "quote \" back \\ slash", "tab\tnl\ncr\r\x01\x1f", "é😀", "a/b<&>"} {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		if got := AppendQuoted(nil, s); string(got) != string(bytes.TrimSuffix(want.Bytes(), []byte("\n"))) {
			t.Errorf("AppendQuoted(%q) = %s; want %s", s, got, want.Bytes())
		}
	}
	if q := AppendQuoted(nil, "a\xffb"); string(q) != `"a\ufffdb"` {
		t.Errorf("AppendQuoted of invalid UTF-8 = %s; want \"a\\ufffdb\"", q)
	}
	if q := AppendQuoted([]byte("x:"), "y"); string(q) != `x:"y"` {
		t.Errorf("AppendQuoted appended to x: = %s; want x:\"y\"", q)
	}
}
