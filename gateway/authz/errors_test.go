package authz

import (
	"errors"
	"strings"
	"testing"
)

func TestPolicyErrors(t *testing.T) {
	const head = `{"Version": "2012-10-17", "Statement": [`
	stmt := func(s string) string { return head + "\n" + s + "\n]}" }
	tests := []struct {
		name, file, doc, want string
	}{
		{"bad JSON", "p.json", "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [\n}\n",
			`p.json:4: invalid JSON: invalid character '}' looking for beginning of value`},
		{"trailing comma", "p.json", "{\"Version\": \"2012-10-17\",\n\"Statement\": [],\n}",
			`p.json:3: invalid JSON: invalid character '}' looking for beginning of object key string`},
		{"truncated", "p.json", "{\"Version\": \"2012-10-17\",\n\"Statement\": [",
			`p.json:2: invalid JSON: unexpected end of input`},
		{"empty", "p.json", "  \n", `p.json:1: empty document`},
		{"bad YAML", "p.yaml", "Version: '2012-10-17'\nStatement:\n  - Effect: Allow\n   Action: x\n",
			`p.yaml:2: invalid YAML: did not find expected '-' indicator`},
		{"not an object", "p.json", `["x"]`,
			`p.json:1: a policy document must be an object with "Version" and "Statement", not a list`},
		{"unknown action", "p.json", stmt(`{"Effect": "Allow", "Action": ["iot:Connect", "iot:Publsh"], "Resource": "*"}`),
			`p.json:2: Statement[0]: unknown action "iot:Publsh" (did you mean iot:Publish?)`},
		{"action without service", "p.json", stmt(`{"Effect": "Allow", "Action": "Publish", "Resource": "*"}`),
			`p.json:2: Statement[0]: bad action "Publish": want SERVICE:ACTION, e.g. iot:Publish`},
		{"bad ARN", "p.json", stmt(`{"Effect": "Allow", "Action": "iot:Publish", "Resource": "arn:aws:iot:us-east-1:topic/x"}`),
			`p.json:2: Statement[0]: bad ARN "arn:aws:iot:us-east-1:topic/x": want arn:aws:iot:REGION:ACCOUNT:TYPE/NAME`},
		{"bad ARN type", "p.json", stmt(`{"Effect": "Allow", "Action": "iot:Publish", "Resource": "arn:aws:iot:*:*:topics/x"}`),
			`p.json:2: Statement[0]: bad ARN "arn:aws:iot:*:*:topics/x": unknown resource type "topics": want client, topic or topicfilter`},
		{"bad partition", "p.json", stmt(`{"Effect": "Allow", "Action": "iot:Publish", "Resource": "arn:awz:iot:*:*:topic/x"}`),
			`p.json:2: Statement[0]: bad ARN "arn:awz:iot:*:*:topic/x": unknown partition "awz"`},
		{"bad short resource", "p.json", stmt(`{"Effect": "Allow", "Action": "iot:Publish", "Resource": "topics/x"}`),
			`p.json:2: Statement[0]: bad resource "topics/x": want client/ID, topic/NAME, topicfilter/FILTER, thing/NAME, arn:aws:iot:REGION:ACCOUNT:client|topic|topicfilter|thing/..., or *`},
		{"condition key without prefix", "p.json", stmt(`{"Effect": "Allow", "Action": "iot:Publish", "Resource": "*",
"Condition": {"StringEquals": {"ClientId": "x"}}}`),
			`p.json:3: Statement[0]: bad condition key "ClientId": want PREFIX:NAME, e.g. iot:ClientId; supported keys are ` + supportedKeys},
		{"unknown condition operator", "p.json", stmt(`{"Effect": "Allow", "Action": "iot:Publish", "Resource": "*",
"Condition": {"StringEqual": {"iot:ClientId": "x"}}}`),
			`p.json:3: Statement[0]: unknown condition operator "StringEqual"`},
		{"unsupported operator", "p.json", stmt(`{"Effect": "Allow", "Action": "iot:Publish", "Resource": "*",
"Condition": {"DateLessThan": {"aws:CurrentTime": "2026-01-01T00:00:00Z"}}}`),
			`p.json:3: Statement[0]: condition operator "DateLessThan" is not supported by edgegw (no key it evaluates is a date or binary)`},
		{"not a number", "p.json", stmt(`{"Effect": "Allow", "Action": "iot:Publish", "Resource": "*",
"Condition": {"NumericLessThan": {"iot:Connection.Thing.Attributes[floor]": "ten"}}}`),
			`p.json:3: Statement[0]: condition "NumericLessThan" "iot:Connection.Thing.Attributes[floor]": "ten" is not a number`},
		{"will topic not an ARN", "p.json", stmt(`{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*",
"Condition": {"StringEquals": {"iot:LastWillTopic": "my/will"}}}`),
			`p.json:3: Statement[0]: condition "StringEquals" "iot:LastWillTopic": "my/will": iot:LastWillTopic is a topic ARN: want arn:aws:iot:REGION:ACCOUNT:topic/NAME (edgegw does not check region and account)`},
		{"Null with an empty list", "p.json", stmt(`{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*",
"Condition": {"Null": {"iot:ClientId": []}}}`),
			`p.json:3: Statement[0]: condition "Null" "iot:ClientId": want a string or a list of strings`},
		{"bad CIDR", "p.json", stmt(`{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*",
"Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/33"}}}`),
			`p.json:3: Statement[0]: condition "IpAddress" "aws:SourceIp": bad IP address or CIDR "10.0.0.0/33"`},
		{"unbalanced ${", "p.json", stmt(`{"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/${iot:ClientId"}`),
			`p.json:2: Statement[0]: unbalanced "${" in "topic/${iot:ClientId": missing "}"`},
		{"variable without prefix", "p.json", stmt(`{"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/${ThingName}"}`),
			`p.json:2: Statement[0]: unknown variable "${ThingName}" in "topic/${ThingName}"`},
		{"list variable in resource", "p.json", stmt(`{"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/${iot:Certificate.Subject.Organization.List}"}`),
			`p.json:2: Statement[0]: variable "${iot:Certificate.Subject.Organization.List}" has several values and can only be a condition key`},
		{"bad effect", "p.json", stmt(`{"Effect": "allow", "Action": "iot:Publish", "Resource": "*"}`),
			`p.json:2: Statement[0]: "Effect" must be "Allow" or "Deny", not "allow"`},
		{"missing resource", "p.json", stmt(`{"Effect": "Allow", "Action": "iot:Publish"}`),
			`p.json:2: Statement[0]: missing "Resource"`},
		{"both Action and NotAction", "p.json", stmt(`{"Effect": "Allow", "Action": "iot:Publish", "NotAction": "iot:Connect", "Resource": "*"}`),
			`p.json:2: Statement[0]: "Action" and "NotAction" cannot both be given`},
		{"both Resource and NotResource", "p.json", stmt(`{"Effect": "Allow", "Action": "iot:Publish", "Resource": "*", "NotResource": "topic/a"}`),
			`p.json:2: Statement[0]: "Resource" and "NotResource" cannot both be given`},
		{"missing action", "p.json", stmt(`{"Effect": "Allow", "Resource": "*"}`),
			`p.json:2: Statement[0]: missing "Action"`},
		{"empty NotAction", "p.json", stmt(`{"Effect": "Allow", "NotAction": [], "Resource": "*"}`),
			`p.json:2: Statement[0]: "NotAction" must be a string or a non-empty list of strings`},
		{"empty NotResource", "p.json", stmt(`{"Effect": "Allow", "Action": "iot:Publish", "NotResource": []}`),
			`p.json:2: Statement[0]: "NotResource" must be a string or a non-empty list of strings`},
		{"principal", "p.json", stmt(`{"Effect": "Allow", "Principal": "*", "Action": "iot:Publish", "Resource": "*"}`),
			`p.json:2: Statement[0]: "Principal" is not allowed in an AWS IoT policy (policies attach to things by devices.yaml)`},
		{"misspelled key", "p.json", `{"Version": "2012-10-17", "statement": []}`,
			"p.json:1: unknown key \"statement\" (did you mean \"Statement\"?): want Version, Id, Statement\np.json:1: missing \"Statement\""},
		{"duplicate key", "p.json", "{\"Version\": \"2012-10-17\",\n\"Version\": \"2012-10-17\", \"Statement\": []}",
			`p.json:2: duplicate key "Version" (first at line 1)`},
		{"bad version", "p.yaml", "Version: 2012-10-18\nStatement: {Effect: Allow, Action: iot:Connect, Resource: '*'}\n",
			`p.yaml:1: unsupported Version "2012-10-18": want "2012-10-17"`},
		{"unsupported extension", "p.txt", "{}", `p.txt: unsupported file type: want .json, .yaml or .yml`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePolicy(Source{Name: tt.file, Data: []byte(tt.doc)})
			if err == nil {
				t.Fatalf("ParsePolicy succeeded; want %q", tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error:\n got %s\nwant %s", got, tt.want)
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Errorf("error %T does not unwrap to *Error", err)
			}
		})
	}
}

