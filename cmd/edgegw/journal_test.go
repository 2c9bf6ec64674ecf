package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

func TestPriorityWriter(t *testing.T) {
	for _, tc := range []struct{ name, line, want string }{
		{"text error", "level=ERROR msg=x\n", "<3>level=ERROR msg=x\n"},
		{"text warn", "level=WARN msg=x\n", "<4>level=WARN msg=x\n"},
		{"text info", "level=INFO msg=x\n", "<6>level=INFO msg=x\n"},
		{"text debug", "level=DEBUG msg=x\n", "<7>level=DEBUG msg=x\n"},
		{"json warn", `{"level":"WARN","msg":"x"}` + "\n", `<4>{"level":"WARN","msg":"x"}` + "\n"},
		{"unknown", "something\n", "<6>something\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			n, err := priorityWriter{&b}.Write([]byte(tc.line))
			if err != nil || n != len(tc.line) || b.String() != tc.want {
				t.Errorf("got %q, %d, %v; want %q, %d, nil", b.String(), n, err, tc.want, len(tc.line))
			}
		})
	}
}

// TestJournalPriorities runs the real binary with stderr on a file named by
// JOURNAL_STREAM (as systemd sets it for the journal): every line carries an
// sd-daemon priority, info for the start, err for the refusal, and no
// time= field (journald stamps lines itself). Without JOURNAL_STREAM, plain
// lines with time.
func TestJournalPriorities(t *testing.T) {
	s := newCheckRunSite(t)
	if err := os.MkdirAll(filepath.Join(s.dir, "log"), 0o750); err != nil {
		t.Fatal(err)
	}
	s.vals["audit"] = filepath.Join(s.dir, "nolog", "audit.log") // run refuses it after "config loaded"
	s.write(t)
	for _, journal := range []bool{true, false} {
		t.Run(fmt.Sprintf("journal=%v", journal), func(t *testing.T) {
			f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var st syscall.Stat_t
			if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
				t.Fatal(err)
			}
			// Bounded: a run that starts after all is stopped and fails below.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, gatewaytest.Edgegw(t), "run", "-c", s.conf)
			cmd.Env = append(os.Environ(), "JOURNAL_STREAM=")
			if journal {
				cmd.Env = append(os.Environ(), fmt.Sprintf("JOURNAL_STREAM=%d:%d", st.Dev, st.Ino))
			}
			cmd.Stderr = f
			cmd.WaitDelay = 5 * time.Second
			_ = cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("edgegw run with audit.file in a missing directory was still running after 30s; want a refusal")
			}
			out, _ := os.ReadFile(f.Name())
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if len(lines) < 2 {
				t.Fatalf("stderr %q; want a start line and a refusal", out)
			}
			first, last := lines[0], lines[len(lines)-1]
			if journal {
				if !strings.HasPrefix(first, "<6>level=INFO ") || !strings.Contains(first, `msg="config loaded"`) {
					t.Errorf("first line %q; want <6>level=INFO ... config loaded", first)
				}
				if !strings.HasPrefix(last, "<3>edgegw: ") {
					t.Errorf("last line %q; want <3>edgegw: ...", last)
				}
				for _, l := range lines {
					if !strings.HasPrefix(l, "<") || strings.Contains(l, "time=") {
						t.Errorf("line %q; want a priority prefix and no time=", l)
					}
				}
			} else {
				if !strings.HasPrefix(first, "time=") || strings.HasPrefix(last, "<") {
					t.Errorf("lines %q ... %q; want time= first and no priority prefix", first, last)
				}
			}
		})
	}
}
