package gateway

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/gatewaytest"
	"github.com/edgegw/edgegw/gateway/pki"
)

// Preflight (what `edgegw check` runs) finds what the enrolment section names but the site
// lacks, each at its key's line: no CA in pki_dir, a policy that is not in the policies
// directory, a hook program that is not there.
func TestPreflightEnrolment(t *testing.T) {
	dir := t.TempDir()
	gatewaytest.WriteSite(t, dir) // devices.yaml, policies sensor and monitor
	src := `version: 1
site: lab
state_dir: state
listeners: [{name: l, address: "127.0.0.1:1883"}]
devices: devices.yaml
policies: policies/
metrics: {address: ""}
audit: {file: ""}
admin: {socket: ""}
enrolment:
  pki_dir: pki
  templates:
    - name: sensors
      thing_name: "sensor-${SerialNumber}"
      parameters: [{name: SerialNumber}]
      policies: [sensor, temperatur]
      pre_provisioning_hook: {command: [/nonexistent/allow-serial]}
`
	file := filepath.Join(dir, "edgegw.yaml")
	cfg, err := config.Parse(file, dir, []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	err = Preflight(context.Background(), cfg)
	if err == nil {
		t.Fatal("got no error; want the missing CA, policy and hook")
	}
	for _, want := range []string{
		file + ":11: enrolment.pki_dir: " + filepath.Join(dir, "pki") + ": no site CA there",
		file + `:16: enrolment.templates[0].policies[1]: "temperatur": no such policy`,
		file + ":17: enrolment.templates[0].pre_provisioning_hook.command: /nonexistent/allow-serial:",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("got %v; want it to contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), `"sensor"`) {
		t.Errorf("got %v; want the existing policy sensor accepted", err)
	}

	// With the CA made, the policy named right and no hook: no enrolment problem.
	if _, err := pki.Init(context.Background(), pki.Options{Dir: filepath.Join(dir, "pki")}, pki.InitOptions{CN: "test CA"}); err != nil {
		t.Fatal(err)
	}
	src = strings.Replace(strings.Replace(src, "temperatur", "monitor", 1), "      pre_provisioning_hook: {command: [/nonexistent/allow-serial]}\n", "", 1)
	if cfg, err = config.Parse(file, dir, []byte(src)); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "state"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := Preflight(context.Background(), cfg); err != nil {
		t.Errorf("got %v; want no problem", err)
	}
}
