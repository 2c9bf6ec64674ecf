package evalcmd

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgegw/edgegw/cmd/edgegw/cli"
	"github.com/edgegw/edgegw/cmd/edgegw/cli/clitest"
	"github.com/edgegw/edgegw/cmd/edgegw/evalcmd/evaltest"
)

// testDefaultConfig is -c's default in these tests: absent, as on a machine without the package.
const testDefaultConfig = "/nonexistent/edgegw.yaml"

// run runs `edgegw policy ...` or `edgegw rule ...` through the test command line (clitest) and
// returns the exit status, stdout and stderr. The binary's own tests run the same commands
// through main's execute.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	newCmd := func(c cli.CLI) *cobra.Command { return NewPolicy(c, testDefaultConfig) }
	if len(args) > 0 && args[0] == "rule" {
		newCmd = NewRule
	}
	return clitest.Run(t, newCmd, args...)
}

func writeTestCert(t *testing.T, dir, cn string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "device.crt")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPolicyTest(t *testing.T) {
	dir, cfg := evaltest.PolicySite(t)
	cert := writeTestCert(t, dir, "temp-f01-001")
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string // substrings
		stderr string
	}{
		{"allow publish", []string{"--thing", "temp-f01-001", "--action", "publish", "--topic", "building/hq/floor/01/temp/temp-f01-001"}, 0, []string{
			"ALLOW iot:Publish topic/building/hq/floor/01/temp/temp-f01-001\n",
			"decided by: " + filepath.Join(dir, "policies/temperature.json") + " Statement[1] (line 5, Allow)",
			`${iot:Connection.Thing.ThingName} = "temp-f01-001"`,
			`${iot:Connection.Thing.Attributes[floor]} = "01"`,
			`${iot:Certificate.Subject.CommonName} = (unresolved: no client certificate)`,
			"not applied: " + filepath.Join(dir, "policies/temperature.json") + " Statement[2] (line 7, Allow): Resource topic/cn/${iot:Certificate.Subject.CommonName}: no client certificate",
		}, ""},
		{"deny neighbour", []string{"--thing", "temp-f01-001", "--action", "publish", "--topic", "building/hq/floor/01/temp/temp-f01-002"}, 1, []string{
			"DENY iot:Publish topic/building/hq/floor/01/temp/temp-f01-002\n",
			"decided by: no statement allowed it (default deny)",
		}, ""},
		{"explicit deny", []string{"--thing", "temp-f01-001", "--action", "publish", "--topic", "x/cmd", "--cert", cert}, 1, []string{
			"decided by: " + filepath.Join(dir, "policies/baseline.yaml") + " Statement[0] (line 3, Deny) (an explicit Deny wins)",
		}, ""},
		{"cert variable", []string{"--thing", "temp-f01-001", "--action", "publish", "--topic", "cn/temp-f01-001", "--cert", cert}, 0, []string{
			`${iot:Certificate.Subject.CommonName} = "temp-f01-001"`,
		}, ""},
		{"connect", []string{"--thing", "temp-f01-001", "--action", "connect"}, 0, []string{"ALLOW iot:Connect client/temp-f01-001"}, ""},
		{"connect other client ID", []string{"--thing", "temp-f01-001", "--action", "connect", "--client-id", "x"}, 1, []string{
			"DENY iot:Connect client/x",
			`(unresolved: client ID "x" is not the thing name "temp-f01-001"`,
		}, ""},
		{"subscribe", []string{"--thing", "temp-f01-001", "--action", "subscribe", "--topic", "#"}, 1, []string{"DENY iot:Subscribe topicfilter/#"}, ""},
		{"disabled", []string{"--thing", "off", "--action", "connect"}, 1, []string{"DENY iot:Connect client/off\n  refused at CONNECT: thing is disabled in the registry"}, ""},
		{"unknown thing", []string{"--thing", "ghost", "--action", "publish", "--topic", "a"}, 1, []string{"refused at CONNECT: thing is not in the registry"}, ""},
		{"bad action", []string{"--thing", "a", "--action", "delete", "--topic", "a"}, 2, nil, "--action: unknown action"},
		{"missing topic", []string{"--thing", "a", "--action", "publish"}, 2, nil, "--topic is required for publish"},
		{"missing thing", []string{"--action", "publish", "--topic", "a"}, 2, nil, "--thing is required"},
		{"bad cert", []string{"--thing", "a", "--action", "publish", "--topic", "a", "--cert", cfg}, 2, nil, "no CERTIFICATE PEM block"},
		{"bad flag", []string{"--thing", "a", "--bogus"}, 2, nil, "unknown flag: --bogus"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"policy", "test", "-c", cfg}, tt.args...)
			code, stdout, stderr := run(t, args...)
			if code != tt.code {
				t.Fatalf("exit %d; want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, stdout, stderr)
			}
			for _, want := range tt.stdout {
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout)
				}
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderr, stderr)
			}
		})
	}
}

