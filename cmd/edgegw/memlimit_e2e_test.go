package main

// The GC policy as the real daemon applies it (issue 17): `edgegw run`
// sets limits.memory_limit (fitted to the machine) and the GC pacing
// defaultGCPercent, and GOMEMLIMIT and GOGC in its environment win. What
// the runtime ended up with is read back from the daemon's own /metrics
// (go_gc_gomemlimit_bytes, go_gc_gogc_percent: runtime/metrics through the
// Go collector), not from its log.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

func TestRunGCPolicy(t *testing.T) {
	const configured = 100 << 20 // limits.memory_limit below
	want := int64(configured)
	if m, _ := machineMemory("/proc", "/sys/fs/cgroup"); m > 0 && m < want {
		want = m // this machine leaves less: run lowers it
	}
	tests := []struct {
		name        string
		env         []string
		wantLimit   int64
		wantPercent float64
	}{
		{"defaults", nil, want, 50}, // defaultGCPercent, pinned
		{"environment wins", []string{"GOMEMLIMIT=300MiB", "GOGC=100"}, 300 << 20, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			metrics := startGCPolicyDaemon(t, fmt.Sprintf("%dMiB", configured>>20), tt.env)
			m := scrape(t, metrics)
			if got := sample(m, "go_gc_gomemlimit_bytes"); got != float64(tt.wantLimit) {
				t.Errorf("go_gc_gomemlimit_bytes %v; want %d", got, tt.wantLimit)
			}
			if got := sample(m, "go_gc_gogc_percent"); got != tt.wantPercent {
				t.Errorf("go_gc_gogc_percent %v; want %v", got, tt.wantPercent)
			}
		})
	}
}

// startGCPolicyDaemon runs `edgegw run` on a local-only site with the
// given limits.memory_limit, env added to an environment without GOGC and
// GOMEMLIMIT, and returns its metrics address once it listens.
func startGCPolicyDaemon(t *testing.T, memoryLimit string, env []string) (metrics string) {
	t.Helper()
	pki, dir := gatewaytest.NewPKI(t, "site"), t.TempDir()
	addr, metrics := gatewaytest.FreeAddr(t), gatewaytest.FreeAddr(t)
	conf := filepath.Join(dir, "edgegw.yaml")
	gatewaytest.WriteFile(t, conf, []byte(fmt.Sprintf(`version: 1
site: gc
state_dir: %[1]s/state
listeners:
  - {name: lan, address: %[2]q, tls: {ca: %[3]s, cert: %[4]s, key: "file:%[5]s", crl: %[6]s}}
devices: devices.yaml
policies: policies/
store: {dir: %[1]s/state/queue}
metrics: {address: %[7]q}
admin: {socket: %[1]s/state/admin.sock}
audit: {file: %[1]s/audit.log}
limits: {memory_limit: %[8]s}
`, dir, addr, pki.CAFile, pki.ServerCert, pki.ServerKey, pki.CRLFile, metrics, memoryLimit)), 0o644)
	gatewaytest.WriteSiteFiles(t, dir, e2eRegistry, map[string]string{"sensor": e2eSensor, "monitor": e2eMonitor})
	if err := os.MkdirAll(filepath.Join(dir, "state"), 0o700); err != nil {
		t.Fatal(err)
	}
	var daemonEnv []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOGC=") && !strings.HasPrefix(kv, "GOMEMLIMIT=") {
			daemonEnv = append(daemonEnv, kv)
		}
	}
	runDaemonEnv(t, conf, append(daemonEnv, env...))
	gatewaytest.WaitListening(t, metrics, 15*time.Second)
	return metrics
}
