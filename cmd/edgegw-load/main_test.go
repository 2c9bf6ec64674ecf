package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
	"github.com/edgegw/edgegw/gateway/pki"
)

func TestMain(m *testing.M) {
	code := m.Run()
	gatewaytest.CleanupBuild()
	os.Exit(code)
}

// smallSite is a 20-device building (1 floor, 5 devices per role) in a temp dir.
func smallSite(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "site")
	if _, _, err := OpenSite(context.Background(), dir, 1, 20); err != nil {
		t.Fatalf("OpenSite: %v", err)
	}
	return dir
}

func runTool(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code := run(ctx, args, &out, &errb)
	return code, out.String() + errb.String()
}

// TestBuildingSmall is the building scenario with 20 devices against a real
// `edgegw run` bridged to a real mosquitto (mTLS, ACL): all connect, blast
// radius 1/20 per role, telemetry counted at the local monitor and at the
// cloud subscriber, commands from the cloud counted at the lights and locks,
// nothing lost.
func TestBuildingSmall(t *testing.T) {
	bin := gatewaytest.Edgegw(t)
	site := smallSite(t)
	code, out := runTool(t, "building", "--edgegw", bin, "--site", site, "--run-dir", t.TempDir(),
		"--floors", "1", "--per-floor", "20", "--duration", "3s", "--rate", "120", "--burst", "5", "--cmd-rate", "60")
	if code != 0 {
		t.Fatalf("building exit %d; want 0\n%s", code, out)
	}
	for _, want := range []string{"blast radius: 1/20", "unexplained   0", "PASS",
		"telemetry ledger upstream (device -> gateway -> queue -> bridge -> mosquitto -> cloud subscriber)",
		"command ledger (cloud -> mosquitto -> bridge -> gateway -> light/lock)"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "blast radius: 1/20"); n != 4 {
		t.Errorf("%d roles with blast radius 1/20; want 4\n%s", n, out)
	}
}

// TestBuildingFailsOnPermissivePolicy: a temperature policy that lets a
// sensor publish anywhere under building/ must make the scenario fail.
func TestBuildingFailsOnPermissivePolicy(t *testing.T) {
	bin := gatewaytest.Edgegw(t)
	site := smallSite(t)
	bad := `{"Version": "2012-10-17", "Statement": [
  {"Effect": "Allow", "Action": "iot:Connect", "Resource": "client/${iot:Connection.Thing.ThingName}"},
  {"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/building/*"}]}`
	if err := os.WriteFile(filepath.Join(site, "policies", "temperature.json"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out := runTool(t, "building", "--edgegw", bin, "--site", site, "--run-dir", t.TempDir(),
		"--floors", "1", "--per-floor", "20", "--duration", "1s", "--rate", "60", "--cmd-rate", "0")
	if code != 1 {
		t.Fatalf("building exit %d with a permissive policy; want 1\n%s", code, out)
	}
	if !strings.Contains(out, "UNEXPECTED publish topic/building/hq/floor/01/temp/temp-f01-00") ||
		!strings.Contains(out, "unauthorized actions accepted") {
		t.Errorf("output does not name the unauthorized publish:\n%s", out)
	}
}

// TestStormSmall: 20 devices dropped at once all come back.
func TestStormSmall(t *testing.T) {
	bin := gatewaytest.Edgegw(t)
	site := smallSite(t)
	code, out := runTool(t, "storm", "--edgegw", bin, "--site", site, "--run-dir", t.TempDir(),
		"--floors", "1", "--per-floor", "20", "--rounds", "2", "--rate", "120")
	if code != 0 {
		t.Fatalf("storm exit %d; want 0\n%s", code, out)
	}
	if strings.Count(out, "all back: true") != 2 {
		t.Errorf("want 2 rounds all back:\n%s", out)
	}
}

func TestUsage(t *testing.T) {
	tests := []struct {
		args []string
		code int
	}{
		{nil, 2},
		{[]string{"nope"}, 2},
		{[]string{"building", "--no-such-flag"}, 2},
		{[]string{"building", "extra"}, 2},
		{[]string{"help"}, 0},
		{[]string{"storm", "-h"}, 0},
	}
	for _, tc := range tests {
		if code, out := runTool(t, tc.args...); code != tc.code {
			t.Errorf("%v: exit %d; want %d\n%s", tc.args, code, tc.code, out)
		}
	}
}

func TestSiteShape(t *testing.T) {
	for _, tc := range []struct{ floors, per int }{{0, 20}, {1, 3}, {1, 22}, {100, 4}} {
		if _, _, err := OpenSite(context.Background(), filepath.Join(t.TempDir(), "s"), tc.floors, tc.per); err == nil {
			t.Errorf("OpenSite(%d x %d): no error", tc.floors, tc.per)
		}
	}
	ds := buildDevices(2, 8)
	want := []string{"temp-f01-001", "temp-f01-002", "occ-f01-003", "occ-f01-004", "light-f01-005", "light-f01-006", "lock-f01-007", "lock-f01-008", "temp-f02-001"}
	for i, w := range want {
		if ds[i].Name != w {
			t.Errorf("device %d = %s; want %s", i, ds[i].Name, w)
		}
	}
}

// TestRenewSmall is the renew scenario with 48 devices against a real `edgegw run` with an
// enrolment section: each renews over MQTT within 5 s while publishing QoS 1, nothing is lost,
// every old certificate ends on the CRL as superseded and is refused, and the cached site the
// tool started from is left as it was (the renewals ran on a copy).
func TestRenewSmall(t *testing.T) {
	bin := gatewaytest.Edgegw(t)
	site := filepath.Join(t.TempDir(), "site")
	if _, _, err := OpenSite(context.Background(), site, 1, 48); err != nil {
		t.Fatalf("OpenSite: %v", err)
	}
	crl := filepath.Join(site, "pki", pki.CRLFile)
	before, err := os.ReadFile(crl)
	if err != nil {
		t.Fatal(err)
	}
	code, out := runTool(t, "renew", "--edgegw", bin, "--site", site, "--run-dir", t.TempDir(),
		"--floors", "1", "--per-floor", "48", "--window", "5s", "--rate", "120", "--settle", "30s")
	if code != 0 {
		t.Fatalf("renew exit %d; want 0\n%s", code, out)
	}
	for _, want := range []string{"renewed 48/48 (started 48)", "old certificates revoked (CRL superseded, issued.json revoked) 48/48, new ones active 48",
		"old certificates refused by the gateway: 5 of 5 tried", "PASS"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, want := range []string{`\n +lost +0 `, `\n +unexplained +0 `, `\n +acknowledged +[1-9][0-9]* `} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("ledger lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "failed attempts") {
		t.Errorf("renewal attempts failed:\n%s", out)
	}
	if after, err := os.ReadFile(crl); err != nil || !bytes.Equal(before, after) {
		t.Errorf("the source site's CRL changed (err %v): the renewals must run on a copy", err)
	}
}

// TestRenewRefusesAddr: renew revokes certificates, so it never runs against a gateway it did
// not start on a copy of the site.
func TestRenewRefusesAddr(t *testing.T) {
	code, out := runTool(t, "renew", "--addr", "127.0.0.1:1")
	if code != 2 || !strings.Contains(out, "drop --addr") {
		t.Errorf("renew --addr: exit %d; want 2 and the reason\n%s", code, out)
	}
}
