package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/cmd/edgegw/cli/clitest"
	"github.com/edgegw/edgegw/cmd/edgegw/evalcmd/evaltest"
	"github.com/edgegw/edgegw/cmd/edgegw/queuecmd/queuetest"
	"github.com/edgegw/edgegw/gateway/gatewaytest"
	"github.com/edgegw/edgegw/store"
)

// conventionProblems is clitest.ConventionProblems: what in a JSON document breaks the output
// convention (output.go).
func conventionProblems(path string, v any) []string { return clitest.ConventionProblems(path, v) }

// TestJSONConvention runs every command with -o json on real state and
// checks one convention across them: snake_case keys, no nulls (empty lists
// are []), no zero times, and the keys each schema promises.
func TestJSONConvention(t *testing.T) {
	qdir := filepath.Join(t.TempDir(), "queue")
	queuetest.Fill(t, store.Options{Dir: qdir})
	emptyQ := filepath.Join(t.TempDir(), "empty")
	q, err := store.Open(store.Options{Dir: emptyQ})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	pkiConf, _, _ := pkiSite(t)
	mustRun(t, "pki", "init", "-c", pkiConf, "--host", "localhost")

	// The pki commands that change the PKI, each on real files: a fresh
	// site for init, another for init --csr, a CSR made by openssl, a
	// server key made by edgegw key create.
	freshConf, _, _ := pkiSite(t)
	csrConf, _, _ := pkiSite(t)
	certOut := t.TempDir()
	dev := t.TempDir()
	csr := filepath.Join(dev, "valve-7.csr")
	if b, err := exec.Command(needTool(t, "openssl", "openssl"), "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", filepath.Join(dev, "valve-7.key"), "-out", csr, "-subj", "/CN=valve-7").CombinedOutput(); err != nil {
		t.Fatalf("openssl req: %v %s", err, b)
	}
	// import-ca: an enterprise root (openssl) signs the CSR of init --csr.
	importConf, importDir, _ := pkiSite(t)
	mustRun(t, "pki", "init", "-c", importConf, "--csr")
	subCA := enterpriseSign(t, filepath.Join(importDir, "ca.csr"))
	serverKey := filepath.Join(t.TempDir(), "lan.key")
	mustRun(t, "key", "create", "--key", "file:"+serverKey)
	serverCert := filepath.Join(t.TempDir(), "lan.crt")
	passwdFile := filepath.Join(t.TempDir(), "passwd")

	cfg, mqttAddr, _ := presenceSite(t)
	// Serve shadows too, so that shadow -o json answers from the daemon.
	conf, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	gatewaytest.WriteFile(t, cfg, append(conf, "shadows:\n  sync: []\n"...), 0o644)
	runInProcess(t, cfg)
	connectThing(t, mqttAddr, "sensor-01")

	localOnly := localOnlyConfig(t)
	_, policyCfg := evaltest.PolicySite(t)
	tests := []struct {
		name   string
		args   []string
		keys   []string          // top-level keys the schema promises
		values map[string]string // top-level keys and their value (fmt %v)
		code   int               // the exit status (check refuses with 1 and still prints the document)
		stdin  string            // run the binary with this on standard input (passwd)
	}{
		{name: "version", args: []string{"version", "-o", "json"}, keys: []string{"version", "commit", "go_version", "os", "arch"}},
		{name: "version --json alias", args: []string{"version", "--json"}, keys: []string{"version"}},
		{name: "queue stats", args: []string{"queue", "stats", "--dir", qdir, "-o", "json"}, keys: []string{"depth", "bytes", "dead_letters", "routes"}},
		{name: "queue stats, empty queue", args: []string{"queue", "stats", "--dir", emptyQ, "-o", "json"}, keys: []string{"routes"}},
		{name: "queue peek", args: []string{"queue", "peek", "--dir", qdir, "-o", "json"}, keys: []string{"dead", "messages"}},
		{name: "queue peek, dead letters", args: []string{"queue", "peek", "--dir", qdir, "--dead", "-o", "json"}, keys: []string{"messages"}},
		{name: "queue replay, nothing selected", args: []string{"queue", "replay", "--dir", qdir, "--reason", "0x97", "-o", "json"}, keys: []string{"operation", "count", "routes", "kept", "skipped", "filter"}},
		{name: "queue purge", args: []string{"queue", "purge", "--dir", qdir, "--route", "alarms", "-o", "json"}, keys: []string{"operation", "count", "routes", "skipped"}},
		{name: "pki list, none issued", args: []string{"pki", "list", "-c", pkiConf, "-o", "json"}},
		{name: "devices", args: []string{"devices", "-c", cfg, "-o", "json"}, keys: []string{"count", "devices"}},
		{name: "devices, none match", args: []string{"devices", "-c", cfg, "--type", "nothing", "-o", "json"}, keys: []string{"count", "devices"}},
		{name: "check", args: []string{"check", "-c", localOnly, "-o", "json"}, keys: []string{"ok", "config", "summary", "counts", "problems", "warnings"}},
		{name: "check, refused", args: []string{"check", "-c", filepath.Join("..", "..", "configs", "edgegw.yaml"), "-o", "json"}, keys: []string{"ok", "config", "problems", "warnings"}, code: 1},
		{name: "policy test", args: []string{"policy", "test", "-c", policyCfg, "--thing", "temp-f01-001", "--action", "connect", "-o", "json"}, keys: []string{"allowed", "decision", "action", "resource", "policies", "decider", "matched", "not_applied", "variables", "notes"}},
		{name: "policy test, refused at connect", args: []string{"policy", "test", "-c", policyCfg, "--thing", "off", "--action", "connect", "-o", "json"}, keys: []string{"allowed", "refused_at_connect", "policies", "matched"}, code: 1},
		{name: "rule test", args: []string{"rule", "test", "--sql", "SELECT temp FROM 'a/+'", "--topic", "a/b", "--payload", `{"temp": 1}`, "-o", "json"}, keys: []string{"fires", "topic_matches", "where_held", "output", "output_json"}},
		{name: "status", args: []string{"status", "-c", cfg, "-o", "json"}, keys: []string{"site", "uptime_seconds", "devices", "presence", "recent_denials", "certificates", "shadows"}},

		{name: "pki init", args: []string{"pki", "init", "-c", freshConf, "--host", "localhost", "-o", "json"},
			keys: []string{"dir", "ca_subject", "ca_not_after", "files", "warnings", "clock_clamped"}, values: map[string]string{"ca_subject": "CN=edgegw site CA"}},
		{name: "pki init --csr", args: []string{"pki", "init", "-c", csrConf, "--csr", "-o", "json"}, keys: []string{"dir", "csr_file", "files", "warnings"}},
		{name: "pki import-ca", args: []string{"pki", "import-ca", "-c", importConf, subCA, "-o", "json"},
			keys: []string{"dir", "ca_subject", "ca_not_after", "files", "warnings"}},
		{name: "key create", args: []string{"key", "create", "--key", "file:" + filepath.Join(dev, "gw.key"), "-o", "json"},
			keys: []string{"uri", "type", "location", "public_key_sha256"}},
		{name: "key info", args: []string{"key", "info", "--key", "file:" + serverKey, "-o", "json"},
			keys: []string{"uri", "type", "location", "public_key_sha256"}},
		{name: "pki issue", args: []string{"pki", "issue", "-c", pkiConf, "sensor-01", "--out", certOut, "-o", "json"},
			keys: []string{"count", "certificates", "registry", "clock_clamped"}, values: map[string]string{"count": "1"}},
		{name: "pki sign", args: []string{"pki", "sign", "-c", pkiConf, csr, "--thing", "valve-7", "--out", certOut, "-o", "json"},
			keys: []string{"count", "certificates", "registry"}, values: map[string]string{"count": "1"}},
		{name: "pki claim", args: []string{"pki", "claim", "-c", pkiConf, "batch7", "--template", "sensors", "--out", certOut, "-o", "json"},
			keys: []string{"count", "certificates", "registry", "policy_file"}},
		{name: "pki list", args: []string{"pki", "list", "-c", pkiConf, "-o", "json"}},
		{name: "pki revoke", args: []string{"pki", "revoke", "-c", pkiConf, "sensor-01", "-o", "json"},
			keys: []string{"revoked", "crl_number", "crl_file", "clock_clamped"}},
		{name: "pki revoke, already revoked", args: []string{"pki", "revoke", "-c", pkiConf, "sensor-01", "-o", "json"},
			keys: []string{"revoked", "crl_file", "nothing_to_do"}},
		{name: "pki crl", args: []string{"pki", "crl", "-c", pkiConf, "-o", "json"},
			keys: []string{"resigned", "crl_number", "revoked", "next_update", "crl_file", "message"}, values: map[string]string{"resigned": "true", "revoked": "1"}},
		{name: "pki crl, not due", args: []string{"pki", "crl", "-c", pkiConf, "--refresh-before", "1d", "-o", "json"},
			keys: []string{"resigned", "crl_number", "next_update", "message"}, values: map[string]string{"resigned": "false"}},
		{name: "pki server", args: []string{"pki", "server", "-c", pkiConf, "--key", "file:" + serverKey, "--host", "gw.local", "--out", serverCert, "-o", "json"},
			keys: []string{"action", "serial", "hosts", "not_after", "cert_file", "key", "key_changed"}, values: map[string]string{"action": "issued", "key_changed": "false"}},
		{name: "pki server, not due", args: []string{"pki", "server", "-c", pkiConf, "--key", "file:" + serverKey, "--renew-before", "1d", "--out", serverCert, "-o", "json"},
			keys: []string{"action", "serial", "hosts", "not_after"}, values: map[string]string{"action": "not_due"}},
		{name: "passwd", args: []string{"passwd", passwdFile, "site-engineer", "-o", "json"}, stdin: "correct horse\n",
			keys: []string{"file", "user"}, values: map[string]string{"user": "site-engineer"}},
		{name: "shadow update", args: []string{"shadow", "update", "sensor-01", `{"state":{"desired":{"interval_seconds":30}}}`, "-c", cfg, "-o", "json"},
			keys: []string{"state", "metadata", "version", "timestamp"}, values: map[string]string{"version": "1"}},
		{name: "shadow get", args: []string{"shadow", "get", "sensor-01", "-c", cfg, "-o", "json"}, keys: []string{"state", "metadata", "version", "timestamp"}},
		{name: "shadow list", args: []string{"shadow", "list", "sensor-01", "-c", cfg, "-o", "json"}, keys: []string{"thing", "named"}},
		{name: "shadow delete", args: []string{"shadow", "delete", "sensor-01", "-c", cfg, "-o", "json"}, keys: []string{"version", "timestamp"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := edgegw(t, tt.args...)
			if tt.stdin != "" {
				code, out, errOut = runBinary(t, tt.stdin, tt.args...)
			}
			if code != tt.code {
				t.Fatalf("exit %d; want %d\nstderr: %s", code, tt.code, errOut)
			}
			var doc any
			if err := json.Unmarshal([]byte(out), &doc); err != nil {
				t.Fatalf("output is not one JSON document: %v\n%s", err, out)
			}
			for _, p := range conventionProblems("$", doc) {
				t.Errorf("%s", p)
			}
			m, _ := doc.(map[string]any)
			for _, k := range tt.keys {
				if _, ok := m[k]; !ok {
					t.Errorf("key %q: got none; want it (schema in output.go)\n%s", k, out)
				}
			}
			schemaMatches(t, tt.args, doc)
			for k, want := range tt.values {
				if got := fmt.Sprint(m[k]); got != want {
					t.Errorf("%s: got %s; want %s\n%s", k, got, want, out)
				}
			}
		})
	}
	// Every command with -o json (output_schema.go) is run above.
	for p := range jsonSchemas {
		ran := false
		for _, tt := range tests {
			ran = ran || strings.HasPrefix(strings.Join(tt.args, " ")+" ", p+" ")
		}
		if !ran {
			t.Errorf("edgegw %s -o json: not run here; want a case for it", p)
		}
	}
	if code, _, errOut := edgegw(t, "version", "-o", "yaml"); code != 2 || !strings.Contains(errOut, `-o "yaml": want table or json`) {
		t.Errorf("version -o yaml: exit %d, stderr %q; want 2 and the formats named", code, errOut)
	}
}

