package authz

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// newCert makes a throwaway self-signed certificate (never written to disk).
func newCert(t testing.TB, subject pkix.Name, serial int64, dns ...string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: subject, DNSNames: dns,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// engineWith loads a registry where thing "dev-1" (type sensor, attribute floor=01)
// and thing "dev-2" have policy p, whose statements are given as JSON.
func engineWith(t *testing.T, statements string) *Engine {
	t.Helper()
	reg := Source{Name: "devices.yaml", Data: []byte(`version: 1
things:
  - name: dev-1
    type: sensor
    attributes: {floor: "01"}
    policies: [p]
  - name: dev-2
    policies: [p]
`)}
	pol := Source{Name: "p.json", Data: []byte(`{"Version": "2012-10-17", "Statement": [` + statements + `]}`)}
	e, err := Load(reg, []Source{pol})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return e
}

func bindID(t *testing.T, e *Engine, id Identity) *Session {
	t.Helper()
	s, err := e.Bind(id)
	if err != nil {
		t.Fatalf("Bind: %v", err)
	}
	return s
}

// AWS IoT Core checks Receive on every delivery: Allow topicfilter/a/* with Deny topicfilter/a/restricted/*
// still lets a client subscribe to a/#; only Receive keeps the restricted messages out.
func TestReceiveCutsSubscription(t *testing.T) {
	e := engineWith(t, `
		{"Effect": "Allow", "Action": ["iot:Subscribe"], "Resource": "topicfilter/a/*"},
		{"Effect": "Deny", "Action": ["iot:Subscribe"], "Resource": "topicfilter/a/restricted/*"},
		{"Effect": "Allow", "Action": ["iot:Receive"], "Resource": "topic/a/*"},
		{"Effect": "Deny", "Action": ["iot:Receive"], "Resource": "topic/a/restricted/*"}`)
	runChecks(t, bindID(t, e, Identity{ThingName: "dev-1", ClientID: "dev-1"}), []check{
		{Subscribe, "a/#", true},
		{Subscribe, "a/restricted/#", false},
		{Receive, "a/open", true},
		{Receive, "a/restricted/secret", false},
	})
}

// Point 5: `*` spans `/` and `:`, `?` is one character (also `/`), `+` and `#` are
// literal, matching is case-sensitive.
func TestPoint5Wildcards(t *testing.T) {
	e := engineWith(t, `
		{"Effect": "Allow", "Action": "iot:Publish", "Resource": ["topic/x/*/end", "topic/q?r", "topic/Case"]},
		{"Effect": "Allow", "Action": "iot:Subscribe", "Resource": ["topicfilter/some/+/topic", "topicfilter/all/#"]}`)
	runChecks(t, bindID(t, e, Identity{ThingName: "dev-1", ClientID: "dev-1"}), []check{
		{Publish, "x/a/end", true},
		{Publish, "x/a/b/c/end", true},
		{Publish, "x/a:b/end", true},
		{Publish, "x//end", true},
		{Publish, "x/end", false},
		{Publish, "qxr", true},
		{Publish, "q/r", true},
		{Publish, "qér", true},
		{Publish, "qr", false},
		{Publish, "qxxr", false},
		{Publish, "Case", true},
		{Publish, "case", false},
		{Subscribe, "some/+/topic", true},
		{Subscribe, "some/x/topic", false},
		{Subscribe, "all/#", true},
		{Subscribe, "all/x", false},
	})
}

// Point 6: a statement whose variable cannot be resolved does not apply — neither
// an Allow nor a Deny — in Resource and in Condition.
func TestPoint6UnresolvedVariable(t *testing.T) {
	e := engineWith(t, `
		{"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/t/${iot:Connection.Thing.Attributes[room]}"},
		{"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/f/${iot:Connection.Thing.Attributes[floor]}"},
		{"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "topicfilter/*"},
		{"Effect": "Deny", "Action": "iot:Subscribe", "Resource": "topicfilter/${iot:Connection.Thing.ThingTypeName}/*"},
		{"Effect": "Allow", "Action": "iot:Receive", "Resource": "topic/*",
		 "Condition": {"StringEquals": {"iot:ClientId": "${iot:Connection.Thing.Attributes[room]}"}}}`)
	s := bindID(t, e, Identity{ThingName: "dev-2", ClientID: "dev-2"}) // no attributes, no type
	runChecks(t, s, []check{
		{Publish, "t/", false},
		{Publish, "t/${iot:Connection.Thing.Attributes[room]}", false},
		{Publish, "f/01", false},
		{Subscribe, "sensor/x", true}, // the Deny with an unresolved type does not apply
		{Receive, "x", false},
	})
	ex := s.Explain(Publish, "t/")
	if len(ex.NotApplied) != 2 || !strings.Contains(ex.NotApplied[0].Reason, `thing "dev-2" has no attribute "room"`) {
		t.Errorf("NotApplied = %+v", ex.NotApplied)
	}
	s = bindID(t, e, Identity{ThingName: "dev-1", ClientID: "dev-1"})
	runChecks(t, s, []check{
		{Publish, "f/01", true},
		{Subscribe, "sensor/x", false},
		{Subscribe, "other/x", true},
	})
}

// Point 7: ${iot:ClientId} is substituted verbatim; client/${iot:ClientId} allows any
// client ID.
func TestPoint7ClientIDVerbatim(t *testing.T) {
	e := engineWith(t, `
		{"Effect": "Allow", "Action": "iot:Connect", "Resource": "client/${iot:ClientId}"},
		{"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "topicfilter/${iot:ClientId}/cmd"},
		{"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/c/${iot:ClientId}"}`)
	s := bindID(t, e, Identity{ThingName: "dev-1", ClientID: "+"})
	runChecks(t, s, []check{
		{Connect, "+", true},
		{Subscribe, "+/cmd", true}, // a real wildcard filter, as in AWS
		{Subscribe, "dev-1/cmd", false},
	})
	s = bindID(t, e, Identity{ThingName: "dev-1", ClientID: "anything-at-all"})
	runChecks(t, s, []check{{Connect, "anything-at-all", true}})
	// A `*` in a client ID is a literal character, never a wildcard.
	s = bindID(t, e, Identity{ThingName: "dev-1", ClientID: "*"})
	runChecks(t, s, []check{{Publish, "c/*", true}, {Publish, "c/other", false}})
}

// Point 8: thing variables resolve only when the client ID equals the thing name.
func TestPoint8ThingVariablesNeedClientIDEqualThingName(t *testing.T) {
	e := engineWith(t, `
		{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": "client/${iot:Connection.Thing.ThingName}"},
		{"Effect": "Allow", "Action": ["iot:Publish"], "Resource": "topic/${iot:Connection.Thing.ThingName}/${iot:Connection.Thing.ThingTypeName}"},
		{"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "*",
		 "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}}`)
	s := bindID(t, e, Identity{ThingName: "dev-1", ClientID: "dev-1"})
	runChecks(t, s, []check{
		{Connect, "dev-1", true},
		{Publish, "dev-1/sensor", true},
		{Subscribe, "x", true},
	})
	s = bindID(t, e, Identity{ThingName: "dev-1", ClientID: "other"})
	runChecks(t, s, []check{
		{Connect, "other", false},
		{Connect, "dev-1", false},
		{Publish, "dev-1/sensor", false},
		{Subscribe, "x", false},
	})
	ex := s.Explain(Connect, "other")
	if len(ex.Variables) == 0 || !strings.Contains(ex.Variables[0].Why, `client ID "other" is not the thing name "dev-1"`) {
		t.Errorf("Variables = %+v", ex.Variables)
	}
}

// Point 9: certificate variables: first value, .N, .List; values with * $ + ? # or
// longer than 1024 characters are not substituted.
func TestPoint9CertificateVariables(t *testing.T) {
	pub := func(res ...string) string {
		return `{"Effect": "Allow", "Action": "iot:Publish", "Resource": ["` + strings.Join(res, `", "`) + `"]},`
	}
	e := engineWith(t, pub("topic/cn/${iot:Certificate.Subject.CommonName}")+
		pub("topic/o/${iot:Certificate.Subject.Organization}")+
		pub("topic/o1/${iot:Certificate.Subject.Organization.1}")+
		pub("topic/o5/${iot:Certificate.Subject.Organization.5}")+
		pub("topic/serial/${iot:Certificate.SerialNumber}")+
		pub("topic/dns/${iot:Certificate.SubjectAlternativeName.DNSName}")+
		pub("topic/both/${iot:Certificate.Subject.CommonName}", "topic/both-o/${iot:Certificate.Subject.Organization}")+`
		{"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "*",
		 "Condition": {"ForAnyValue:StringEquals": {"iot:Certificate.Subject.Organization.List": ["Beta"]}}},
		{"Effect": "Allow", "Action": "iot:Receive", "Resource": "topic/ou/${iot:Certificate.Subject.OrganizationalUnit}"}`)
	// Two O attributes in separate RDNs keep their order (values of one multi-valued
	// RDN are DER-sorted).
	oid := []int{2, 5, 4, 10}
	cert := newCert(t, pkix.Name{CommonName: "dev-1", OrganizationalUnit: []string{"a+b"},
		ExtraNames: []pkix.AttributeTypeAndValue{{Type: oid, Value: "Alpha"}, {Type: oid, Value: "Beta"}}}, 4242, "dev-1.local")
	s := bindID(t, e, Identity{ThingName: "dev-1", ClientID: "dev-1", Cert: cert})
	runChecks(t, s, []check{
		{Publish, "cn/dev-1", true},
		{Publish, "o/Alpha", true},
		{Publish, "o/Beta", false},
		{Publish, "o1/Beta", true},
		{Publish, "o1/Alpha", false},
		{Publish, "o5/Alpha", false},
		{Publish, "serial/4242", true},
		{Publish, "dns/dev-1.local", true},
		{Publish, "both-o/Alpha", true},
		{Subscribe, "anything", true},
		{Receive, "ou/a+b", false}, // "a+b" is not substituted: the statement does not apply
	})
	long := strings.Repeat("x", 1025)
	cert = newCert(t, pkix.Name{CommonName: long, Organization: []string{"Alpha"}}, 1)
	s = bindID(t, e, Identity{ThingName: "dev-1", ClientID: "dev-1", Cert: cert})
	runChecks(t, s, []check{
		{Publish, "cn/" + long, false},
		{Publish, "o/Alpha", true},
		{Publish, "both-o/Alpha", false}, // one unresolved variable: the whole statement does not apply
		{Subscribe, "anything", false},
	})
	cert = newCert(t, pkix.Name{CommonName: strings.Repeat("x", 1024)}, 1)
	s = bindID(t, e, Identity{ThingName: "dev-1", ClientID: "dev-1", Cert: cert})
	runChecks(t, s, []check{{Publish, "cn/" + strings.Repeat("x", 1024), true}})
}

// A document exactly as written for AWS IoT Core: full ARNs with region and account,
// thing-name variables, Receive on topic and Subscribe on topicfilter.
func TestAWSDocumentUnchanged(t *testing.T) {
	reg := Source{Name: "devices.yaml", Data: []byte("version: 1\nthings:\n  - {name: MyThing, policies: [aws]}\n")}
	pol := Source{Name: "aws.json", Data: []byte(`{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": ["iot:Connect"],
      "Resource": ["arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}"]
    },
    {
      "Effect": "Allow",
      "Action": ["iot:Publish", "iot:Receive"],
      "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/things/${iot:Connection.Thing.ThingName}/*"]
    },
    {
      "Effect": "Allow",
      "Action": ["iot:Subscribe"],
      "Resource": ["arn:aws:iot:us-east-1:123456789012:topicfilter/things/${iot:Connection.Thing.ThingName}/*"]
    },
    {
      "Effect": "Allow",
      "Action": ["iot:UpdateThingShadow", "iot:GetThingShadow", "greengrass:Discover"],
      "Resource": ["arn:aws:iot:us-east-1:123456789012:thing/${iot:Connection.Thing.ThingName}",
                   "arn:aws:greengrass:us-east-1:123456789012:/greengrass/v2/things/*"]
    }
  ]
}`)}
	e, err := Load(reg, []Source{pol})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if n := e.Notes(); len(n) != 1 {
		t.Errorf("Notes = %q; want one, for the ignored greengrass action", n)
	}
	runChecks(t, bindID(t, e, Identity{ThingName: "MyThing", ClientID: "MyThing"}), []check{
		{GetThingShadow, "MyThing", true},
		{UpdateThingShadow, "MyThing", true},
		{UpdateThingShadow, "MyThing/lights", false},
		{GetThingShadow, "OtherThing", false},
		{DeleteThingShadow, "MyThing", false},
		{Connect, "MyThing", true},
		{Connect, "OtherThing", false},
		{Publish, "things/MyThing/telemetry", true},
		{Publish, "things/OtherThing/telemetry", false},
		{Receive, "things/MyThing/cmd/reboot", true},
		{Subscribe, "things/MyThing/#", true},
		{Subscribe, "things/+/#", false},
	})
}

func TestDenyBeatsAllowAcrossPolicies(t *testing.T) {
	reg := Source{Name: "devices.yaml", Data: []byte("version: 1\nthings:\n  - {name: d, policies: [allow-all, deny-secret]}\n")}
	e, err := Load(reg, []Source{
		{Name: "allow-all.yaml", Data: []byte("Version: '2012-10-17'\nStatement: {Effect: Allow, Action: '*', Resource: '*'}\n")},
		{Name: "deny-secret.json", Data: []byte(`{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"iot:*","Resource":["topic/secret/*","topicfilter/secret/*"]}}`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	runChecks(t, bindID(t, e, Identity{ThingName: "d", ClientID: "d"}), []check{
		{Connect, "d", true},
		{Publish, "public/x", true},
		{Publish, "secret/x", false},
		{RetainPublish, "secret/x", false},
		{Subscribe, "secret/#", false},
		{Subscribe, "#", true}, // as in AWS: the filter "#" is not under topicfilter/secret/
		{Receive, "secret/x", false},
	})
}

func TestNotActionNotResourceAndActionGlobs(t *testing.T) {
	e := engineWith(t, `
		{"Effect": "Allow", "Action": "iot:*", "Resource": "*"},
		{"Effect": "Deny", "NotAction": ["iot:Connect", "iot:Receive"], "NotResource": ["topic/ok/*", "topicfilter/ok/*"]},
		{"Effect": "Deny", "Action": "iot:R*", "Resource": "topic/ok/noretain"}`)
	runChecks(t, bindID(t, e, Identity{ThingName: "dev-1", ClientID: "dev-1"}), []check{
		{Connect, "dev-1", true},
		{Publish, "ok/1", true},
		{Publish, "bad/1", false},
		{Subscribe, "ok/#", true},
		{Subscribe, "bad/#", false},
		{Receive, "bad/1", true},
		{Receive, "ok/noretain", false},
		{RetainPublish, "ok/noretain", false},
		{Publish, "ok/noretain", true},
	})
}

func TestConditions(t *testing.T) {
	e := engineWith(t, `
		{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*",
		 "Condition": {"ForAllValues:StringEquals": {"iot:ConnectAttributes": ["PersistentConnect"]},
		               "IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.168.1.7"]}}},
		{"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/like",
		 "Condition": {"StringLike": {"iot:ClientId": "dev-*"}}},
		{"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/notequals",
		 "Condition": {"StringNotEquals": {"iot:Connection.Thing.Attributes[floor]": "13"}}},
		{"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/ifexists",
		 "Condition": {"StringEqualsIfExists": {"iot:Connection.Thing.ThingTypeName": "sensor"}}},
		{"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/ignorecase",
		 "Condition": {"StringEqualsIgnoreCase": {"iot:ClientId": "DEV-1"}}},
		{"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/null",
		 "Condition": {"Null": {"iot:Connection.Thing.ThingTypeName": "true"}}},
		{"Effect": "Deny", "Action": "iot:Publish", "Resource": "*",
		 "Condition": {"NotIpAddress": {"aws:SourceIp": "0.0.0.0/0"}}},
		{"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "topicfilter/lw",
		 "Condition": {"ForAnyValue:StringEquals": {"iot:ConnectAttributes": "LastWill"}}}`)
	tests := []struct {
		name   string
		id     Identity
		checks []check
	}{
		{"persistent from 10/8", Identity{ThingName: "dev-1", ClientID: "dev-1", SourceIP: netip.MustParseAddr("10.1.2.3")}, []check{
			{Connect, "dev-1", true},
			{Publish, "like", true},
			{Publish, "notequals", true},
			{Publish, "ifexists", true},
			{Publish, "ignorecase", true},
			{Publish, "null", false},
			{Subscribe, "lw", false}, // ConnectAttributes exists only on CONNECT
		}},
		{"clean session with will", Identity{ThingName: "dev-1", ClientID: "dev-1", CleanSession: true, HasWill: true, SourceIP: netip.MustParseAddr("10.1.2.3")}, []check{
			{Connect, "dev-1", false}, // LastWill is not in [PersistentConnect]
		}},
		{"clean session without will", Identity{ThingName: "dev-1", ClientID: "dev-1", CleanSession: true, SourceIP: netip.MustParseAddr("::ffff:192.168.1.7")}, []check{
			{Connect, "dev-1", true}, // the empty set: ForAllValues holds
		}},
		{"wrong network", Identity{ThingName: "dev-1", ClientID: "dev-1", SourceIP: netip.MustParseAddr("192.168.1.8")}, []check{
			{Connect, "dev-1", false},
		}},
		{"IPv6 source", Identity{ThingName: "dev-1", ClientID: "dev-1", SourceIP: netip.MustParseAddr("fd00::1")}, []check{
			{Publish, "like", false}, // the NotIpAddress 0.0.0.0/0 Deny applies
		}},
		{"no source address", Identity{ThingName: "dev-1", ClientID: "dev-1"}, []check{
			{Publish, "like", false}, // key absent: the NotIpAddress Deny applies
		}},
		{"no type", Identity{ThingName: "dev-2", ClientID: "dev-2", SourceIP: netip.MustParseAddr("172.16.0.1")}, []check{
			{Connect, "dev-2", false},
			{Publish, "like", true},
			{Publish, "notequals", true}, // key absent: a negated operator holds
			{Publish, "ifexists", true},
			{Publish, "ignorecase", false},
			{Publish, "null", true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runChecks(t, bindID(t, e, tt.id), tt.checks) })
	}
}

func TestBindRegistry(t *testing.T) {
	reg := Source{Name: "devices.yaml", Data: []byte(`version: 1
things:
  - {name: off, policies: [p], disabled: true}
  - {name: on, type: t, policies: [p]}
groups:
  - name: by-name
    match: {name: "auto-??"}
    policies: [p]
  - name: by-type
    match: {name: "auto-*", type: t}
    policies: [q]
`)}
	pols := []Source{
		{Name: "p.json", Data: []byte(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/${iot:Connection.Thing.ThingName}"}]}`)},
		{Name: "q.json", Data: []byte(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/q"}]}`)},
	}
	e, err := Load(reg, pols)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"off", "missing", "auto-100", ""} {
		_, err := e.Bind(Identity{ThingName: name, ClientID: name})
		var de *DenyError
		want := ErrUnknownThing
		if name == "off" {
			want = ErrThingDisabled
		}
		if !errors.As(err, &de) || !errors.Is(err, want) {
			t.Errorf("Bind(%q) = %v; want a *DenyError for %v", name, err, want)
		}
	}
	// A thing that is not listed but matches a name-only group: known by name.
	s := bindID(t, e, Identity{ThingName: "auto-01", ClientID: "auto-01"})
	runChecks(t, s, []check{{Publish, "auto-01", true}, {Publish, "q", false}})
	if s.Thing() == nil || s.Thing().Listed || s.Thing().Groups[0] != "by-name" {
		t.Errorf("Thing = %+v", s.Thing())
	}
	th, ok := e.Thing("on")
	if !ok || th.Type != "t" || th.Line != 4 || len(th.AllPolicies) != 1 {
		t.Errorf("Thing(on) = %+v, %v", th, ok)
	}
	var names []string
	for th := range e.Things() {
		names = append(names, th.Name)
	}
	if strings.Join(names, ",") != "off,on" {
		t.Errorf("Things = %v", names)
	}
	// Default policies for unknown things; thing variables do not resolve for them.
	reg.Data = append(reg.Data, "default: {policies: [q, p]}\n"...)
	if e, err = Load(reg, pols); err != nil {
		t.Fatal(err)
	}
	s = bindID(t, e, Identity{ThingName: "stranger", ClientID: "stranger"})
	runChecks(t, s, []check{{Publish, "q", true}, {Publish, "stranger", false}})
}

func TestAllowedDoesNotAllocate(t *testing.T) {
	e := loadBuilding(t)
	s := bind(t, e, "lock-f03-100", "lock-f03-100")
	topic := "building/hq/floor/03/lock/lock-f03-100/audit"
	if n := testing.AllocsPerRun(100, func() {
		s.Allowed(Publish, topic)
		s.Allowed(Subscribe, "building/#")
		s.Allowed(Receive, "building/hq/floor/03/lock/lock-f03-100/cmd")
	}); n != 0 {
		t.Errorf("Allowed allocates %v times per run; want 0", n)
	}
}

func TestParseAction(t *testing.T) {
	for in, want := range map[string]Action{"connect": Connect, "publish": Publish, "subscribe": Subscribe,
		"receive": Receive, "retain-publish": RetainPublish, "iot:RetainPublish": RetainPublish} {
		if got, err := ParseAction(in); err != nil || got != want {
			t.Errorf("ParseAction(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseAction("delete"); err == nil {
		t.Error("ParseAction(delete) succeeded")
	}
}

// The Engine and its Sessions are immutable: many connections bind and decide at
// once (run under -race).
func TestConcurrentUse(t *testing.T) {
	e := loadBuilding(t)
	done := make(chan bool)
	for g := 0; g < 8; g++ {
		go func(g int) {
			ok := true
			for id := 1; id <= devicesOnFloor; id++ {
				name, _ := deviceName(g+1, id)
				s, err := e.Bind(Identity{ThingName: name, ClientID: name})
				ok = ok && err == nil && s.Allowed(Publish, ownTopic(g+1, id)) && !s.Allowed(Subscribe, "#")
				_ = s.Explain(Publish, "x")
				_, _ = e.Thing(name)
			}
			done <- ok
		}(g)
	}
	for g := 0; g < 8; g++ {
		if !<-done {
			t.Error("a concurrent Bind/Allowed gave a wrong answer")
		}
	}
}
