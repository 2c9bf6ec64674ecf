package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
	"github.com/edgegw/edgegw/gateway/observe"
	"github.com/edgegw/edgegw/gateway/presence"
)

// presenceSite writes a site with sensor-01..sensor-05 (type temperature)
// and door-1 (type door) on a plaintext loopback listener, and returns the
// config path, the listener and the metrics addresses.
func presenceSite(t *testing.T) (cfg, mqttAddr, metricsAddr string) {
	t.Helper()
	dir := t.TempDir()
	reg := "version: 1\ndefault: {policies: []}\nthings:\n"
	for i := 1; i <= 5; i++ {
		reg += fmt.Sprintf("  - {name: sensor-%02d, type: temperature, policies: [sensor]}\n", i)
	}
	reg += "  - {name: door-1, type: door, policies: [sensor]}\n"
	gatewaytest.WriteSiteFiles(t, dir, reg, map[string]string{"sensor": gatewaytest.SensorPolicy})
	if err := os.MkdirAll(filepath.Join(dir, "state"), 0o750); err != nil {
		t.Fatal(err)
	}
	mqttAddr, metricsAddr = gatewaytest.FreeAddr(t), gatewaytest.FreeAddr(t)
	cfg = filepath.Join(dir, "edgegw.yaml")
	gatewaytest.WriteFile(t, cfg, []byte(fmt.Sprintf(`version: 1
site: lab
state_dir: state
listeners:
  - {name: local, address: %q}
devices: devices.yaml
policies: policies/
store: {dir: state/queue}
metrics: {address: %q}
admin: {socket: state/admin.sock}
audit: {file: ""}
`, mqttAddr, metricsAddr)), 0o644)
	return cfg, mqttAddr, metricsAddr
}

// runInProcess runs `edgegw run -c cfg` in-process until stop is called.
func runInProcess(t *testing.T, cfg string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr gatewaytest.Buffer
	done := make(chan int, 1)
	go func() { done <- execute(ctx, []string{"run", "-c", cfg}, &stdout, &stderr) }()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stderr.String(), "gateway started") {
		select {
		case c := <-done:
			t.Fatalf("run exited with %d before starting; stderr:\n%s", c, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("run: no \"gateway started\" within 30s; stderr:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("run: exit %d; stderr:\n%s", code, stderr.String())
		}
	}
	t.Cleanup(stop)
	return stop
}

func connectThing(t *testing.T, addr, thing string) *gatewaytest.V5 {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := gatewaytest.ConnectV5(t, conn, thing)
	if err != nil {
		t.Fatalf("connecting %s: %v", thing, err)
	}
	return cl
}

func devicesJSON(t *testing.T, args ...string) observe.DevicesList {
	t.Helper()
	code, out, errOut := edgegw(t, append([]string{"devices", "-o", "json"}, args...)...)
	if code != 0 {
		t.Fatalf("devices %v: exit %d, stderr %q", args, code, errOut)
	}
	var l observe.DevicesList
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatalf("devices -o json: %v\n%s", err, out)
	}
	return l
}

func statesOf(l observe.DevicesList) map[string]presence.State {
	m := map[string]presence.State{}
	for _, d := range l.Devices {
		m[d.Thing] = d.State
	}
	return m
}

// TestDevicesPresenceE2E: three sensors connect to a live `edgegw run`, one
// leaves; devices, status and the metrics say who is online, offline and
// never seen; after the daemon stops, devices reads the saved presence.
func TestDevicesPresenceE2E(t *testing.T) {
	cfg, mqttAddr, metricsAddr := presenceSite(t)
	stop := runInProcess(t, cfg)
	connectThing(t, mqttAddr, "sensor-01")
	connectThing(t, mqttAddr, "sensor-02")
	gone := connectThing(t, mqttAddr, "sensor-03")
	_ = gone.C.Disconnect(&paho.Disconnect{})

	want := map[string]presence.State{"sensor-01": presence.Online, "sensor-02": presence.Online, "sensor-03": presence.Offline,
		"sensor-04": presence.NeverSeen, "sensor-05": presence.NeverSeen, "door-1": presence.NeverSeen}
	var got map[string]presence.State
	for i := 0; ; i++ {
		got = statesOf(devicesJSON(t, "-c", cfg))
		if fmt.Sprint(got) == fmt.Sprint(want) {
			break
		}
		if i == 250 {
			t.Fatalf("devices: got %v; want %v", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}

	l := devicesJSON(t, "-c", cfg, "--offline", "--type", "temperature")
	var names []string
	for _, d := range l.Devices {
		names = append(names, d.Thing)
	}
	if !slices.Equal(names, []string{"sensor-03", "sensor-04", "sensor-05"}) || l.Count != 3 {
		t.Errorf("devices --offline --type temperature: got %v (count %d); want [sensor-03 sensor-04 sensor-05]", names, l.Count)
	}
	for _, d := range devicesJSON(t, "-c", cfg).Devices {
		if d.Thing == "sensor-03" && (d.LastSeen.IsZero() || !strings.HasPrefix(d.LastRemote, "127.0.0.1:") || d.LastClientID != "sensor-03") {
			t.Errorf("sensor-03: got %+v; want last seen, remote 127.0.0.1:*, client sensor-03", d)
		}
	}

	code, out, errOut := edgegw(t, "status", "-c", cfg)
	if code != 0 {
		t.Fatalf("status: exit %d, stderr %q", code, errOut)
	}
	for _, w := range []string{"presence:    6 registered: 2 online, 1 offline, 3 never seen; 0 unlisted connected", "  door-1 ", "  sensor-03 "} {
		if !strings.Contains(out, w) {
			t.Errorf("status lacks %q:\n%s", w, out)
		}
	}

	code, out, errOut = edgegw(t, "status", "-c", cfg, "--all", "-o", "json")
	var st observe.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Presence == nil || len(st.Presence.NotConnected) != 4 || st.Presence.Truncated != 0 {
		t.Errorf("status --all -o json: exit %d, presence %+v, stderr %q; want the 4 not connected listed", code, st.Presence, errOut)
	}

	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, w := range []string{"edgegw_devices_registered 6", `edgegw_devices_connected{listed="true"} 2`, `edgegw_devices_offline{threshold_seconds="86400"} 3`} {
		if !strings.Contains(string(body), w+"\n") {
			t.Errorf("metrics lack %q", w)
		}
	}
	if strings.Contains(string(body), `thing="`) || strings.Contains(string(body), "sensor-0") {
		t.Errorf("metrics name a device; want aggregates only")
	}

	stop()
	code, out, errOut = edgegw(t, "devices", "-c", cfg)
	if code != 0 || !strings.Contains(errOut, "edgegw is not running: presence as saved in") {
		t.Fatalf("devices after stop: exit %d, stderr %q; want 0 and the saved presence named", code, errOut)
	}
	got = statesOf(devicesJSON(t, "-c", cfg))
	want["sensor-01"], want["sensor-02"] = presence.Offline, presence.Offline
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("devices after stop: got %v; want %v", got, want)
	}
	t.Logf("edgegw devices after stop:\n%s", out)
}