func TestPolicyTestLoadErrors(t *testing.T) {
	dir, cfg := evaltest.PolicySite(t)
	if err := os.WriteFile(filepath.Join(dir, "policies/bad.json"), []byte(`{"Version": "2012-10-17", "Statement": [
  {"Effect": "Allow", "Action": "iot:Publsh", "Resource": "topic/${iot:ClientId"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := run(t, "policy", "test", "-c", cfg, "--thing", "temp-f01-001", "--action", "connect")
	bad := filepath.Join(dir, "policies/bad.json")
	for _, want := range []string{
		bad + `:2: Statement[0]: unknown action "iot:Publsh" (did you mean iot:Publish?)`,
		bad + `:2: Statement[0]: unbalanced "${" in "topic/${iot:ClientId": missing "}"`,
		"2 problem(s) in the registry or policies",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if code != 2 {
		t.Errorf("exit %d; want 2", code)
	}
	code, _, stderr = run(t, "policy", "test", "-c", filepath.Join(dir, "nope.yaml"), "--thing", "a", "--action", "connect")
	if code != 2 || !strings.Contains(stderr, "nope.yaml") {
		t.Errorf("missing config: exit %d, stderr %q; want 2 naming the file", code, stderr)
	}
}

// TestPolicyTestJSON: -o json says what the text form says, as one
// document, with the same exit status.
func TestPolicyTestJSON(t *testing.T) {
	dir, cfg := evaltest.PolicySite(t)
	temperature := filepath.Join(dir, "policies/temperature.json")
	type stmt struct {
		Policy, File, Sid, Effect, Reason string
		Index, Line                       int
	}
	type doc struct {
		Allowed          bool   `json:"allowed"`
		Decision         string `json:"decision"`
		Action           string `json:"action"`
		Resource         string `json:"resource"`
		Thing            string `json:"thing"`
		ClientID         string `json:"client_id"`
		RefusedAtConnect string `json:"refused_at_connect"`
		Decider          *stmt  `json:"decider"`
		Matched          []stmt `json:"matched"`
		NotApplied       []stmt `json:"not_applied"`
		Variables        []struct {
			Name       string   `json:"name"`
			Values     []string `json:"values"`
			Unresolved string   `json:"unresolved"`
		} `json:"variables"`
		Notes []string `json:"notes"`
	}
	tests := []struct {
		name  string
		args  []string
		code  int
		check func(t *testing.T, d doc)
	}{
		{"allow publish", []string{"--action", "publish", "--topic", "building/hq/floor/01/temp/temp-f01-001"}, 0, func(t *testing.T, d doc) {
			if !d.Allowed || d.Decision != "allow" || d.Action != "iot:Publish" || d.Resource != "topic/building/hq/floor/01/temp/temp-f01-001" || d.ClientID != "temp-f01-001" {
				t.Errorf("got %+v; want allow iot:Publish on the topic resource", d)
			}
			if d.Decider == nil || d.Decider.File != temperature || d.Decider.Index != 1 || d.Decider.Line != 5 || d.Decider.Effect != "Allow" {
				t.Errorf("decider: got %+v; want %s Statement[1] (line 5, Allow)", d.Decider, temperature)
			}
			if len(d.NotApplied) != 1 || d.NotApplied[0].Index != 2 || !strings.Contains(d.NotApplied[0].Reason, "no client certificate") {
				t.Errorf("not_applied: got %+v; want Statement[2] and why", d.NotApplied)
			}
			found := 0
			for _, v := range d.Variables {
				if v.Name == "iot:Connection.Thing.ThingName" && len(v.Values) == 1 && v.Values[0] == "temp-f01-001" {
					found++
				}
				if v.Name == "iot:Certificate.Subject.CommonName" && len(v.Values) == 0 && v.Unresolved == "no client certificate" {
					found++
				}
			}
			if found != 2 {
				t.Errorf("variables: got %+v; want the thing name's value and the common name unresolved", d.Variables)
			}
		}},
		{"default deny", []string{"--action", "publish", "--topic", "building/hq/floor/01/temp/temp-f01-002"}, 1, func(t *testing.T, d doc) {
			if d.Allowed || d.Decision != "deny" || d.Decider != nil || len(d.Matched) != 0 {
				t.Errorf("got %+v; want deny, no decider, nothing matched", d)
			}
		}},
		{"retain note", []string{"--action", "retain-publish", "--topic", "a"}, 1, func(t *testing.T, d doc) {
			if len(d.Notes) != 1 || !strings.Contains(d.Notes[0], "iot:Publish") {
				t.Errorf("notes: got %q; want the RETAIN note", d.Notes)
			}
		}},
		{"refused at connect", []string{"--action", "connect", "--thing", "off"}, 1, func(t *testing.T, d doc) {
			if d.Allowed || d.RefusedAtConnect != "thing is disabled in the registry" || d.Resource != "client/off" {
				t.Errorf("got %+v; want refused_at_connect and the client resource", d)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"policy", "test", "-c", cfg, "-o", "json", "--thing", "temp-f01-001"}, tt.args...)
			code, out, errOut := run(t, args...)
			if code != tt.code || errOut != "" {
				t.Fatalf("exit %d, stderr %q; want %d and no stderr\n%s", code, errOut, tt.code, out)
			}
			var raw any
			if err := json.Unmarshal([]byte(out), &raw); err != nil {
				t.Fatalf("not one JSON document: %v\n%s", err, out)
			}
			for _, p := range clitest.ConventionProblems("$", raw) {
				t.Errorf("%s", p)
			}
			var d doc
			if err := json.Unmarshal([]byte(out), &d); err != nil {
				t.Fatal(err)
			}
			tt.check(t, d)
		})
	}
}
