package authz

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// One bad policy file (and one missing policy) must not take the others down: the
// good policies work, and everything that attaches a broken one is denied with a
// typed reason naming the policy.
func TestLoadEachKeepsGoodPolicies(t *testing.T) {
	reg := Source{Name: "devices.yaml", Data: []byte(`version: 1
default: {policies: [good]}
things:
  - {name: ok-1, policies: [good]}
  - {name: bad-1, policies: [good, broken]}
  - {name: dup-1, policies: [twice]}
  - {name: gone-1, policies: [missing]}
  - {name: off-1, policies: [broken], disabled: true}
  - {name: grp-1, type: lamp, policies: [good]}
groups:
  - {name: lamps, match: {type: lamp}, policies: [broken]}
  - {name: auto, match: {name: "auto-*"}, policies: [broken]}
`)}
	good := `{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}`
	pols := []Source{
		{Name: "policies/good.json", Data: []byte(good)},
		{Name: "policies/broken.json", Data: []byte(`{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Publsh", "Resource": "*"}]}`)},
		{Name: "policies/twice.json", Data: []byte(good)},
		{Name: "policies/twice.yaml", Data: []byte("Version: '2012-10-17'\nStatement: {Effect: Allow, Action: '*', Resource: '*'}\n")},
	}
	e, broken, err := LoadEach(reg, pols)
	if err != nil {
		t.Fatalf("LoadEach: %v", err)
	}
	got := map[string]*FileError{}
	for _, fe := range broken {
		got[fe.Policy] = fe
	}
	wantBroken := map[string]struct {
		file, msg string
		denied    []string
	}{
		"broken":  {"policies/broken.json", `policies/broken.json:1: Statement[0]: unknown action "iot:Publsh"`, []string{"thing bad-1", "thing grp-1", "group auto"}},
		"twice":   {"policies/twice.yaml", `policies/twice.yaml: policy "twice" is also defined by policies/twice.json`, []string{"thing dup-1"}},
		"missing": {"devices.yaml", `devices.yaml:7: unknown policy "missing"`, []string{"thing gone-1"}},
	}
	if len(broken) != len(wantBroken) {
		t.Errorf("got %d broken policies; want %d: %v", len(broken), len(wantBroken), broken)
	}
	for name, w := range wantBroken {
		fe := got[name]
		if fe == nil {
			t.Errorf("policy %q not reported broken", name)
			continue
		}
		if fe.File != w.file || !strings.Contains(fe.Error(), w.msg) {
			t.Errorf("%s: got file %q, error %q; want file %q, error containing %q", name, fe.File, fe.Error(), w.file, w.msg)
		}
		if !slices.Equal(fe.Denied, w.denied) {
			t.Errorf("%s: Denied = %q; want %q", name, fe.Denied, w.denied)
		}
	}
	if len(e.Broken()) != 3 {
		t.Errorf("Engine.Broken() = %d entries; want 3", len(e.Broken()))
	}

	tests := []struct {
		name, thing string
		reason      error
		policy      string
	}{
		{"good thing works", "ok-1", nil, ""},
		{"unknown thing gets the good default", "stranger", nil, ""},
		{"thing with one broken policy", "bad-1", ErrPolicyBroken, "broken"},
		{"thing with a duplicated policy", "dup-1", ErrPolicyBroken, "twice"},
		{"thing with a missing policy", "gone-1", ErrPolicyBroken, "missing"},
		{"disabled stays disabled", "off-1", ErrThingDisabled, ""},
		{"group attaches a broken policy", "grp-1", ErrPolicyBroken, "broken"},
		{"name-only group attaches a broken policy", "auto-7", ErrPolicyBroken, "broken"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := e.Bind(Identity{ThingName: tt.thing, ClientID: tt.thing})
			if tt.reason == nil {
				if err != nil {
					t.Fatalf("Bind = %v; want a session", err)
				}
				if !s.Allowed(Publish, "any/topic") {
					t.Errorf("Allowed(Publish) = false; want true from the good policy")
				}
				return
			}
			var de *DenyError
			if !errors.As(err, &de) || !errors.Is(err, tt.reason) || de.Policy != tt.policy {
				t.Fatalf("Bind = %v; want a *DenyError for %v naming policy %q", err, tt.reason, tt.policy)
			}
			if tt.policy != "" && !strings.Contains(err.Error(), `policy "`+tt.policy+`"`) {
				t.Errorf("error %q does not name the policy", err)
			}
		})
	}

	// Load, the strict form, still refuses the set with every error at once.
	if _, err := Load(reg, pols); err == nil || strings.Count(err.Error(), "\n") != 2 {
		t.Errorf("Load = %v; want the three errors", err)
	}
	// A broken default policy denies unknown things.
	reg2 := Source{Name: "devices.yaml", Data: []byte("version: 1\ndefault: {policies: [broken]}\n")}
	e2, _, err := LoadEach(reg2, pols[:2])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e2.Bind(Identity{ThingName: "x", ClientID: "x"}); !errors.Is(err, ErrPolicyBroken) {
		t.Errorf("Bind(unknown) = %v; want ErrPolicyBroken", err)
	}
	// A broken registry gives no engine.
	if e3, _, err := LoadEach(Source{Name: "devices.yaml", Data: []byte("things: 3\n")}, pols); e3 != nil || err == nil {
		t.Errorf("LoadEach(bad registry) = %v, %v; want no engine and an error", e3, err)
	}
}

