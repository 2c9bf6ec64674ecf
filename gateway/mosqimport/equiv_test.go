package mosqimport_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/authz"
	"github.com/edgegw/edgegw/gateway/gatewaytest"
	"github.com/edgegw/edgegw/gateway/mosqimport"
)

// probeAdmin is appended to the broker's ACL (not to the imported one): it
// publishes the retained messages every receive probe looks for.
const probeAdmin = "probe-admin"

type equivCase struct {
	name   string
	acl    string   // the ACL under test
	users  []string // each probes as user name = client ID (edgegw pins the client ID to the thing name)
	topics []string // published retained by the admin, then probed
	// reported are the ACL lines the importer must report as not exact or
	// not carried over; only there may edgegw refuse what Mosquitto allows.
	reported []int
	// mtls runs the broker with client certificates and
	// use_identity_as_username (the user name is the certificate's CN, as
	// edgegw's thing name is); otherwise plaintext with user names.
	mtls bool
}

// TestEquivalenceWithMosquitto runs Debian's mosquitto with each ACL and asks
// it, with mosquitto_pub and mosquitto_sub, which (user, topic) pairs may
// publish and receive; edgegw's policy engine must answer the same for the
// imported policies, or refuse where the importer reported the line. It never
// may grant what Mosquitto refuses.
func TestEquivalenceWithMosquitto(t *testing.T) {
	gatewaytest.Need(t, "mosquitto", "mosquitto")
	pub := gatewaytest.Need(t, "mosquitto_pub", "mosquitto-clients")
	sub := gatewaytest.Need(t, "mosquitto_sub", "mosquitto-clients")
	debianACL, err := os.ReadFile("/usr/share/doc/mosquitto/examples/aclfile.example")
	if err != nil {
		t.Fatalf("reading Debian's example ACL: %v: run `make deps` (apt-get install mosquitto)", err)
	}
	cases := []equivCase{
		{name: "read with trailing hash", acl: "user alice\ntopic read sensors/#\n",
			users: []string{"alice", "bob"}, topics: []string{"sensors", "sensors/a", "sensors/a/b", "other/x", "sensorsx"}},
		{name: "write with plus in the middle", acl: "user alice\ntopic write sensors/alice/+/temp\n",
			users: []string{"alice"}, topics: []string{"sensors/alice/r1/temp", "sensors/alice/r1/r2/temp", "sensors/alice//temp", "sensors/bob/r1/temp"}},
		{name: "readwrite with plus last", acl: "user alice\ntopic readwrite a/+\n",
			users: []string{"alice"}, topics: []string{"a/x", "a/x/y", "a", "a/"}},
		{name: "deny before a readwrite hash", acl: "user alice\ntopic readwrite #\ntopic deny secret/#\n",
			users: []string{"alice", "bob"}, topics: []string{"secret", "secret/x", "public/x", "$test/x"}},
		{name: "pattern with the user name", acl: "pattern readwrite devices/%u/#\n",
			users: []string{"alice", "bob"}, topics: []string{"devices/alice/t", "devices/bob/t", "devices/alice", "devices"}},
		{name: "pattern with the client ID and plus", acl: "pattern write clients/%c/+/status\n",
			users: []string{"alice", "bob"}, topics: []string{"clients/alice/x/status", "clients/alice/x/y/status", "clients/bob/x/status"}},
		{name: "leading plus against a dollar grant", acl: "user alice\ntopic read +/status\ntopic read $test/#\n",
			users: []string{"alice"}, topics: []string{"x/status", "$test/status", "$test/y", "x/y/status"}, reported: []int{2}},
		{name: "plus then hash", acl: "user alice\ntopic read a/+/#\n",
			users: []string{"alice"}, topics: []string{"a", "a/x", "a/x/y", "a/"}},
		{name: "plus before a literal and hash has no exact form", acl: "user alice\ntopic read +/x/#\n",
			users: []string{"alice"}, topics: []string{"y/x", "y/x/z", "x"}, reported: []int{2}},
		{name: "deny with plus", acl: "user alice\ntopic read a/#\ntopic deny a/+/b\n",
			users: []string{"alice"}, topics: []string{"a/x/b", "a/x/y/b", "a/b", "a/x"}, reported: []int{3}},
		{name: "pattern deny against a user grant", acl: "pattern deny a/%u/private\nuser alice\ntopic read a/#\n",
			users: []string{"alice", "bob"}, topics: []string{"a/alice/private", "a/bob/private", "a/x"}, reported: []int{1}},
		{name: "literal IAM characters and no access word", acl: "user alice\ntopic readwrite star/*/x?\ntopic a/b\n",
			users: []string{"alice"}, topics: []string{"star/*/x?", "star/y/x?", "star/*/xy", "a/b", "a/c"}},
		{name: "plus confinement against a deeper grant", acl: "user alice\ntopic write a/+\ntopic write a/b/c\n",
			users: []string{"alice"}, topics: []string{"a/x", "a/b/c", "a/b"}, reported: []int{2}},
		{name: "deny hash against a dollar grant", acl: "user alice\ntopic deny #\ntopic read $test/#\n",
			users: []string{"alice"}, topics: []string{"$test/x", "x"}, reported: []int{2}},
		{name: "anonymous lines", acl: "topic read #\nuser alice\ntopic read a\n",
			users: []string{"alice"}, topics: []string{"a", "b"}, reported: []int{1}},
		{name: "pattern with the user name over mTLS", acl: "pattern readwrite devices/%u/#\nuser alice\ntopic read devices/+/status\n",
			users: []string{"alice", "bob"}, topics: []string{"devices/alice/t", "devices/bob/t", "devices/bob/status", "devices/bob/x/status", "devices/alice/x/status"},
			reported: []int{3}, mtls: true},
		{name: "Debian aclfile.example over mTLS", acl: string(debianACL), mtls: true,
			users: []string{"roger", "alice"}, topics: []string{"foo/bar", "foo/baz", "$test/x"},
			reported: linesWith(string(debianACL), "topic read $SYS/#", "pattern write $SYS")},
		{name: "Debian aclfile.example", acl: string(debianACL),
			users: []string{"roger", "alice"}, topics: []string{"foo/bar", "foo/baz", "$test/x"},
			reported: linesWith(string(debianACL), "topic read $SYS/#", "pattern write $SYS")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			runEquivCase(t, tc, pub, sub)
		})
	}
}

