package gateway

import (
	"io"
	"log/slog"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// runGateway runs g until the test ends; then it cancels Run and requires
// it to return nil within stop. Run's result arrives on the returned
// channel; a test that receives it must send it back for that check.
// newFromFile checks the config file and builds its gateway (quiet log).
func newFromFile(t *testing.T, cfgFile string) *Gateway {
	t.Helper()
	cfg, err := config.Check(cfgFile)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	g, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func runGateway(t *testing.T, g *Gateway, stop time.Duration) chan error {
	t.Helper()
	return gatewaytest.RunUntilCleanup(t, stop, g.Run)
}

// TestSIGHUPRightAfterReady: systemd may send SIGHUP (systemctl reload) the
// moment READY=1 arrives. The gateway must already catch it then: a SIGHUP
// that nobody has asked for ends the process (this test binary included).
// The Ready callback sends it to this process before returning, and the
// reload must happen.
func TestSIGHUPRightAfterReady(t *testing.T) {
	dir := t.TempDir()
	gatewaytest.WriteSite(t, dir)
	cfgFile := filepath.Join(dir, "edgegw.yaml")
	gatewaytest.WriteFile(t, cfgFile, []byte(`version: 1
site: hup-test
state_dir: state
listeners:
  - {name: local, address: "127.0.0.1:0"}
devices: devices.yaml
policies: policies
store: {dir: state/queue} # every run opens the store (offline sessions)
metrics: {address: ""}
admin: {socket: ""}
audit: {file: ""}
`), 0o644)
	g := newFromFile(t, cfgFile)
	reloaded := make(chan error, 1)
	g.SetLifecycle(Lifecycle{
		Ready: func(func() error) {
			if err := syscall.Kill(syscall.Getpid(), syscall.SIGHUP); err != nil {
				t.Errorf("sending SIGHUP: %v", err)
			}
		},
		Reloaded: func(err error) { reloaded <- err },
	})
	done := runGateway(t, g, 15*time.Second)
	select {
	case err := <-reloaded:
		if err != nil {
			t.Errorf("reload after the SIGHUP: %v", err)
		}
	case err := <-done:
		done <- err // for the deferred check
		t.Fatalf("Run returned before the reload: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("no reload within 15s of a SIGHUP sent at READY")
	}
}
