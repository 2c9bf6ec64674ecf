package main

// The scheduler-thread policy as the real daemon applies it: `edgegw run`
// sets GOMAXPROCS to defaultProcs of what the runtime chose, and GOMAXPROCS
// in its environment wins. Read back from the daemon's own /metrics
// (go_sched_gomaxprocs_threads, runtime/metrics through the Go collector).

import (
	"os"
	"runtime"
	"testing"
)

func TestRunProcsPolicy(t *testing.T) {
	cpus := runtime.GOMAXPROCS(0) // what the runtime chooses here, unless this test's own environment set it
	if os.Getenv("GOMAXPROCS") != "" {
		cpus = runtime.NumCPU()
	}
	tests := []struct {
		name string
		env  []string
		want int
	}{
		{"default", []string{"GOMAXPROCS="}, defaultProcs(cpus)}, // empty: unset for the runtime and for run
		{"environment wins", []string{"GOMAXPROCS=3"}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := scrape(t, startGCPolicyDaemon(t, "100MiB", tt.env))
			if got := sample(m, "go_sched_gomaxprocs_threads"); got != float64(tt.want) {
				t.Errorf("go_sched_gomaxprocs_threads %v; want %d", got, tt.want)
			}
		})
	}
}
