package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// notifyConfig writes a config with a plaintext loopback listener on addr and
// a bridge (so a queue is opened) to an upstream that is not there.
func notifyConfig(t *testing.T, addr string) string {
	t.Helper()
	dir := t.TempDir()
	copyDir(t, filepath.Join("..", "..", "configs"), dir)
	body := fmt.Sprintf(`version: 1
site: lab
state_dir: state
listeners:
  - {name: local, address: %q}
devices: devices.yaml
policies: policies/
store: {dir: state/queue}
metrics: {address: ""}
admin: {socket: state/admin.sock}
audit: {file: ""}
bridge:
  upstreams: [{url: "mqtt://%s"}]
  client_id: lab-gw
  backoff: {min: 100ms, max: 500ms}
  routes:
    - {name: telemetry, topic: "sensors/#", direction: out, qos: 1}
`, addr, gatewaytest.FreeAddr(t))
	p := filepath.Join(dir, "run.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// nextState reads notifications until one that is not a watchdog ping.
func nextState(t *testing.T, conn *net.UnixConn, pings *int, log *gatewaytest.Buffer) string {
	t.Helper()
	for range 1000 {
		if err := conn.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4096)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("reading notification: %v; edgegw log:\n%s", err, log.String())
		}
		if s := string(buf[:n]); s != sdWatchdogP {
			return s
		}
		*pings++
	}
	t.Fatalf("only watchdog pings; edgegw log:\n%s", log.String())
	return ""
}

// fields splits a notification into its KEY=value lines.
func fields(state string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(state, "\n") {
		k, v, _ := strings.Cut(l, "=")
		m[k] = v
	}
	return m
}

// TestNotifyLifecycle runs the real `edgegw run` with a real unixgram socket
// as $NOTIFY_SOCKET, as systemd does for Type=notify with WatchdogSec=: READY
// comes when the listener accepts, SIGHUP gives RELOADING (with
// MONOTONIC_USEC) then READY (also when the reload fails, STATUS says so),
// the watchdog is pinged while healthy, and SIGTERM gives STOPPING.
func TestNotifyLifecycle(t *testing.T) {
	bin := gatewaytest.Edgegw(t)
	conn, sock := listenNotify(t, false)
	addr := gatewaytest.FreeAddr(t)
	cfg := notifyConfig(t, addr)

	var log gatewaytest.Buffer
	cmd := exec.Command(bin, "run", "-c", cfg)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=200000") // ping every 100 ms
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	exited := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(exited) }()
	defer func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	pings := 0

	// READY=1, and at that moment the listener accepts.
	st := nextState(t, conn, &pings, &log)
	f := fields(st)
	if f["READY"] != "1" {
		t.Fatalf("first notification %q; want READY=1", st)
	}
	if c, err := net.DialTimeout("tcp", addr, 2*time.Second); err != nil {
		t.Fatalf("READY=1 sent but %s does not accept: %v", addr, err)
	} else {
		c.Close()
	}
	if f["STATUS"] != "listeners up, queue open" {
		t.Errorf("READY STATUS=%q; want %q", f["STATUS"], "listeners up, queue open")
	}

	// SIGHUP: RELOADING=1 with MONOTONIC_USEC, then READY=1.
	reload := func(wantStatus string) {
		t.Helper()
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		st := nextState(t, conn, &pings, &log)
		f := fields(st)
		if f["RELOADING"] != "1" {
			t.Fatalf("after SIGHUP got %q; want RELOADING=1", st)
		}
		if us, err := strconv.ParseUint(f["MONOTONIC_USEC"], 10, 64); err != nil || us == 0 {
			t.Errorf("RELOADING without a valid MONOTONIC_USEC: %q", st)
		}
		st = nextState(t, conn, &pings, &log)
		f = fields(st)
		if f["READY"] != "1" || !strings.Contains(f["STATUS"], wantStatus) {
			t.Fatalf("after RELOADING got %q; want READY=1 with STATUS containing %q", st, wantStatus)
		}
	}
	reload("; reloaded")

	// A reload that fails still ends with READY=1: the old config runs on.
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, append(data, []byte("bogus_key: 1\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	reload("; last reload failed (see the log): ")

	// The watchdog was pinged while the gateway was healthy.
	deadline := time.Now().Add(20 * time.Second)
	for pings == 0 && time.Now().Before(deadline) {
		if err := conn.SetReadDeadline(deadline); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4096)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no WATCHDOG=1 while healthy: %v", err)
		}
		if string(buf[:n]) != sdWatchdogP {
			t.Fatalf("unexpected notification %q", buf[:n])
		}
		pings++
	}

	// SIGTERM: STOPPING=1, then a clean exit.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if st := nextState(t, conn, &pings, &log); fields(st)["STOPPING"] != "1" {
		t.Fatalf("after SIGTERM got %q; want STOPPING=1", st)
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("edgegw run: %v; log:\n%s", waitErr, log.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("edgegw run did not exit after SIGTERM; log:\n%s", log.String())
	}
	t.Logf("%d watchdog pings", pings)
}
