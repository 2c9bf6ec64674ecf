package lex

import (
	"errors"
	"strings"
	"testing"
)

func TestAll(t *testing.T) {
	toks, err := All("SELECT a.b AS \"x\\u00e9\", @v, 1.5e3 FROM 'a/#'\nWHERE c <> 2 §")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tk := range toks {
		got = append(got, tk.Describe()+"@"+tk.Pos.String())
	}
	want := `"SELECT"@1:1 "a"@1:8 "."@1:9 "b"@1:10 "AS"@1:12 the string "xé"@1:15 ","@1:24 @v@1:26 ","@1:28 "1.5e3"@1:30 "FROM"@1:36 the string "a/#"@1:41 "WHERE"@2:1 "c"@2:7 "<>"@2:9 "2"@2:12 "§" (not part of AWS IoT SQL)@2:14 the end of the statement@2:15`
	if g := strings.Join(got, " "); g != want {
		t.Errorf("got  %s\nwant %s", g, want)
	}
	if !toks[0].Kw("select") || !toks[2].Is(".") || toks[7].Kind != Var || toks[16].Kind != Bad {
		t.Errorf("Kw/Is/Kind disagree with the tokens: %+v", toks)
	}
}

func TestAllRefuses(t *testing.T) {
	for src, want := range map[string]string{
		"SELECT a -- why":      "1:10: comments are not supported",
		"SELECT a != b":        "1:10: '!=' is not AWS IoT SQL",
		"SELECT a == b":        "1:10: '==' is not AWS IoT SQL",
		"SELECT `a`":           "1:8: backquoted names",
		"SELECT 'open":         "1:8: string starting here is not closed",
		"SELECT 2abc FROM 'x'": `1:8: "2a" is not a number or a name`,
		"SELECT @ FROM 'x'":    "1:8: a variable is @ followed by 1 to 64",
	} {
		_, err := All(src)
		var le *Error
		if !errors.As(err, &le) || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("All(%q) = %v; want a *Error starting %q", src, err, want)
		}
	}
}