// IAM's set semantics with empty policy lists, and the keys AWS documents beyond
// the first wave. IAM: "ForAllValues ... also returns true if there are no context
// keys in the request"; ForAnyValue needs at least one request value to match; a
// negated operator holds for a value matching none of the policy values
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html,
// https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html).
func TestConditionSemanticsFromIAM(t *testing.T) {
	e := engineWith(t, `
		{"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/eq-empty", "Condition": {"StringEquals": {"iot:ClientId": []}}},
		{"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/ne-empty", "Condition": {"StringNotEquals": {"iot:ClientId": []}}},
		{"Effect": "Allow", "Action": "iot:Connect", "Resource": "client/any-empty", "Condition": {"ForAnyValue:StringEquals": {"iot:ConnectAttributes": []}}},
		{"Effect": "Allow", "Action": "iot:Connect", "Resource": "client/all-not-empty", "Condition": {"ForAllValues:StringNotEquals": {"iot:ConnectAttributes": []}}},
		{"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/floor-lt-5", "Condition": {"NumericLessThan": {"iot:Connection.Thing.Attributes[floor]": "5"}}},
		{"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/floor-ne-1", "Condition": {"NumericNotEquals": {"iot:Connection.Thing.Attributes[floor]": "1"}}},
		{"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/sni", "Condition": {"StringEquals": {"iot:DomainName": "gw.plant-7.example"}}},
		{"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/tls", "Condition": {"Bool": {"aws:SecureTransport": "true"}}},
		{"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/tag", "Condition": {"StringEqualsIfExists": {"aws:ResourceTag/env": "prod"}}},
		{"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/tag-strict", "Condition": {"StringEquals": {"aws:ResourceTag/env": "prod"}}},
		{"Effect": "Deny", "Action": "iot:Publish", "Resource": "topic/typo", "Condition": {"StringEquals": {"iot:ClientIdd": "dev-1"}}},
		{"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/typo"},
		{"Effect": "Allow", "Action": "iot:Connect", "Resource": "client/will-like", "Condition": {"StringLike": {"iot:LastWillTopic": "arn:aws:iot:*:*:topic/status/*"}}},
		{"Effect": "Allow", "Action": "iot:Connect", "Resource": "client/will-not", "Condition": {"ArnNotLike": {"iot:LastWillTopic": "arn:aws:iot:*:*:topic/status/*"}}},
		{"Effect": "Allow", "Action": "iot:Connect", "Resource": "client/will-s3", "Condition": {"ArnLike": {"iot:LastWillTopic": "arn:aws:s3:::topic/status/*"}}}`)
	base := Identity{ThingName: "dev-1", ClientID: "dev-1", CleanSession: true}
	with := func(f func(*Identity)) Identity { id := base; f(&id); return id }
	tests := []struct {
		name   string
		id     Identity
		checks []check
	}{
		{"plain client", base, []check{
			{Publish, "eq-empty", false}, // no policy value can equal the key
			{Publish, "ne-empty", true},  // nor can it be unequal to one: holds
			{Connect, "any-empty", false},
			{Connect, "all-not-empty", true},
			{Publish, "floor-lt-5", true}, // dev-1 has floor "01"
			{Publish, "floor-ne-1", false},
			{Publish, "sni", false},
			{Publish, "tls", false},
			{Publish, "tag", true},         // never present: IfExists holds
			{Publish, "tag-strict", false}, // never present: StringEquals does not
			{Publish, "typo", true},        // an unknown key is absent, as in AWS: the Deny does not apply
			{Connect, "will-like", false},  // no will: the key is absent
			{Connect, "will-not", true},    // a negated operator on an absent key holds
		}},
		{"persistent with a will on status/", with(func(id *Identity) {
			id.CleanSession, id.HasWill, id.WillTopic = false, true, "status/dev-1"
		}), []check{
			{Connect, "any-empty", false},
			{Connect, "all-not-empty", true},
			{Connect, "will-like", true},
			{Connect, "will-not", false},
			{Connect, "will-s3", false}, // another service's ARN never names an MQTT topic
		}},
		{"a will elsewhere", with(func(id *Identity) { id.HasWill, id.WillTopic = true, "other/dev-1" }), []check{
			{Connect, "will-like", false},
			{Connect, "will-not", true},
		}},
		{"TLS with SNI", with(func(id *Identity) {
			id.TLS, id.ServerName, id.SourceIP = true, "gw.plant-7.example", netip.MustParseAddr("10.0.0.9")
		}), []check{
			{Publish, "sni", true},
			{Publish, "tls", true},
		}},
		{"no thing attributes", Identity{ThingName: "dev-2", ClientID: "dev-2"}, []check{
			{Publish, "floor-lt-5", false},
			{Publish, "floor-ne-1", true}, // key absent: the negated operator holds
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runChecks(t, bindID(t, e, tt.id), tt.checks) })
	}
	// Explain shows the connect-only keys while iot:Connect is explained.
	s := bindID(t, e, Identity{ThingName: "dev-1", ClientID: "dev-1", HasWill: true, WillTopic: "status/dev-1"})
	var will *Variable
	for _, v := range s.Explain(Connect, "will-like").Variables {
		if v.Name == "iot:LastWillTopic" {
			will = &v
		}
	}
	if will == nil || will.Why != "" || len(will.Values) != 1 || will.Values[0] != "topic/status/dev-1" {
		t.Errorf("Explain(Connect) variable iot:LastWillTopic = %+v; want topic/status/dev-1", will)
	}
	// Unknown keys and variables load, loudly.
	notes := strings.Join(e.Notes(), "\n")
	for _, want := range []string{
		`condition key "aws:ResourceTag/env" is never present in an MQTT request`,
		`condition key "iot:ClientIdd" is not one edgegw knows; as in AWS, a key the request does not carry is absent (did you mean iot:ClientId?)`,
	} {
		if !strings.Contains(notes, want) {
			t.Errorf("Notes = %s\nwant one containing %q", notes, want)
		}
	}
}

