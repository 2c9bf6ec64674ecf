package broker

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// quiet waits (bounded) until the watcher has made no look at the files for
// n Watch intervals in a row and returns the looks made so far.
func (e *env) quiet(t *testing.T, n int) int64 {
	t.Helper()
	for range 50 {
		c := e.b.watchChecks.Load()
		time.Sleep(time.Duration(n) * e.b.opts.Watch)
		if e.b.watchChecks.Load() == c {
			return c
		}
	}
	t.Fatalf("the file watcher still looks at the files every %s with nothing changing (%d looks); want it idle", e.b.opts.Watch, e.b.watchChecks.Load())
	return 0
}

// TestWatchIdleUntilAFileChanges: with inotify, an idle gateway makes no
// look at its reloadable files (not even when a neighbour of them is
// written), and each way a file changes still reloads it.
func TestWatchIdleUntilAFileChanges(t *testing.T) {
	e := newEnv(t, nil)
	eventually(t, "the first look at the files", func() bool { return e.b.watchChecks.Load() >= 1 })
	c := e.quiet(t, 10)
	if got := e.b.watchChecks.Load(); got != c {
		t.Fatalf("idle: %d looks at the files; want none", got-c)
	}
	// The audit log lives beside devices.yaml in this env: its lines are
	// not a reason to look.
	for range 5 {
		gatewaytest.WriteFile(t, filepath.Join(e.dir, "neighbour.log"), []byte(time.Now().String()), 0o644)
		time.Sleep(e.b.opts.Watch)
	}
	if got := e.b.watchChecks.Load(); got != c {
		t.Fatalf("a neighbour file written: %d looks at the files; want none", got-c)
	}

	sensor := filepath.Join(e.dir, "policies", "sensor.json")
	doc, err := os.ReadFile(sensor)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		change func()
	}{
		{"registry rewritten in place", func() {
			reg, err := os.ReadFile(filepath.Join(e.dir, "devices.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			gatewaytest.WriteFile(t, filepath.Join(e.dir, "devices.yaml"), append(reg, "\n# edited\n"...), 0o644)
		}},
		{"policy replaced by rename, as editors do", func() {
			tmp := filepath.Join(e.dir, "policies", ".sensor.json.swp")
			gatewaytest.WriteFile(t, tmp, append(append([]byte(nil), doc...), ' '), 0o644)
			if err := os.Rename(tmp, sensor); err != nil {
				t.Fatal(err)
			}
		}},
		{"new policy file", func() {
			gatewaytest.WriteFile(t, filepath.Join(e.dir, "policies", "extra.json"), doc, 0o644)
		}},
		{"certificate revoked (CRL rewritten)", func() {
			e.pki.Revoke(t, e.pki.Issue(t, "sensor-x").Cert)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r0 := e.metrics.Reloads.Load()
			tc.change()
			eventually(t, tc.name+": reloaded", func() bool { return e.metrics.Reloads.Load() > r0 })
			c := e.quiet(t, 10)
			if got := e.metrics.Reloads.Load(); got != r0+1 {
				t.Errorf("%d reloads; want 1", got-r0)
			}
			time.Sleep(10 * e.b.opts.Watch)
			if got := e.b.watchChecks.Load(); got != c {
				t.Fatalf("after the reload: %d more looks at unchanged files; want none", got-c)
			}
		})
	}
}

// TestWatchPollsWithoutInotify: where inotify is not to be had, the files
// are polled every Watch interval, as before, and a change still reloads.
func TestWatchPollsWithoutInotify(t *testing.T) {
	init := inotifyInit
	inotifyInit = func(int) (int, error) { return -1, errors.New("no inotify here (test)") }
	t.Cleanup(func() { inotifyInit = init })
	e := newEnv(t, nil)
	eventually(t, "polling", func() bool { return e.b.watchChecks.Load() >= 5 })
	r0 := e.metrics.Reloads.Load()
	e.pki.Revoke(t, e.pki.Issue(t, "sensor-x").Cert)
	eventually(t, "the rewritten CRL reloaded", func() bool { return e.metrics.Reloads.Load() > r0 })
}
