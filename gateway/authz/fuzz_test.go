package authz

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParsePolicy: any bytes, as JSON or YAML, must give a policy or an error, never
// a panic; a policy that loads must also bind, decide and explain.
func FuzzParsePolicy(f *testing.F) {
	for _, src := range buildingPolicies() {
		f.Add(src.Data, strings.HasSuffix(src.Name, ".yaml"))
	}
	f.Add([]byte(`{"Version":"2012-10-17","Statement":{"Effect":"Deny","NotAction":"iot:R*","NotResource":"arn:aws:iot:*:*:topic/${iot:ClientId}/${*}",
"Condition":{"ForAllValues:StringLikeIfExists":{"iot:Certificate.Subject.Organization.List":["a*"]},"Null":{"aws:SourceIp":"false"}}}}`), false)
	f.Add([]byte("Version: '2012-10-17'\nStatement: &s\n  Effect: Allow\n  Action: *a\n"), true)
	f.Add([]byte(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*",
"Condition":{"ForAllValues:StringEquals":{"iot:ConnectAttributes":[]},"ArnEquals":{"iot:LastWillTopic":"arn:aws:iot:*:*:topic/w/${iot:ClientId}"},
"NumericLessThan":{"iot:Connection.Thing.Attributes[a]":"5"},"StringEqualsIfExists":{"aws:ResourceTag/x":"y","iot:DomainName":"d"}}},
{"Effect":"Deny","Action":"iot:Publish","Resource":"topic/${iot:Thing.ThingName}/${iot:CertificateId}"}]}`), false)
	reg := Source{Name: "devices.yaml", Data: []byte("version: 1\nthings: [{name: t, type: x, attributes: {a: b}, policies: [fuzz]}]\n")}
	f.Fuzz(func(t *testing.T, data []byte, isYAML bool) {
		if len(data) > 1<<16 { // policies are small; keep executions fast
			return
		}
		name := "fuzz.json"
		if isYAML {
			name = "fuzz.yaml"
		}
		src := Source{Name: name, Data: data}
		p, err := ParsePolicy(src)
		if (p == nil) == (err == nil) {
			t.Fatalf("ParsePolicy = %v, %v", p, err)
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), name) {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		e, err := Load(reg, []Source{src})
		if err != nil {
			t.Fatalf("ParsePolicy accepted what Load refused: %v", err)
		}
		s, err := e.Bind(Identity{ThingName: "t", ClientID: "t", HasWill: true, WillTopic: "w/t", ServerName: "d", TLS: true})
		if err != nil {
			t.Fatal(err)
		}
		for a := Action(0); a < numActions; a++ {
			for _, r := range []string{"t", "a/b", "+/#", ""} {
				if got, ex := s.Allowed(a, r), s.Explain(a, r); got != ex.Allowed {
					t.Fatalf("Allowed(%s, %q) = %v but Explain says %v:\n%s", a, r, got, ex.Allowed, ex)
				}
			}
		}
	})
}

// FuzzParseRegistry: any bytes give a registry or an error, never a panic.
func FuzzParseRegistry(f *testing.F) {
	f.Add(buildingRegistry().Data[:2000])
	f.Add([]byte("version: 1\ndefault: {policies: [a]}\ngroups: [{name: g, match: {name: 'x*', attributes: {k: v}}, policies: [a]}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		r, err := ParseRegistry(Source{Name: "devices.yaml", Data: data})
		if (r == nil) == (err == nil) {
			t.Fatalf("ParseRegistry = %v, %v", r, err)
		}
	})
}

// FuzzMatch checks the resource matcher against a regular-expression reference:
// `*` any run of characters, `?` one character, everything else literal.
func FuzzMatch(f *testing.F) {
	for _, seed := range []struct {
		pattern, subject string
		prefix           uint8
	}{
		{"topic/building/*/cmd", "building/hq/floor/01/light/l1/cmd", 1},
		{"topicfilter/some/+/topic", "some/+/topic", 2},
		{"*", "", 0},
		{"t*c/?", "x/é", 3},
		{"client/a*b*c", "aXbYbc", 0},
		{"topic/**??*x", "xxxx", 4},
		{"?opic/*/*/", "a//", 1},
		{"*filter/#", "#", 2},
	} {
		f.Add(seed.pattern, seed.subject, seed.prefix)
	}
	prefixes := append(resourcePrefix[:], "")
	f.Fuzz(func(t *testing.T, pattern, subject string, sel uint8) {
		if len(pattern) > 64 || len(subject) > 256 || !utf8.ValidString(pattern) || !utf8.ValidString(subject) {
			return
		}
		p := prefixes[int(sel)%len(prefixes)]
		g := compileGlob(pattern)
		got := g.match(p, subject)
		var re strings.Builder
		re.WriteString(`^`)
		for _, r := range pattern {
			switch r {
			case '*':
				re.WriteString(`(?s:.*)`)
			case '?':
				re.WriteString(`(?s:.)`)
			default:
				re.WriteString(regexp.QuoteMeta(string(r)))
			}
		}
		re.WriteString(`$`)
		want := regexp.MustCompile(re.String()).MatchString(p + subject)
		if got != want {
			t.Fatalf("match(%q, %q+%q) = %v; want %v", pattern, p, subject, got, want)
		}
		if !strings.Contains(pattern, "**") && !strings.Contains(pattern, "${") && g.String() != pattern {
			t.Fatalf("String() = %q; want %q", g.String(), pattern)
		}
	})
}
