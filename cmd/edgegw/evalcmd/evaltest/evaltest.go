// Package evaltest is the site the tests of the offline evaluation commands
// (evalcmd) and of the whole binary (cmd/edgegw) decide policy requests on.
//
// It is a test helper: only tests import it (cmd/edgegw/deps_test.go). It
// imports nothing of this module.
package evaltest

import (
	"os"
	"path/filepath"
	"testing"
)

// PolicySite writes a config, a registry and two policies into a temp dir: the thing
// temp-f01-001 (type temperature, building hq, floor 01) and the disabled thing off, in the group
// temps with the policies temperature (connect as itself, publish to its floor's temp topic and
// to cn/<its certificate's CN>) and baseline (deny publish to */cmd).
func PolicySite(t *testing.T) (dir, config string) {
	t.Helper()
	dir = t.TempDir()
	files := map[string]string{
		"edgegw.yaml": `version: 1
site: lab
listeners:
  - {name: local, address: "127.0.0.1:1883"}
devices: devices.yaml
policies: policies/
`,
		"devices.yaml": `version: 1
things:
  - name: temp-f01-001
    type: temperature
    attributes: {building: hq, floor: "01"}
  - {name: off, type: temperature, disabled: true}
groups:
  - {name: temps, match: {type: temperature}, policies: [temperature, baseline]}
`,
		"policies/temperature.json": `{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"},
    {"Effect": "Allow", "Action": "iot:Publish",
     "Resource": "topic/building/${iot:Connection.Thing.Attributes[building]}/floor/${iot:Connection.Thing.Attributes[floor]}/temp/${iot:Connection.Thing.ThingName}"},
    {"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/cn/${iot:Certificate.Subject.CommonName}"}
  ]
}`,
		"policies/baseline.yaml": "Version: '2012-10-17'\nStatement:\n  - {Effect: Deny, Action: iot:Publish, Resource: 'topic/*/cmd'}\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, filepath.Join(dir, "edgegw.yaml")
}