func TestLoadErrorsAllAtOnce(t *testing.T) {
	reg := Source{Name: "devices.yaml", Data: []byte(`version: 1
default: {policies: [nope]}
things:
  - name: "bad name"
    policies: [p]
  - name: ok
    policies: [p, missing]
    colour: red
  - name: ok
groups:
  - name: g
    policies: [p]
`)}
	pols := []Source{
		{Name: "policies/p.json", Data: []byte(`{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "iot:Pub", "Resource": "*"}}`)},
		{Name: "policies/p.yaml", Data: []byte("Version: '2012-10-17'\nStatement: []\n")},
	}
	_, err := Load(reg, pols)
	want := strings.Join([]string{
		`devices.yaml:2: unknown policy "nope": no policy file nope.json, nope.yaml or nope.yml`,
		`devices.yaml:4: things[0].name: "bad name" is not a valid thing name: want 1-128 of [a-zA-Z0-9:_-]`,
		`devices.yaml:7: unknown policy "missing": no policy file missing.json, missing.yaml or missing.yml`,
		`devices.yaml:8: things[1]: unknown key "colour": want name, type, attributes, policies, disabled`,
		`devices.yaml:9: things[2]: thing "ok" is already defined at line 6`,
		`devices.yaml:11: groups[0]: group "g" needs a match with at least one of name, type, attributes`,
		`policies/p.json:1: Statement[0]: unknown action "iot:Pub"`,
		`policies/p.yaml: policy "p" is also defined by policies/p.json`,
		`policies/p.yaml:2: "Statement" is empty`,
	}, "\n")
	if err == nil || err.Error() != want {
		t.Fatalf("Load error:\n%v\nwant:\n%s", err, want)
	}
	var list ErrorList
	if !errors.As(err, &list) || len(list) != 9 {
		t.Errorf("want an ErrorList of 9, got %T", err)
	}
}

