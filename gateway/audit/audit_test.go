package audit

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFileModeSiteReopen: the audit file is 0640 even under a strict umask,
// every line carries the site, SIGHUP's Reopen after logrotate's rename
// writes a new file, and with a file the lines reach the log only when
// Journal asks for it.
func TestFileModeSiteReopen(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	for _, journal := range []bool{false, true} {
		name := "file only"
		if journal {
			name = "file and journal"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "audit.log")
			var logBuf bytes.Buffer
			a, err := New(Options{File: path, Site: "plant-7", Journal: journal, Log: slog.New(slog.NewTextHandler(&logBuf, nil))})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			a.Record(Event{Event: EventConnect, Device: "sensor-a"})
			if err := os.Rename(path, path+".1"); err != nil { // logrotate
				t.Fatal(err)
			}
			a.Record(Event{Event: EventDisconnect, Device: "sensor-a", Reason: "client disconnected", Duration: 1.5})
			if err := a.Reopen(); err != nil {
				t.Fatalf("Reopen: %v", err)
			}
			a.Record(Event{Event: EventConnect, Device: "sensor-b"})
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
			for _, f := range []struct {
				path  string
				lines []string
			}{
				{path + ".1", []string{`"event":"connect","device":"sensor-a"`, `"event":"disconnect","device":"sensor-a"`}},
				{path, []string{`"event":"connect","device":"sensor-b"`}},
			} {
				fi, err := os.Stat(f.path)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != 0o640 {
					t.Errorf("%s: mode %v; want 0640", filepath.Base(f.path), fi.Mode().Perm())
				}
				data, _ := os.ReadFile(f.path)
				got := strings.Split(strings.TrimSpace(string(data)), "\n")
				if len(got) != len(f.lines) {
					t.Fatalf("%s: %d lines %q; want %d", filepath.Base(f.path), len(got), data, len(f.lines))
				}
				for i, want := range f.lines {
					if !strings.Contains(got[i], want) || !strings.Contains(got[i], `"site":"plant-7"`) {
						t.Errorf("%s line %d: %s; want %s and site plant-7", filepath.Base(f.path), i+1, got[i], want)
					}
				}
			}
			if !strings.Contains(string(mustRead(t, path+".1")), `"duration_seconds":1.5`) {
				t.Errorf("disconnect line lacks duration_seconds: %s", mustRead(t, path+".1"))
			}
			n := strings.Count(logBuf.String(), "msg=audit")
			if want := map[bool]int{false: 0, true: 3}[journal]; n != want {
				t.Errorf("%d audit lines in the log; want %d:\n%s", n, want, logBuf.String())
			}
		})
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCheckFile(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, path, want string }{
		{"no file", "", ""},
		{"new file in existing dir", filepath.Join(dir, "audit.log"), ""},
		{"missing directory", filepath.Join(dir, "nolog", "audit.log"), "does not exist: create it"},
		{"directory is a file", filepath.Join(dir, "f", "audit.log"), "is not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(dir, "f"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			err := CheckFile(tc.path)
			if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("CheckFile(%q) = %v; want %q", tc.path, err, tc.want)
			}
		})
	}
}

// TestDenyFlushTicksOnlyWithAWindowOpen: the loop that reports suppressed
// denies does not wake while no deny window is open; a burst arms it, its
// deny_suppressed line is written when the window ends, and it stops again.
func TestDenyFlushTicksOnlyWithAWindowOpen(t *testing.T) {
	const window = 40 * time.Millisecond
	path := filepath.Join(t.TempDir(), "audit.log")
	a, err := New(Options{File: path, DenyBurst: 1, DenyWindow: window})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.Record(Event{Event: EventConnect, Device: "sensor-a"})
	time.Sleep(10 * window)
	if n := a.ticks.Load(); n != 0 {
		t.Fatalf("no deny yet: %d wakeups; want 0", n)
	}
	for range 3 {
		a.Record(Event{Event: EventDeny, Device: "sensor-a", Action: "iot:Publish"})
	}
	for i := 0; !strings.Contains(string(mustRead(t, path)), `"event":"deny_suppressed"`); i++ {
		if i == 1000 {
			t.Fatalf("no deny_suppressed line within 10s; file:\n%s", mustRead(t, path))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(string(mustRead(t, path)), `"count":2`) {
		t.Errorf("deny_suppressed line without count 2:\n%s", mustRead(t, path))
	}
	var n int64
	for i := 0; ; i++ {
		n = a.ticks.Load()
		time.Sleep(10 * window)
		if a.ticks.Load() == n {
			break
		}
		if i == 20 {
			t.Fatalf("still waking every half window with no window open (%d wakeups)", a.ticks.Load())
		}
	}
	if n == 0 {
		t.Fatal("the suppressed line came without a wakeup of the loop; want it from the loop")
	}
}
