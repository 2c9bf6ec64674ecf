package gateway

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// TestStartRefusesRuleThatDoesNotCompile: a rule that does not compile
// (config.Check does not compile rules) stops the start with the config
// error at the rule's line, and releases what was opened before it (the
// audit log, the listeners' keys); the same site then starts without it.
func TestStartRefusesRuleThatDoesNotCompile(t *testing.T) {
	dir := t.TempDir()
	gatewaytest.WriteSite(t, dir)
	cfgFile := filepath.Join(dir, "edgegw.yaml")
	base := `version: 1
site: rules-test
state_dir: state
listeners:
  - {name: local, address: "127.0.0.1:0"}
devices: devices.yaml
policies: policies
store: {dir: state/queue}
metrics: {address: ""}
admin: {socket: ""}
audit: {file: audit.log}
`
	gatewaytest.WriteFile(t, cfgFile, []byte(base+`rules:
  - name: bad
    sql: "SELECT nosuchfunction(a) AS b FROM 'a/#'"
    identity: sensor-a
    actions: [{republish: {topic: "x/y"}}]
`), 0o644)
	err := newFromFile(t, cfgFile).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "edgegw.yaml:14: rules[0].sql") || !strings.Contains(err.Error(), "nosuchfunction") {
		t.Fatalf("Run = %v; want the config error at edgegw.yaml:14: rules[0].sql naming nosuchfunction", err)
	}
	gatewaytest.WriteFile(t, cfgFile, []byte(base), 0o644)
	startFromFile(t, cfgFile)
}