// schemaMatches checks that the document a command printed is the type its
// help documents (jsonSchemas): every top-level key printed is a key of the
// type, and every key the type always prints (not optional) is there. For a
// list, its first element is checked.
func schemaMatches(t *testing.T, args []string, doc any) {
	t.Helper()
	path, s := "", jsonSchema{}
	for p, e := range jsonSchemas {
		if strings.HasPrefix(strings.Join(args, " ")+" ", p+" ") && len(p) > len(path) {
			path, s = p, e
		}
	}
	if path == "" {
		t.Fatalf("edgegw %s: no entry in jsonSchemas", strings.Join(args, " "))
	}
	if s.asIs {
		return
	}
	typ := reflect.TypeOf(s.v)
	if typ.Kind() == reflect.Slice {
		list, ok := doc.([]any)
		if !ok {
			t.Fatalf("edgegw %s: got %T; want a list (%T)", path, doc, s.v)
		}
		if len(list) == 0 {
			return
		}
		doc, typ = list[0], typ.Elem()
	}
	m, ok := doc.(map[string]any)
	if !ok {
		t.Fatalf("edgegw %s: got %T; want an object (%T)", path, doc, s.v)
	}
	fields := map[string]bool{}
	for _, f := range jsonFields(typ) {
		fields[f.name] = true
		if _, ok := m[f.name]; !ok && !f.optional {
			t.Errorf("edgegw %s: key %q of %v: got none; want it (it is not optional)", path, f.name, typ)
		}
	}
	for k := range m {
		if !fields[k] {
			t.Errorf("edgegw %s: printed key %q: not in %v, the type its help documents", path, k, typ)
		}
	}
}

