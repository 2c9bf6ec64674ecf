package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// completions runs cobra's __complete as the shell scripts do and returns
// the offered values (descriptions cut) and the directive line.
func completions(t *testing.T, args ...string) ([]string, string) {
	t.Helper()
	code, out, errOut := edgegw(t, append([]string{"__complete"}, args...)...)
	if code != 0 {
		t.Fatalf("__complete %v: exit %d: %s", args, code, errOut)
	}
	var vals []string
	directive := ""
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if strings.HasPrefix(l, ":") {
			directive = l
			continue
		}
		v, _, _ := strings.Cut(l, "\t")
		vals = append(vals, v)
	}
	return vals, directive
}

func TestDynamicCompletion(t *testing.T) {
	cfgDir := t.TempDir()
	copyDir(t, filepath.Join("..", "..", "configs"), cfgDir)
	site := filepath.Join(cfgDir, "edgegw.yaml")
	bridged := filepath.Join(cfgDir, "bridged.yaml")
	keys := t.TempDir()
	for _, f := range []string{"gateway.key", "ca.key"} {
		if err := os.WriteFile(filepath.Join(keys, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(keys, "gw-dir"), 0o700); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		args      []string
		want      []string
		directive string
	}{
		{name: "thing names for policy test", args: []string{"policy", "test", "-c", site, "--thing", "temp-hq-f02"},
			want: []string{"temp-hq-f02-001", "temp-hq-f02-002"}, directive: ":4"},
		{name: "thing names for pki revoke", args: []string{"pki", "revoke", "-c", site, "node"}, want: []string{"node-red"}, directive: ":4"},
		{name: "pki revoke takes one thing", args: []string{"pki", "revoke", "-c", site, "node-red", ""}, want: nil, directive: ":4"},
		{name: "routes for queue peek", args: []string{"queue", "peek", "-c", bridged, "--route", ""}, want: []string{"telemetry", "commands"}, directive: ":4"},
		{name: "routes for queue replay", args: []string{"queue", "replay", "-c", bridged, "--route", "tel"}, want: []string{"telemetry"}, directive: ":4"},
		{name: "no routes without a bridge", args: []string{"queue", "purge", "-c", site, "--route", ""}, want: nil, directive: ":4"},
		{name: "unreadable config offers nothing", args: []string{"policy", "test", "-c", filepath.Join(cfgDir, "missing.yaml"), "--thing", ""}, want: nil, directive: ":4"},
		{name: "policy actions", args: []string{"policy", "test", "--action", ""}, want: []string{"connect", "publish", "subscribe", "receive", "retain-publish"}, directive: ":4"},
		{name: "policy actions by prefix", args: []string{"policy", "test", "--action", "re"}, want: []string{"receive", "retain-publish"}, directive: ":4"},
		{name: "key URI schemes", args: []string{"key", "create", "--key", ""}, want: []string{"file:", "tpm:handle=0x81000100", "pkcs11:token=", "auto"}, directive: ":6"},
		{name: "key URI scheme by prefix", args: []string{"key", "csr", "--key", "pk"}, want: []string{"pkcs11:token="}, directive: ":6"},
		{name: "output formats", args: []string{"pki", "crl", "-o", ""}, want: []string{"table", "json"}, directive: ":4"},
		{name: "output formats by prefix", args: []string{"shadow", "get", "lamp-1", "--output", "j"}, want: []string{"json"}, directive: ":4"},
		{name: "file: key paths", args: []string{"key", "info", "--key", "file:" + keys + "/g"}, want: []string{"file:" + keys + "/gateway.key", "file:" + keys + "/gw-dir/"}, directive: ":6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, dir := completions(t, tt.args...)
			if !slices.Equal(got, tt.want) || dir != tt.directive {
				t.Errorf("got %q %s; want %q %s", got, dir, tt.want, tt.directive)
			}
		})
	}
}
