package sql_test

import (
	"encoding/json"
	"testing"

	"github.com/edgegw/edgegw/gateway/rules/sql"
	"github.com/edgegw/edgegw/gateway/rules/sql/sqltest"
)

// FuzzCompile feeds arbitrary statements to the compiler: it must never panic,
// and a statement that compiles must evaluate on any payload without panicking.
func FuzzCompile(f *testing.F) {
	for _, tc := range sqltest.Corpus() {
		f.Add(tc.SQL, tc.Payload)
	}
	for _, s := range []string{
		"SELECT * FROM 'a' WHERE", "SELECT CASE WHEN a THEN b END AS c FROM 'x'", "SELECT {'a': [1, {'b': (SELECT * FROM c)}]} AS o FROM '#'",
		"SELECT a[0][1].b AS x FROM 'x'", "SELECT VALUE (SELECT VALUE (SELECT VALUE * FROM b) FROM a) FROM 'x'",
		"SELECT 'unclosed FROM 'x'", "SELECT -(-(-a)) AS x FROM 'x'", "SELECT cast(a AS Bool) AS b FROM 'x'",
	} {
		f.Add(s, `{"a":[{"b":[1,2]}],"c":[{"d":1}]}`)
	}
	f.Fuzz(func(t *testing.T, src, payload string) {
		st, err := sql.Compile(src)
		if err != nil {
			if _, ok := err.(*sql.SQLError); !ok {
				t.Fatalf("compile error %v is %T; want *SQLError", err, err)
			}
			return
		}
		for _, p := range []string{payload, `{"a":1,"b":"x","c":[1,{"d":null}],"e":{"f":true}}`, "", "\xff"} {
			c := sql.NewCtx(&sql.Message{Topic: "a/b", Payload: []byte(p)})
			out, matched, err := st.Run(c)
			if matched && err == nil && !sql.OutputMayBeRaw(st) && !json.Valid(out) {
				t.Errorf("SELECT output %q of %q is not JSON", out, src)
			}
			c.Release()
		}
	})
}