// enterpriseSign signs the subordinate CA request csr with a throwaway
// root made by openssl, as an enterprise CA would, and returns the file
// import-ca takes: the certificate followed by the root.
func enterpriseSign(t *testing.T, csr string) string {
	t.Helper()
	openssl := needTool(t, "openssl", "openssl")
	dir := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		if b, err := exec.Command(openssl, args...).CombinedOutput(); err != nil {
			t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, b)
		}
	}
	rootKey, rootCrt, ext := filepath.Join(dir, "root.key"), filepath.Join(dir, "root.crt"), filepath.Join(dir, "sub.ext")
	run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", rootKey, "-out", rootCrt,
		"-subj", "/CN=enterprise root", "-days", "30", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
	gatewaytest.WriteFile(t, ext, []byte("basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n"), 0o644)
	sub := filepath.Join(dir, "sub.crt")
	run("x509", "-req", "-in", csr, "-CA", rootCrt, "-CAkey", rootKey, "-CAcreateserial", "-out", sub, "-days", "30", "-extfile", ext)
	chain := append(readBytes(t, sub), readBytes(t, rootCrt)...)
	out := filepath.Join(dir, "signed.pem")
	gatewaytest.WriteFile(t, out, chain, 0o644)
	return out
}

func readBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// runBinary runs the edgegw binary with args and stdin (bounded) and
// returns its exit status, stdout and stderr.
func runBinary(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, gatewaytest.Edgegw(t), args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running edgegw %s: %v", strings.Join(args, " "), err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

func TestConventionProblems(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want int
	}{
		{"clean", `{"a_b": [], "c": {"d_seconds": 1.5}, "t": "2026-12-01T08:00:00Z"}`, 0},
		{"null list", `{"routes": null}`, 1},
		{"Go field name", `{"DeadLetters": 0}`, 1},
		{"zero time", `{"since": "0001-01-01T00:00:00Z"}`, 1},
		{"nanoseconds", `{"age_ns": 5}`, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var doc any
			if err := json.Unmarshal([]byte(tt.doc), &doc); err != nil {
				t.Fatal(err)
			}
			if got := conventionProblems("$", doc); len(got) != tt.want {
				t.Errorf("got %d problems %q; want %d", len(got), got, tt.want)
			}
		})
	}
}
