package queuecmd

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// TestQueueAdviceForSetup: the queue commands explain the setup they see
// instead of telling root to make the queue key by hand (which the daemon,
// running as edgegw, could then not read).
func TestQueueAdviceForSetup(t *testing.T) {
	for _, tc := range []struct {
		name   string
		bridge bool
		args   []string
		code   int
		want   string
	}{
		{"stats without a bridge", false, []string{"queue", "stats"}, 0, "has no bridge section"},
		{"peek without a bridge", false, []string{"queue", "peek"}, 1, "has no bridge section"},
		{"stats before the first start", true, []string{"queue", "stats"}, 0, "the daemon creates it, and its encryption key, at its first start"},
		{"export before the first start", true, []string{"queue", "export"}, 1, "the daemon creates it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf := writeSite(t, tc.bridge)
			code, stdout, stderr := run(t, append(tc.args, "-c", conf)...)
			out := stdout + stderr
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, output %q; want exit %d and %q", code, out, tc.code, tc.want)
			}
			if strings.Contains(out, "head -c") || strings.Contains(out, "create it with") {
				t.Errorf("output %q tells the user to make the key by hand", out)
			}
		})
	}
}

// writeSite writes a valid site that has not started yet (no queue
// directory): a local broker, with a bridge section when bridge is set and
// then, as packaged, an encrypted queue whose key the daemon makes. It
// returns the config's path.
func writeSite(t *testing.T, bridge bool) string {
	t.Helper()
	dir := t.TempDir()
	site := gatewaytest.NewPKI(t, "site")
	enckey, bridgeConf := "", ""
	if bridge {
		up := gatewaytest.NewPKI(t, "cloud")
		gw := up.Issue(t, "plant-7-gw")
		enckey = "file:" + filepath.Join(dir, "state", "queue.key")
		bridgeConf = fmt.Sprintf(`bridge:
  upstreams: [{url: "mqtts://127.0.0.1:1", server_name: localhost}]
  client_id: plant-7-gw
  tls: {ca: %s, cert: %s, key: %q}
  routes:
    - {name: telemetry, topic: "sensors/#", direction: out}
`, up.CAFile, gw.CertFile, "file:"+gw.KeyFile)
	}
	conf := fmt.Sprintf(`version: 1
site: plant-7
state_dir: %s
listeners:
  - {name: lan, address: %q, tls: {ca: %s, cert: %s, key: %q, crl: %s}}
devices: devices.yaml
policies: policies/
store: {dir: %s, min_free: 1MiB, encryption_key: %q}
metrics: {address: ""}
admin: {socket: ""}
audit: {file: %s}
%s`, filepath.Join(dir, "state"), gatewaytest.FreeAddr(t), site.CAFile, site.ServerCert, "file:"+site.ServerKey, site.CRLFile,
		filepath.Join(dir, "state", "queue"), enckey, filepath.Join(dir, "log", "audit.log"), bridgeConf)
	path := filepath.Join(dir, "edgegw.yaml")
	gatewaytest.WriteFile(t, path, []byte(conf), 0o644)
	gatewaytest.WriteSiteFiles(t, dir, gatewaytest.Registry, map[string]string{"sensor": gatewaytest.SensorPolicy, "monitor": gatewaytest.MonitorPolicy})
	return path
}
