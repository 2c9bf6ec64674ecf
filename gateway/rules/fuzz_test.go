package rules

import (
	"testing"

	"github.com/edgegw/edgegw/gateway/rules/sql"
)

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
		c := sql.NewCtx(&Message{Topic: "a/b", Payload: []byte(`{"k":"v"}`)})
		defer c.Release()
		_ = tpl.render(c)
	})
}
