package pkicmd

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/gateway/enrol"
	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// pki renew-policy writes enrol.RenewPolicy for the config's templates into its policies
// directory (or --out, - for stdout, --template); without templates it says how to give them.
// TestE2EEnrolThroughBroker renews a sensor under the policy it writes.
func TestPKIRenewPolicy(t *testing.T) {
	root := t.TempDir()
	conf := filepath.Join(root, "edgegw.yaml")
	gatewaytest.WriteFile(t, conf, []byte(fmt.Sprintf(`version: 1
policies: policies/
state_dir: %s/state
enrolment:
  templates:
    - {name: sensors, thing_name: "sensor-${SN}", parameters: [{name: SN}]}
    - {name: lights, thing_name: "light-${SN}", parameters: [{name: SN}]}
`, root)), 0o644)

	out := mustRun(t, "pki", "renew-policy", "-c", conf)
	file := filepath.Join(root, "policies", enrol.RenewPolicyName+".json")
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("pki renew-policy wrote no %s: %v (stdout %q)", file, err, out)
	}
	if want := enrol.RenewPolicy("sensors", "lights"); string(got) != string(want) {
		t.Errorf("%s =\n%s\nwant the renewal policy of sensors and lights:\n%s", file, got, want)
	}
	if !strings.Contains(out, file) || !strings.Contains(out, "systemctl reload edgegw") {
		t.Errorf("stdout %q; want the file written and what to do next", out)
	}
	for _, topic := range []string{enrol.TopicCreateFromCSR, enrol.ProvisionTopic("lights")} {
		if !strings.Contains(string(got), topic) {
			t.Errorf("the policy does not name %s:\n%s", topic, got)
		}
	}

	if out := mustRun(t, "pki", "renew-policy", "-c", conf, "--template", "sensors", "--out", "-"); out != string(enrol.RenewPolicy("sensors")) {
		t.Errorf("--template sensors --out -: got\n%s\nwant the policy of sensors only", out)
	}

	bare := filepath.Join(root, "bare.yaml")
	gatewaytest.WriteFile(t, bare, []byte("version: 1\npolicies: policies/\n"), 0o644)
	code, _, errOut := run(t, "pki", "renew-policy", "-c", bare)
	if code != 2 || !strings.Contains(errOut, "--template") || !strings.Contains(errOut, "enrolment.templates") {
		t.Errorf("without templates: exit %d, stderr %q; want exit 2 saying to give --template or enrolment.templates", code, errOut)
	}
	code, _, errOut = run(t, "pki", "renew-policy", "-c", filepath.Join(root, "none.yaml"), "--template", "sensors")
	if code != 2 || !strings.Contains(errOut, "--out") {
		t.Errorf("without a policies directory: exit %d, stderr %q; want exit 2 saying to give --out or --policies", code, errOut)
	}
}
