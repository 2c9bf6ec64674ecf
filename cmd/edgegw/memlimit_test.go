package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/gateway/config"
)

func TestApplyGCPolicy(t *testing.T) {
	tests := []struct {
		name        string
		limit       config.Size
		machine     int64
		env         map[string]string
		wantLimit   int64 // -1: not set
		wantPercent int   // -1: not set
		wantLog     []string
	}{
		{"config", 140 << 20, 1 << 30, nil, 140 << 20, defaultGCPercent,
			[]string{"memory limit set", "GC pacing set", "gc_percent=50"}},
		{"machine smaller than config", 140 << 20, 100 << 20, nil, 100 << 20, defaultGCPercent,
			[]string{"memory limit lowered to fit the machine", "limit=100MiB", "from=\"test machine\""}},
		{"machine unknown", 140 << 20, 0, nil, 140 << 20, defaultGCPercent, []string{"memory limit set"}},
		{"GOMEMLIMIT wins", 140 << 20, 100 << 20, map[string]string{"GOMEMLIMIT": "300MiB"}, -1, defaultGCPercent,
			[]string{"memory limit from the environment", "GOMEMLIMIT=300MiB"}},
		{"GOMEMLIMIT=off wins", 140 << 20, 1 << 30, map[string]string{"GOMEMLIMIT": "off"}, -1, defaultGCPercent,
			[]string{"GOMEMLIMIT=off"}},
		{"zero leaves no limit", 0, 1 << 30, nil, -1, defaultGCPercent, []string{"no memory limit"}},
		{"GOGC wins", 140 << 20, 1 << 30, map[string]string{"GOGC": "100"}, 140 << 20, -1,
			[]string{"GC pacing from the environment", "GOGC=100"}},
		{"GOGC=off wins", 140 << 20, 1 << 30, map[string]string{"GOGC": "off"}, 140 << 20, -1, []string{"GOGC=off"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, nil))
			gotLimit, gotPercent := int64(-1), -1
			applyGCPolicy(tt.limit, gcSystem{
				getenv:     func(k string) string { return tt.env[k] },
				setLimit:   func(n int64) int64 { gotLimit = n; return 0 },
				setPercent: func(n int) int { gotPercent = n; return 100 },
				machine:    func() (int64, string) { return tt.machine, "test machine" },
			}, log)
			if gotLimit != tt.wantLimit {
				t.Errorf("memory limit set to %d; want %d", gotLimit, tt.wantLimit)
			}
			if gotPercent != tt.wantPercent {
				t.Errorf("GC percent set to %d; want %d", gotPercent, tt.wantPercent)
			}
			for _, w := range tt.wantLog {
				if !strings.Contains(buf.String(), w) {
					t.Errorf("log %q; want it to contain %q", buf.String(), w)
				}
			}
		})
	}
}

// TestMachineMemory reads fake /proc and cgroup v2 trees laid out as the
// kernel and systemd lay them out.
func TestMachineMemory(t *testing.T) {
	const unit = "system.slice/edgegw.service"
	tests := []struct {
		name     string
		meminfo  string // "" : no meminfo
		cgroup   string // /proc/self/cgroup
		high     string // "" : no file
		max      string
		want     int64
		wantFrom string
	}{
		{"Pi 3, no cgroup limit", "MemTotal:         944268 kB\nMemFree:  1 kB\n", "0::/" + unit + "\n", "max\n", "max\n",
			944268 << 10 / 4, "a quarter of MemTotal"},
		{"packaged unit", "MemTotal:         944268 kB\n", "0::/" + unit + "\n", "201326592\n", "268435456\n",
			201326592 / 4 * 3, "three quarters of cgroup memory.high"},
		{"only memory.max", "MemTotal:        8000000 kB\n", "0::/" + unit + "\n", "max\n", "268435456\n",
			268435456 / 4 * 3, "three quarters of cgroup memory.max"},
		{"cgroup limit above a quarter of RAM", "MemTotal:         472000 kB\n", "0::/" + unit + "\n", "", "1073741824\n",
			472000 << 10 / 4, "a quarter of MemTotal"},
		{"cgroup v1 only", "MemTotal:        1000000 kB\n", "4:memory:/" + unit + "\n", "", "",
			1000000 << 10 / 4, "a quarter of MemTotal"},
		{"nothing readable", "", "", "", "", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proc, cg := t.TempDir(), t.TempDir()
			write := func(path, s string) {
				if s == "" {
					return
				}
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			write(filepath.Join(proc, "meminfo"), tt.meminfo)
			write(filepath.Join(proc, "self", "cgroup"), tt.cgroup)
			write(filepath.Join(cg, unit, "memory.high"), tt.high)
			write(filepath.Join(cg, unit, "memory.max"), tt.max)
			got, from := machineMemory(proc, cg)
			if got != tt.want || from != tt.wantFrom {
				t.Errorf("machineMemory = %d, %q; want %d, %q", got, from, tt.want, tt.wantFrom)
			}
		})
	}
}
