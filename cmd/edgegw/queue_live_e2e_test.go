package main

import (
	"encoding/json"
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
// area in two batches; the ACL is fixed and Mosquitto reloaded with SIGHUP.
// A replay filtered by a reason nobody has replays nothing; one filtered by
// reason and time (--older-than the moment between the batches) sends the
// first batch only, through the running daemon; with the daemon stopped, an
// offline replay (--newer-than 1h) queues the second, which the restarted
// daemon sends. Every message arrives upstream, in order, once. On the way
// the live peek, export and purge answer through the admin socket, every
// operation audited, and after the daemon stops the offline commands work.
func TestQueueReplayDeadLettersE2E(t *testing.T) {
	up := gatewaytest.NewUpstream(t, cmdUpstream)
	cloud := startCloudSub(t, up, "sites/#")
	g := newBridgeGW(t, up, gwOptions{})
	withAdminSocket(t, g)

	const n, first = 25, 10 // two batches: 0..9, then 10..24
	publish := func(from, to int) {
		t.Helper()
		var lines []string
		for i := from; i < to; i++ {
			lines = append(lines, msgID{"sensor-99", i}.payload())
		}
		if err := g.mosqPubLines(t, "sensor-99", "bad/sensor-99", lines); err != nil {
			t.Fatal(err)
		}
	}
	auditPath := filepath.Join(g.dir, "audit.log")
	waitDead := func(want int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for strings.Count(readFile(t, auditPath), `"event":"dead_letter"`) < want {
			if time.Now().After(deadline) {
				t.Fatalf("fewer than %d dead_letter audit lines after 30s:\n%s", want, readFile(t, auditPath))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	publish(0, first)
	waitDead(first)
	// Every dead letter of the first batch was moved before its audit line
	// was written; the second batch is published after this moment.
	between := time.Now()
	time.Sleep(10 * time.Millisecond)
	publish(first, n)
	waitDead(n)

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
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(readFile(t, up.LogPath), "Reloading config") == reloads {
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto did not log \"Reloading config\" within 10s of SIGHUP")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A reason no dead letter has: nothing is replayed, all are kept.
	code, out, errOut = edgegw(t, "queue", "replay", "-c", g.conf, "--reason", "0x97")
	if code != 0 || !strings.HasPrefix(out, `replayed 0 dead letters (filter: reason contains "0x97")`) || !strings.Contains(out, fmt.Sprintf("kept %d dead letters\n", n)) {
		t.Fatalf("queue replay --reason 0x97: exit %d, stdout %q, stderr %q; want 0 replayed, %d kept", code, out, errOut, n)
	}
	// The first batch only: by reason and by time, through the daemon.
	code, out, errOut = edgegw(t, "queue", "replay", "-c", g.conf, "--reason", "0x87", "--older-than", between.UTC().Format(time.RFC3339Nano))
	if code != 0 || !strings.Contains(out, fmt.Sprintf("dead letters (filter: reason contains \"0x87\", until %s)\n  elsewhere: %d\nkept %d dead letters\n", between.UTC().Format(time.RFC3339), first, n-first)) {
		t.Fatalf("queue replay --reason 0x87 --older-than T: exit %d, stdout %q, stderr %q; want %d replayed on route elsewhere, %d kept", code, out, errOut, first, n-first)
	}
	cloud.waitDistinct(t, first, 20*time.Second, 60*time.Second)
	time.Sleep(time.Second) // room for a duplicate, or a message of the second batch, to show up
	cloudArrivals := func() ([]int, int) {
		cloud.mu.Lock()
		defer cloud.mu.Unlock()
		return append([]int(nil), cloud.arrivals["sensor-99"]...), cloud.topics["sites/plant-8/bad/sensor-99"]
	}
	inOrder := func(got []int, want int) {
		t.Helper()
		if len(got) != want {
			t.Errorf("cloud: got %d messages from sensor-99 %v; want %d, once each", len(got), got, want)
		}
		for i, s := range got {
			if s != i {
				t.Errorf("cloud: arrival %d is message %d; want %d (in order): %v", i, s, i, got)
				break
			}
		}
	}
	got, topics := cloudArrivals()
	if topics != first {
		t.Errorf("cloud: got %d messages on sites/plant-8/bad/sensor-99; want %d (the first batch)", topics, first)
	}
	inOrder(got, first)
	code, out, _ = edgegw(t, "queue", "peek", "-c", g.conf, "--dead", "-n", "100")
	if code != 0 || strings.Count(out, "bad/sensor-99") != n-first {
		t.Errorf("queue peek --dead after the first replay: exit %d, %d rows; want %d (the second batch)\n%s", code, strings.Count(out, "bad/sensor-99"), n-first, out)
	}

	// The daemon stopped: the offline replay queues the second batch, and
	// the daemon sends it when it starts again.
	g.stop()
	code, out, errOut = edgegw(t, "queue", "replay", "-c", g.conf, "--newer-than", "1h", "-o", "json")
	var res struct {
		Operation string `json:"operation"`
		Count     int    `json:"count"`
		Kept      int    `json:"kept"`
		Routes    []struct {
			Route string `json:"route"`
			Count int    `json:"count"`
		} `json:"routes"`
	}
	if err := json.Unmarshal([]byte(out), &res); code != 0 || err != nil || res.Operation != "replay" || res.Count != n-first || res.Kept != 0 ||
		len(res.Routes) != 1 || res.Routes[0].Route != "elsewhere" || res.Routes[0].Count != n-first {
		t.Fatalf("queue replay --newer-than 1h (daemon stopped): exit %d, stdout %s, stderr %q (%v); want %d replayed on elsewhere, 0 kept", code, out, errOut, err, n-first)
	}
	g.start()
	cloud.waitDistinct(t, n, 20*time.Second, 60*time.Second)
	time.Sleep(time.Second) // room for a duplicate to show up
	got, topics = cloudArrivals()
	if topics != n {
		t.Errorf("cloud: got %d messages on sites/plant-8/bad/sensor-99; want %d", topics, n)
	}
	inOrder(got, n)

	// Nothing is left, and a further replay sends nothing again.
	code, out, _ = edgegw(t, "queue", "replay", "-c", g.conf)
	if code != 0 || !strings.HasPrefix(out, "replayed 0 dead letters (filter: all)") {
		t.Errorf("last queue replay: exit %d, stdout %q; want 0 replayed", code, out)
	}
	code, out, _ = edgegw(t, "queue", "stats", "-c", g.conf, "--json")
	if code != 0 || !strings.Contains(out, `"dead_letters": 0`) {
		t.Errorf("queue stats after replay: exit %d; want no dead letters:\n%s", code, out)
	}

	auditLog := readFile(t, auditPath)
	for _, want := range []string{`"event":"queue_peek"`, `"event":"queue_export"`, `"event":"queue_purge"`} {
		if !strings.Contains(auditLog, want) {
			t.Errorf("audit log lacks %s", want)
		}
	}
	// The live replay of the first batch and the offline one of the second.
	for _, want := range [][]string{
		{`"resource":"route/elsewhere/dead-letters"`, `reason contains \"0x87\", until`, fmt.Sprintf(`"count":%d`, first)},
		{`"resource":"route/elsewhere/dead-letters"`, `"reason":"filter: newer than 1h0m0s"`, fmt.Sprintf(`"count":%d`, n-first)},
	} {
		found := false
		for _, l := range strings.Split(auditLog, "\n") {
			if strings.Contains(l, `"event":"queue_replay"`) && strings.Contains(l, want[0]) && strings.Contains(l, want[1]) && strings.Contains(l, want[2]) {
				found = true
			}
		}
		if !found {
			t.Errorf("audit log lacks a queue_replay line with %q", want)
		}
	}

	// Stopped, the offline commands work on the queue directly.
	g.stop()
	if code, out, errOut = edgegw(t, "queue", "peek", "-c", g.conf, "--dead"); code != 0 || strings.Contains(out, "bad/sensor-99") {
		t.Errorf("queue peek --dead (daemon stopped): exit %d, stdout %q, stderr %q; want 0 and no dead letters", code, out, errOut)
	}
	if code, out, errOut = edgegw(t, "queue", "replay", "-c", g.conf); code != 0 || !strings.HasPrefix(out, "replayed 0 dead letters") {
		t.Errorf("queue replay (daemon stopped, nothing left): exit %d, stdout %q, stderr %q; want 0 and 0 replayed", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(g.dir, "state", "presence.json")); err != nil {
		t.Errorf("presence file after stop: %v", err)
	}
}