func TestRegistryErrors(t *testing.T) {
	tests := []struct{ name, doc, want string }{
		{"no version", "things: []\n", "devices.yaml:1: missing version: add \"version: 1\""},
		{"version 2", "version: 2\n", `devices.yaml:1: version: unsupported registry version "2": want 1`},
		{"disabled yes", "version: 1\nthings:\n  - {name: a, disabled: yes}\n", `devices.yaml:3: things[0].disabled: "yes" is not true or false`},
		{"attribute list", "version: 1\nthings:\n  - name: a\n    attributes: {floor: [1]}\n", `devices.yaml:4: things[0].attributes.floor: must be a single value, not a list`},
		{"unknown top key", "version: 1\ndevice: []\n", `devices.yaml:2: unknown key "device": want version, default, things, groups`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRegistry(Source{Name: "devices.yaml", Data: []byte(tt.doc)})
			if err == nil || err.Error() != tt.want {
				t.Errorf("error:\n got %v\nwant %s", err, tt.want)
			}
		})
	}
}

func TestNotesAndVersions(t *testing.T) {
	p, err := ParsePolicy(Source{Name: "old.json", Data: []byte(`{"Statement": [{"Effect": "Allow", "Action": ["iot:DescribeJobExecution", "greengrass:*", "iot:Publish"], "Resource": "topic/${iot:ClientId}"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`old.json:1: no Version: policy variables are not substituted (add "Version": "2012-10-17")`,
		`old.json:1: Statement[0]: action "iot:DescribeJobExecution" is not enforced by edgegw; it is ignored`,
		`old.json:1: Statement[0]: action "greengrass:*" is not an AWS IoT action; edgegw ignores it`,
	}
	if strings.Join(p.Notes, "\n") != strings.Join(want, "\n") {
		t.Errorf("Notes:\n%s\nwant:\n%s", strings.Join(p.Notes, "\n"), strings.Join(want, "\n"))
	}
	// Without Version 2012-10-17, "${iot:ClientId}" is literal text, as in IAM.
	reg := Source{Name: "devices.yaml", Data: []byte("version: 1\nthings: [{name: a, policies: [old]}]\n")}
	e, err := Load(reg, []Source{{Name: "old.json", Data: []byte(`{"Statement": [{"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/${iot:ClientId}"}]}`)}})
	if err != nil {
		t.Fatal(err)
	}
	s := bindID(t, e, Identity{ThingName: "a", ClientID: "a"})
	runChecks(t, s, []check{{Publish, "a", false}, {Publish, "${iot:ClientId}", true}})
}
