package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// TestImportMosquittoThenCheck imports a Mosquitto configuration with a
// loopback listener, an ACL with patterns and users, and a bridge
// connection, then runs `edgegw check` on what it wrote.
func TestImportMosquittoThenCheck(t *testing.T) {
	dir := t.TempDir()
	// check parses the bridge's CA and matches its certificate to its key:
	// a real pair from a test CA.
	cloud := gatewaytest.NewPKI(t, "cloud")
	gw := cloud.Issue(t, "plant-7-gw")
	for dst, src := range map[string]string{"cloud-ca.pem": cloud.CAFile, "gw.crt": gw.CertFile, "gw.key": gw.KeyFile} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		gatewaytest.WriteFile(t, filepath.Join(dir, dst), data, 0o600)
	}
	gatewaytest.WriteFile(t, filepath.Join(dir, "acl"), []byte("pattern write sensors/%c/#\n\nuser dashboard\ntopic read sensors/#\n"), 0o644)
	conf := filepath.Join(dir, "mosquitto.conf")
	gatewaytest.WriteFile(t, conf, []byte(`listener 1883 127.0.0.1
allow_anonymous false
acl_file acl

connection cloud
address cloud.example.com:8883
bridge_cafile cloud-ca.pem
bridge_certfile gw.crt
bridge_keyfile gw.key
remote_clientid plant-7-gw
topic sensors/# out 1 "" sites/plant-7/
`), 0o644)
	out := filepath.Join(dir, "edgegw")

	code, stdout, stderr := edgegw(t, "import", "mosquitto", conf, "-o", out, "--site", "plant-7")
	if code != 0 {
		t.Fatalf("import: exit %d; want 0\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "next: edgegw check -c "+filepath.Join(out, "edgegw.yaml")) {
		t.Errorf("import stdout: got %q; want the next step named", stdout)
	}
	yaml, err := os.ReadFile(filepath.Join(out, "edgegw.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(yaml), "plant-7") {
		t.Errorf("edgegw.yaml: got no site plant-7:\n%s", yaml)
	}

	// The import keeps edgegw's default directories (/var/lib/edgegw,
	// /var/log/edgegw), which the package creates; this machine's are not
	// the test's (it may have none, or an installed package's).
	logDir, state := filepath.Join(dir, "log"), filepath.Join(dir, "state")
	if err := os.MkdirAll(logDir, 0o750); err != nil {
		t.Fatal(err)
	}
	checked := filepath.Join(out, "checked.yaml")
	gatewaytest.WriteFile(t, checked, append(yaml, "\naudit: {file: "+filepath.Join(logDir, "audit.log")+"}\nstate_dir: "+state+"\nstore: {dir: "+filepath.Join(state, "queue")+"}\n"...), 0o644)
	code, stdout, stderr = edgegw(t, "check", "-c", checked)
	if code != 0 {
		t.Fatalf("check on the import: exit %d; want 0\nstdout: %s\nstderr: %s\nedgegw.yaml:\n%s", code, stdout, stderr, yaml)
	}
	if want := "1 route"; !strings.Contains(stdout, want) {
		t.Errorf("check summary: got %q; want it to contain %q", stdout, want)
	}
}

// TestImportMosquittoExitCodes: what is not written exits 1, usage exits 2.
func TestImportMosquittoExitCodes(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "mosquitto.conf")
	gatewaytest.WriteFile(t, conf, []byte("listener 1883 127.0.0.1\n"), 0o644)
	used := filepath.Join(dir, "used")
	if code, _, stderr := edgegw(t, "import", "mosquitto", conf, "-o", used); code != 0 {
		t.Fatalf("first import: exit %d; want 0: %s", code, stderr)
	}
	tests := []struct {
		name     string
		args     []string
		code     int
		stderrIs string
	}{
		{name: "missing file", args: []string{"import", "mosquitto", filepath.Join(dir, "nope.conf"), "-o", filepath.Join(dir, "a")}, code: 1, stderrIs: "cannot read the Mosquitto configuration"},
		{name: "output exists", args: []string{"import", "mosquitto", conf, "-o", used}, code: 1, stderrIs: "never overwrites"},
		{name: "no -o", args: []string{"import", "mosquitto", conf}, code: 2, stderrIs: "-o DIR is required"},
		{name: "no file", args: []string{"import", "mosquitto", "-o", filepath.Join(dir, "b")}, code: 2, stderrIs: "want one mosquitto.conf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := edgegw(t, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.stderrIs) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr, tt.code, tt.stderrIs)
			}
		})
	}
}
