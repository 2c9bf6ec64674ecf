package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/broker"
	"github.com/edgegw/edgegw/gateway/gatewaytest"
	"github.com/edgegw/edgegw/gateway/observe"
)

func TestStatusNotRunning(t *testing.T) {
	dir, err := os.MkdirTemp("", "egw")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "admin.sock")
	code, out, errOut := edgegw(t, "status", "--socket", sock)
	want := "edgegw: edgegw is not running (no daemon at " + sock + "); start it with: systemctl start edgegw\n"
	if code != exitNotRunning || errOut != want || out != "" {
		t.Errorf("got exit %d, stdout %q, stderr %q; want exit 3 and %q", code, out, errOut, want)
	}
	// The socket comes from the config when --socket is not given.
	cfg := runConfig(t)
	code, _, errOut = edgegw(t, "status", "-c", cfg)
	wantSock := filepath.Join(filepath.Dir(cfg), "state", "admin.sock")
	if code != exitNotRunning || !strings.Contains(errOut, "no daemon at "+wantSock) {
		t.Errorf("status -c: exit %d, stderr %q; want exit 3 naming %s", code, errOut, wantSock)
	}
	// An explicit config that cannot be read is an error, not a guess.
	code, _, errOut = edgegw(t, "status", "-c", filepath.Join(dir, "missing.yaml"))
	if code != 1 || !strings.Contains(errOut, "missing.yaml") {
		t.Errorf("status -c missing: exit %d, stderr %q; want exit 1 naming the file", code, errOut)
	}
}

func TestStatusOfRunningDaemon(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := runConfig(t)
	var stdout, stderr gatewaytest.Buffer
	done := make(chan int, 1)
	go func() { done <- execute(ctx, []string{"run", "-c", cfg}, &stdout, &stderr) }()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("run: exit %d; stderr:\n%s", code, stderr.String())
		}
	}()

	var code int
	var out, errOut string
	for i := 0; ; i++ {
		code, out, errOut = edgegw(t, "status", "-c", cfg, "--json")
		if code == 0 {
			break
		}
		select {
		case c := <-done:
			done <- c
			t.Fatalf("run exited with %d before answering status; stderr:\n%s", c, stderr.String())
		default:
		}
		if i == 1000 {
			t.Fatalf("status never answered: exit %d, stderr %q", code, errOut)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var st observe.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	if st.Site != "lab" || st.Health.Status != "ok" || len(st.Listeners) != 1 || st.Version != version || st.PID != os.Getpid() {
		t.Errorf("status --json: %+v", st)
	}

	code, out, errOut = edgegw(t, "status", "-c", cfg)
	if code != 0 || errOut != "" {
		t.Fatalf("status: exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{"site lab", "health:      ok (listeners 1", "listeners:   local 127.0.0.1:", "(plaintext)", "devices:     0 connected", "denials:     none recently"} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
	t.Logf("edgegw status:\n%s", out)
}

func TestPrintStatusFull(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	st := &observe.Status{
		Version: "1.0.0", Commit: "abc", Site: "plant-7", PID: 42, Uptime: 3*3600 + 125,
		Health:    observe.Health{Status: "unavailable", Listeners: 2, Queue: "failed", Upstream: "down", Error: "writing to queue: input/output error"},
		Listeners: []observe.ListenerStatus{{Name: "lan", Address: "0.0.0.0:8883", TLS: true}},
		Upstream:  &observe.UpstreamStatus{URL: "mqtts://cloud:8883", LastError: "dial tcp: connection refused", Reconnects: 2},
		Queue: &observe.QueueStatus{Depth: 120, Bytes: 4096, MaxBytes: 2 << 30, Routes: []observe.RouteStatus{
			{Name: "telemetry", Depth: 120, Bytes: 4096, OldestAge: 95, Drops: map[string]uint64{"max-age": 2}, Rate: 0}}},
		Devices: observe.DevicesStatus{Count: 1, Connected: []broker.ConnectedDevice{{Thing: "temp-1", ClientID: "temp-1", Remote: "10.0.0.5:5000", Listener: "lan", Since: now}}},
		Denials: []observe.DenialStatus{{Time: now, Device: "temp-1", Action: "iot:Publish", Resource: "topic/building/lock-1/state"}},
		Certs:   []observe.CertExpiry{{Cert: "server", Days: 364.2}, {Cert: "upstream", Days: 12}},
		Reload:  observe.ReloadStatus{OK: false, At: now, Error: "policies/x.json:3: bad"},
	}
	var b strings.Builder
	printStatus(&b, st)
	out := b.String()
	for _, want := range []string{
		"edgegw 1.0.0 (commit abc), site plant-7, up 3h2m0s (pid 42)",
		"health:      unavailable (listeners 2, queue failed, upstream down)\n             writing to queue: input/output error\n",
		"upstream:    mqtts://cloud:8883 DOWN, 2 reconnects",
		"last error: dial tcp: connection refused",
		"telemetry  120", "1m35s", "2 ",
		"temp-1  temp-1     10.0.0.5:5000",
		"iot:Publish  topic/building/lock-1/state",
		"server 364 days, upstream 12 days (RENEW SOON)",
		"reload:      FAILED",
		"clock:       system clock is before the build date",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