func linesWith(text string, subs ...string) []int {
	var out []int
	for i, l := range strings.Split(text, "\n") {
		for _, s := range subs {
			if strings.Contains(l, s) {
				out = append(out, i+1)
			}
		}
	}
	return out
}

func runEquivCase(t *testing.T, tc equivCase, pub, sub string) {
	dir := t.TempDir()
	aclImport := filepath.Join(dir, "acl")
	aclBroker := filepath.Join(dir, "acl-broker")
	gatewaytest.WriteFile(t, aclImport, []byte(tc.acl), 0o644)
	gatewaytest.WriteFile(t, aclBroker, []byte(tc.acl+"\nuser "+probeAdmin+"\ntopic readwrite #\ntopic readwrite $test/#\n"), 0o644)

	// The import, and edgegw's answers.
	conf := filepath.Join(dir, "mosquitto.conf")
	var pki *gatewaytest.PKI
	if tc.mtls {
		pki = gatewaytest.NewPKI(t, "mosquitto")
		gatewaytest.WriteFile(t, conf, []byte("listener 8883 127.0.0.1\ncafile "+pki.CAFile+"\ncertfile "+pki.ServerCert+"\nkeyfile "+pki.ServerKey+
			"\nrequire_certificate true\nuse_identity_as_username true\nacl_file "+aclImport+"\n"), 0o644)
	} else {
		gatewaytest.WriteFile(t, conf, []byte("listener 1883 127.0.0.1\nallow_anonymous true\nacl_file "+aclImport+"\n"), 0o644)
	}
	res, err := mosqimport.Import(conf, mosqimport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := res.Validate()
	if err != nil {
		t.Fatalf("imported policies do not load: %v", err)
	}
	var reported []int
	for _, f := range res.Findings {
		if f.File == aclImport && (f.Kind == mosqimport.Inexact || f.Kind == mosqimport.NotCarried || f.Kind == mosqimport.Invalid) {
			if !slices.Contains(reported, f.Line) {
				reported = append(reported, f.Line)
			}
			t.Logf("report: %s", f)
		}
	}
	slices.Sort(reported)
	if !slices.Equal(reported, tc.reported) {
		t.Errorf("reported ACL lines: got %v; want %v", reported, tc.reported)
	}

	// The broker's answers: the same ACL plus the probe admin, anonymous
	// clients allowed (the user name is the identity), and over mTLS the
	// certificate's CN as user name.
	bc := gatewaytest.MosquittoConfig{AllowAnonymous: true, ACLFile: aclBroker}
	if pki != nil {
		bc.PKI, bc.ClientCerts, bc.TLSVersion = pki, true, "tlsv1.2"
	}
	m := gatewaytest.StartMosquitto(t, bc)
	port := m.Addr[strings.LastIndexByte(m.Addr, ':')+1:]
	certs := map[string]*gatewaytest.Client{}
	if pki != nil {
		for _, u := range append([]string{probeAdmin}, tc.users...) {
			certs[u] = pki.Issue(t, u)
		}
	}
	conn := func(user string) []string {
		if pki != nil {
			return append(pki.MosqTLSArgs(m.Addr, certs[user]), "-V", "5", "-i", user)
		}
		return []string{"-h", "127.0.0.1", "-p", port, "-V", "5", "-u", user, "-i", user}
	}
	for _, tp := range tc.topics {
		out, err := gatewaytest.Run(t, 10*time.Second, pub, append(conn(probeAdmin), "-q", "1", "-r", "-t", tp, "-m", tp)...)
		if err != nil || strings.Contains(out, "failed") {
			t.Fatalf("admin publishing retained %q: %v: %s", tp, err, out)
		}
	}
	type answers struct {
		pub  map[string]bool
		recv map[string]bool
	}
	mosq := make(map[string]answers, len(tc.users))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, u := range tc.users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := answers{pub: map[string]bool{}, recv: map[string]bool{}}
			// Receive: every retained message the user gets on # and $test/#.
			out, _ := gatewaytest.Run(t, 15*time.Second, sub, append(conn(u), "-t", "#", "-t", "$test/#", "-F", "%t", "-W", "2")...)
			for _, l := range strings.Split(out, "\n") {
				if slices.Contains(tc.topics, l) {
					a.recv[l] = true
				}
			}
			// Publish: MQTT 5 QoS 1, the PUBACK says "Not authorized" when refused.
			for _, tp := range tc.topics {
				out, err := gatewaytest.Run(t, 10*time.Second, pub, append(conn(u), "-q", "1", "-t", tp, "-m", "probe")...)
				if err != nil {
					t.Errorf("mosquitto_pub as %s to %q: %v: %s", u, tp, err, out)
				}
				a.pub[tp] = !strings.Contains(out, "Not authorized")
			}
			mu.Lock()
			mosq[u] = a
			mu.Unlock()
		}()
	}
	wg.Wait()

	acl, _ := mosqimport.ParseACL(aclImport, []byte(tc.acl))
	for _, u := range tc.users {
		id := authz.Identity{ClientID: u, ThingName: u}
		if c := certs[u]; c != nil {
			id.Cert = c.Cert
		}
		sess, err := eng.Bind(id)
		if err != nil {
			t.Fatalf("binding %s: %v", u, err)
		}
		if !sess.Allowed(authz.Connect, u) {
			t.Errorf("%s may not connect with client ID %s; want allowed", u, u)
		}
		for _, tp := range tc.topics {
			filter := "#"
			if strings.HasPrefix(tp, "$") {
				filter = "$test/#"
			}
			edge := map[string]bool{
				"publish": sess.Allowed(authz.Publish, tp),
				"receive": sess.Allowed(authz.Subscribe, filter) && sess.Allowed(authz.Receive, tp),
			}
			ref := map[string]bool{"publish": mosq[u].pub[tp], "receive": mosq[u].recv[tp]}
			// The reference model the fuzz test uses must agree with the broker.
			model := map[string]bool{
				"publish": mosqAllowed(acl.Lines, u, tp, mosqimport.Write),
				"receive": mosqAllowed(acl.Lines, u, tp, mosqimport.Read),
			}
			if model["publish"] != ref["publish"] || model["receive"] != ref["receive"] {
				t.Errorf("%s %q: reference model says publish %v, receive %v; mosquitto says %v, %v", u, tp, model["publish"], model["receive"], ref["publish"], ref["receive"])
			}
			for _, act := range []string{"publish", "receive"} {
				switch {
				case edge[act] == ref[act]:
				case edge[act]:
					t.Errorf("%s %s %q: edgegw allows, Mosquitto refuses (edgegw must never grant more)", u, act, tp)
				case len(tc.reported) == 0:
					t.Errorf("%s %s %q: got refused by edgegw; want allowed as by Mosquitto (no line was reported)", u, act, tp)
				default:
					t.Logf("%s %s %q: Mosquitto allows, edgegw refuses (reported)", u, act, tp)
				}
			}
		}
	}
	if testing.Verbose() {
		t.Logf("mosquitto answers: %s", fmt.Sprint(mosq))
	}
}
