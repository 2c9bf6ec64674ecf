package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDemo runs `edgegw demo` and checks the story happened and nothing was
// lost. The demo makes its own temporary site and removes it.
func TestDemo(t *testing.T) {
	code, out, errOut := edgegw(t, "demo")
	t.Logf("edgegw demo:\n%s", out)
	if code != 0 {
		t.Fatalf("demo: exit %d; stderr:\n%s", code, errOut)
	}
	for _, want := range []string{
		"ok  upstream broker up: a second edgegw in broker-only mode",
		"ok  gateway up:",
		"ok  normal traffic: 3 sensors, 30 messages acked by the gateway, all delivered upstream",
		"ok  denied: temp-1 -> building/lock-1/state",
		"ok  revoked: lock-1 cut off at once",
		"ok  upstream outage: link cut, 20 messages acked by the gateway and queued on disk (edgegw_queue_depth{route=\"telemetry\"} 20)",
		"ok  upstream back: the queue drained",
		"denied 1, revoked sensor cut off: true",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	m := regexp.MustCompile(`summary: sent (\d+), acked (\d+), queued (\d+) \(peak during the outage\), delivered (\d+), duplicates \d+, lost (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no summary line in the output")
	}
	if m[1] != "50" || m[2] != "50" || m[3] != "20" || m[4] != "50" || m[5] != "0" {
		t.Errorf("summary: sent %s acked %s queued %s delivered %s lost %s; want 50 50 20 50 0", m[1], m[2], m[3], m[4], m[5])
	}
	dir := regexp.MustCompile(`the temporary site (\S+) is removed`).FindStringSubmatch(out)
	if dir == nil || !strings.HasPrefix(dir[1], filepath.Join(os.TempDir(), "edgegw-demo-")) {
		t.Fatalf("the output does not name the temporary site")
	}
	if _, err := os.Stat(dir[1]); !os.IsNotExist(err) {
		t.Errorf("demo left %s behind: %v", dir[1], err)
	}
}
