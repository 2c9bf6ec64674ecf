package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// withAdminSocket restarts g with an admin socket (newBridgeGW runs without
// one) and returns its path.
func withAdminSocket(t *testing.T, g *bridgeGW) string {
	t.Helper()
	g.stop()
	sock := filepath.Join(g.dir, "state", "admin.sock")
	conf := readFile(t, g.conf)
	if !strings.Contains(conf, `admin: {socket: ""}`) {
		t.Fatalf("bridge test config has no admin line to replace:\n%s", conf)
	}
	gatewaytest.WriteFile(t, g.conf, []byte(strings.Replace(conf, `admin: {socket: ""}`, "admin: {socket: "+sock+"}", 1)), 0o644)
	g.start()
	return sock
}

// TestQueueReplayDeadLettersE2E is the replay acceptance: the upstream's ACL
// (real Debian Mosquitto) refuses a route, its messages fill the dead-letter
// area; the ACL is fixed and Mosquitto reloaded with SIGHUP; one
// `edgegw queue replay` sends them again, and they arrive upstream, in
// order, once. On the way the live peek, export and purge answer through the
// admin socket, every operation audited, and after the daemon stops the
// offline commands still work.
func TestQueueReplayDeadLettersE2E(t *testing.T) {
	up := gatewaytest.NewUpstream(t, cmdUpstream)
	cloud := startCloudSub(t, up, "sites/#")
	g := newBridgeGW(t, up, gwOptions{})
	withAdminSocket(t, g)

	const n = 25
	var lines []string
	for i := range n {
		lines = append(lines, msgID{"sensor-99", i}.payload())
	}
	if err := g.mosqPubLines(t, "sensor-99", "bad/sensor-99", lines); err != nil {
		t.Fatal(err)
	}
	auditPath := filepath.Join(g.dir, "audit.log")
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(readFile(t, auditPath), `"event":"dead_letter"`) < n {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d dead_letter audit lines after 30s:\n%s", n, readFile(t, auditPath))
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Live operations while the daemon holds the queue.
	code, out, errOut := edgegw(t, "queue", "peek", "-c", g.conf, "--dead", "-n", "100")
	if code != 0 || strings.Count(out, "bad/sensor-99") != n {
		t.Fatalf("queue peek --dead (daemon running): exit %d, %d rows; want 0 and %d\nstdout: %s\nstderr: %s", code, strings.Count(out, "bad/sensor-99"), n, out, errOut)
	}
	code, out, errOut = edgegw(t, "queue", "export", "-c", g.conf, "--dead", "--route", "elsewhere")
	if code != 0 || strings.Count(out, "\n") != n || !strings.Contains(out, `"reason":`) {
		t.Fatalf("queue export --dead (daemon running): exit %d, %d lines; want 0 and %d\nstderr: %s", code, strings.Count(out, "\n"), n, errOut)
	}
	code, out, errOut = edgegw(t, "queue", "purge", "-c", g.conf, "--route", "telemetry")
	if code != 0 || out != "purged 0 messages from route telemetry (daemon running)\n" {
		t.Fatalf("queue purge (daemon running): exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, _, errOut = edgegw(t, "queue", "purge", "-c", g.conf, "--route", "nope"); code != 1 || !strings.Contains(errOut, "no such route") {
		t.Errorf("queue purge of an unknown route: exit %d, stderr %q; want 1 and 'no such route'", code, errOut)
	}

	// Nothing of the route reached the cloud yet.
	cloud.mu.Lock()
	early := cloud.topics["sites/plant-8/bad/sensor-99"]
	cloud.mu.Unlock()
	if early != 0 {
		t.Fatalf("cloud got %d messages on the refused topic before the ACL was fixed", early)
	}

	// The cloud's ACL is fixed and Mosquitto reloads it on SIGHUP.
	acl := fmt.Sprintf("user %s\ntopic readwrite sites/plant-7/#\ntopic readwrite sites/plant-8/#\n\nuser %s\ntopic readwrite sites/#\n", gatewaytest.GatewayCN, gatewaytest.CloudCN)
	aclFile := ""
	for _, l := range strings.Split(readFile(t, up.Conf), "\n") {
		if f, ok := strings.CutPrefix(l, "acl_file "); ok {
			aclFile = strings.TrimSpace(f)
		}
	}
	if aclFile == "" {
		t.Fatalf("upstream configuration %s names no acl_file", up.Conf)
	}
	gatewaytest.WriteFile(t, aclFile, []byte(acl), 0o600)
	reloads := strings.Count(readFile(t, up.LogPath), "Reloading config")
	if err := syscall.Kill(up.PID(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for strings.Count(readFile(t, up.LogPath), "Reloading config") == reloads {
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto did not log \"Reloading config\" within 10s of SIGHUP")
		}
		time.Sleep(20 * time.Millisecond)
	}

	code, out, errOut = edgegw(t, "queue", "replay", "-c", g.conf)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("replayed %d dead letters\n  elsewhere: %d\n", n, n)) {
		t.Fatalf("queue replay: exit %d, stdout %q, stderr %q; want %d replayed on route elsewhere", code, out, errOut, n)
	}
	cloud.waitDistinct(t, n, 20*time.Second, 60*time.Second)
	time.Sleep(time.Second) // room for a duplicate to show up
	cloud.mu.Lock()
	got := append([]int(nil), cloud.arrivals["sensor-99"]...)
	topics := cloud.topics["sites/plant-8/bad/sensor-99"]
	cloud.mu.Unlock()
	if topics != n || len(got) != n {
		t.Errorf("cloud: got %d messages on sites/plant-8/bad/sensor-99 (%d arrivals); want %d, once each", topics, len(got), n)
	}
	for i, s := range got {
		if s != i {
			t.Errorf("cloud: arrival %d is message %d; want %d (in order): %v", i, s, i, got)
			break
		}
	}

	// Nothing is left, and a second replay sends nothing again.
	code, out, _ = edgegw(t, "queue", "replay", "-c", g.conf)
	if code != 0 || !strings.HasPrefix(out, "replayed 0 dead letters") {
		t.Errorf("second queue replay: exit %d, stdout %q; want 0 replayed", code, out)
	}
	code, out, _ = edgegw(t, "queue", "stats", "-c", g.conf, "--json")
	if code != 0 || !strings.Contains(out, `"dead_letters": 0`) {
		t.Errorf("queue stats after replay: exit %d; want no dead letters:\n%s", code, out)
	}

	auditLog := readFile(t, auditPath)
	for _, want := range []string{`"event":"queue_peek"`, `"event":"queue_export"`, `"event":"queue_purge"`,
		fmt.Sprintf(`"event":"queue_replay","resource":"route/elsewhere/dead-letters","count":%d`, n)} {
		if !strings.Contains(auditLog, want) {
			t.Errorf("audit log lacks %s", want)
		}
	}

	// Stopped, the offline commands work on the queue directly.
	g.stop()
	if code, out, errOut = edgegw(t, "queue", "peek", "-c", g.conf, "--dead"); code != 0 || strings.Contains(out, "bad/sensor-99") {
		t.Errorf("queue peek --dead (daemon stopped): exit %d, stdout %q, stderr %q; want 0 and no dead letters", code, out, errOut)
	}
	if code, _, errOut = edgegw(t, "queue", "replay", "-c", g.conf); code != exitNotRunning {
		t.Errorf("queue replay (daemon stopped): exit %d, stderr %q; want %d (not running)", code, errOut, exitNotRunning)
	}
	if _, err := os.Stat(filepath.Join(g.dir, "state", "presence.json")); err != nil {
		t.Errorf("presence file after stop: %v", err)
	}
}
