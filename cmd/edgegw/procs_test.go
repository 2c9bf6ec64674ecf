package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestDefaultProcs(t *testing.T) {
	for cpus, want := range map[int]int{1: 1, 2: 1, 3: 1, 4: 2, 8: 4} {
		if got := defaultProcs(cpus); got != want {
			t.Errorf("defaultProcs(%d) = %d; want %d", cpus, got, want)
		}
	}
}

func TestApplyProcsPolicy(t *testing.T) {
	tests := []struct {
		name    string
		cpus    int
		env     string
		want    int // -1: not set
		wantLog []string
	}{
		{"half of 4", 4, "", 2, []string{"scheduler threads set", "procs=2", "cpus=4"}},
		{"half of 2", 2, "", 1, []string{"procs=1", "cpus=2"}},
		{"one CPU left alone", 1, "", -1, []string{"procs=1", "cpus=1"}},
		{"environment wins", 4, "4", -1, []string{"scheduler threads from the environment", "GOMAXPROCS=4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			got := -1
			applyProcsPolicy(procsSystem{
				getenv: func(k string) string {
					if k == "GOMAXPROCS" {
						return tt.env
					}
					return ""
				},
				gomaxprocs: func(n int) int {
					if n >= 1 {
						got = n
					}
					return tt.cpus
				},
			}, slog.New(slog.NewTextHandler(&buf, nil)))
			if got != tt.want {
				t.Errorf("GOMAXPROCS set to %d; want %d", got, tt.want)
			}
			for _, w := range tt.wantLog {
				if !strings.Contains(buf.String(), w) {
					t.Errorf("log %q; want it to contain %q", buf.String(), w)
				}
			}
		})
	}
}