// NewSession enforces policies that did not come from the registry (a custom
// authorizer's answer) with the same engine.
func TestNewSession(t *testing.T) {
	p, err := ParsePolicy(Source{Name: "authorizer.json", Data: []byte(`{"Version": "2012-10-17", "Statement": [
		{"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:*:*:client/${iot:ClientId}"},
		{"Effect": "Allow", "Action": "iot:Publish", "Resource": "arn:aws:iot:*:*:topic/sensors/${iot:ClientId}/*"},
		{"Effect": "Deny", "Action": "iot:Publish", "Resource": "arn:aws:iot:*:*:topic/sensors/*/secret"},
		{"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/${iot:Connection.Thing.ThingName}"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	s := NewSession(Identity{ClientID: "node-red", ThingName: "node-red"}, "custom authorizer", []*Policy{p})
	runChecks(t, s, []check{
		{Connect, "node-red", true},
		{Publish, "sensors/node-red/t", true},
		{Publish, "sensors/node-red/secret", false},
		{Publish, "sensors/other/t", false},
		{Publish, "node-red", false}, // no registry thing: thing variables do not resolve
	})
	if ex := s.Explain(Publish, "x"); ex.How != "custom authorizer" || s.Thing() != nil {
		t.Errorf("Explain.How = %q, Thing = %v; want the given how and no thing", ex.How, s.Thing())
	}
}
