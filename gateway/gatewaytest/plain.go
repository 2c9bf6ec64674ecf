package gatewaytest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// PlainMosquitto starts Debian's mosquitto on a free 127.0.0.1 port with a
// plaintext listener and anonymous access: the reference broker for tests
// that compare edgegw's standard MQTT behaviour with Mosquitto's in the same
// test. extra is appended to its config (e.g. "max_queued_messages 2000\n").
// It is stopped at cleanup; its log is shown if the test failed. Returns its
// address.
func PlainMosquitto(t testing.TB, extra string) string {
	t.Helper()
	bin := Need(t, "mosquitto", "mosquitto")
	dir := t.TempDir()
	addr := FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	logPath := filepath.Join(dir, "mosquitto.log")
	var c strings.Builder
	fmt.Fprintf(&c, "listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n", port)
	fmt.Fprintf(&c, "log_dest file %s\nlog_type error\nlog_type warning\nlog_type notice\n", logPath)
	if os.Geteuid() == 0 {
		c.WriteString("user root\n")
	}
	c.WriteString(extra)
	conf := filepath.Join(dir, "mosquitto.conf")
	WriteFile(t, conf, []byte(c.String()), 0o600)
	cmd := exec.Command(bin, "-c", conf)
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting mosquitto: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		Terminate(cmd.Process, exited, 5*time.Second)
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("mosquitto log (%s), last 4 KiB:\n%s", logPath, LastBytes(b, 4096))
		}
	})
	WaitListening(t, addr, 10*time.Second)
	return addr
}
