package mosqimport_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/gateway/authz"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/mosqimport"
)

// aclSeeds are ACL files for the fuzz corpora: the shapes the importer
// treats differently.
var aclSeeds = []string{
	"user alice\ntopic read sensors/#\ntopic write sensors/alice/+/temp\n",
	"topic read $SYS/#\n\nuser roger\ntopic foo/bar\n\npattern write $SYS/broker/connection/%c/state\n",
	"pattern readwrite devices/%u/#\npattern deny devices/%u/secret\nuser ops\ntopic readwrite devices/#\n",
	"user a\ntopic readwrite a/+\ntopic write a/b/c\ntopic deny a/+/b\ntopic read +/x/#\ntopic read $test/#\n",
	"user a\ntopic deny #\ntopic read a/+/#\npattern read x/%%c/%x\n",
	"user a b\ntopic bogus a\nfoo\n  # not a comment\ntopic read\n",
}

// FuzzParseACL checks, for any ACL file, that the import loads in edgegw's
// policy engine and never grants what Mosquitto refuses: for probe topics
// derived from the file, the engine's answer is compared with a model of
// Mosquitto 2.0.11's ACL check (the equivalence test holds the model to the
// real broker). Where Mosquitto allows and edgegw refuses, the importer must
// have reported a line of the file.
func FuzzParseACL(f *testing.F) {
	for _, s := range aclSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4096 {
			return // keep each run short; the parsers bound real files themselves
		}
		acl, _ := mosqimport.ParseACL("acl", data)
		c, _ := mosqimport.ParseConf("mosquitto.conf", []byte("listener 1883 127.0.0.1\nacl_file acl\n"))
		res := mosqimport.Translate("mosquitto.conf", c, func(string) (*mosqimport.ACL, []mosqimport.Finding, error) {
			a, fs := mosqimport.ParseACL("acl", data)
			return a, fs, nil
		}, mosqimport.Options{})
		eng, err := res.Validate()
		if err != nil {
			t.Fatalf("imported policies do not load: %v\nACL:\n%s", err, data)
		}
		reported := false
		for _, f := range res.Findings {
			if f.File == "acl" && (f.Kind == mosqimport.Inexact || f.Kind == mosqimport.NotCarried) {
				reported = true
			}
		}
		users := []string{"zz-other"}
		for _, l := range acl.Lines {
			if l.HasUser && !l.Pattern && validThing(l.User) && len(users) < 4 {
				users = append(users, l.User)
			}
		}
		topics := probeTopics(acl.Lines, users, 40)
		for _, u := range users {
			sess, err := eng.Bind(authz.Identity{ClientID: u, ThingName: u})
			if err != nil {
				t.Fatalf("binding %s: %v", u, err)
			}
			for _, tp := range topics {
				for _, p := range []struct {
					act    authz.Action
					access mosqimport.Access
				}{{authz.Publish, mosqimport.Write}, {authz.Receive, mosqimport.Read}} {
					if p.act == authz.Publish && strings.HasPrefix(strings.ToUpper(tp), "$SYS") {
						continue // edgegw's broker refuses every $SYS publish before any policy
					}
					edge := sess.Allowed(p.act, tp)
					mosq := mosqAllowed(acl.Lines, u, tp, p.access)
					switch {
					case edge && !mosq:
						t.Fatalf("%s %s %q: edgegw allows, Mosquitto refuses\nACL:\n%s\nreport:\n%s", u, p.act, tp, data, res.Report())
					case !edge && mosq && !reported:
						t.Fatalf("%s %s %q: edgegw refuses, Mosquitto allows, and nothing was reported\nACL:\n%s", u, p.act, tp, data)
					}
				}
			}
		}
	})
}

func validThing(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ':' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// FuzzParseConf checks that any mosquitto.conf imports into an edgegw.yaml
// that edgegw's own config parser accepts, and policies that load.
func FuzzParseConf(f *testing.F) {
	if d, err := os.ReadFile("/usr/share/doc/mosquitto/examples/mosquitto.conf"); err == nil {
		f.Add(d)
	}
	f.Add([]byte("per_listener_settings true\nlistener 8883\ncafile ca\ncertfile c\nkeyfile k\nacl_file a1\nlistener 8884\nacl_file a2\ncafile x\ncertfile y\nkeyfile z\nlistener 1883 example.com\n"))
	f.Add([]byte("port 1884\nbind_address 0.0.0.0\nprotocol websockets\nlistener 0 /run/m.sock\npsk_file p\n"))
	f.Add([]byte("connection c1\naddress h1:8883 [::1]:1883\nbridge_cafile ca\nbridge_certfile c\nbridge_keyfile k\ntopic a/# both 2 l/ r/\ntopic \"\" in 0 x y\n" +
		"connection c2\naddresses 127.0.0.1\ntopic b out\nremote_password pw\nkeepalive_interval 0\n"))
	f.Add([]byte("topic a\naddress x\nlistener 99999\ntls_version tlsv1.1\nrequire_certificate maybe\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 8192 {
			return
		}
		c, _ := mosqimport.ParseConf("mosquitto.conf", data)
		dir := t.TempDir()
		res := mosqimport.Translate(filepath.Join(dir, "mosquitto.conf"), c, func(string) (*mosqimport.ACL, []mosqimport.Finding, error) {
			a, fs := mosqimport.ParseACL("acl", []byte(aclSeeds[0]))
			return a, fs, nil
		}, mosqimport.Options{})
		if _, err := res.Validate(); err != nil {
			t.Fatalf("imported policies do not load: %v", err)
		}
		if _, err := config.Parse("edgegw.yaml", dir, res.YAML()); err != nil {
			t.Fatalf("edgegw.yaml does not parse: %v\n%s\nfrom:\n%s", err, res.YAML(), data)
		}
	})
}
