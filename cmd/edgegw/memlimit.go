package main

import (
	"bufio"
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/edgegw/edgegw/gateway/config"
)

// defaultGCPercent is the collector's pacing (GOGC) the daemon runs with
// unless GOGC is set in the environment. Go's default, 100, lets the heap
// grow to twice what survived the last collection before the next one; most
// of what survives in a burst is big, pointer-free buffers (badger's
// memtable arenas, table builders, block cache) that cost the collector
// almost nothing to mark, so collecting at 1.5x instead of 2x is cheap.
// Measured (BenchmarkEdgegwVsMosquittoPaho's edgegw, 100,000-message
// bursts, 1 MiB memtables, 2 rounds, 1/4/16 publishers): peak RSS 52-55/
// 53-54/59-61 MiB at 100 against 45/46-48/54-55 at 50, for 21.5-25.5/
// 14.6-15.2/15.0-15.7 µs of CPU per message against 24.2-24.9/15.9-16.3/
// 15.5-16.8; see packaging/edgegw.service. Measured again with the
// segment queue (100,000-message bursts, median of 3, against the build at
// 50 in the same run): GOGC 100 gave 15.7/12.9/12.9 µs against 18.0/13.5/
// 15.3 with the text payload but 18.2/14.2/12.6 against 18.1/14.3/13.9 with
// EDGEGW_BENCH_PAHO_PAYLOAD=random, where peak RSS was 48-51/51-52/59-70
// MiB against 43-44/44-46/53-66 (three rounds each): 6-7 MiB more at 1 and
// 4 publishers and up to 70 at 16, where 50 already passes the 64 MiB the
// product promises, for a CPU gain that did not hold from run to run.
// The soft memory limit still caps the heap where many sessions make the
// live set large (there the limit, not GOGC, sets the pace).
const defaultGCPercent = 50

// gcSystem is what applyGCPolicy reads and sets: the environment, the
// runtime's knobs, and the machine's memory (machineMemory).
type gcSystem struct {
	getenv     func(string) string
	setLimit   func(int64) int64 // runtime/debug.SetMemoryLimit
	setPercent func(int) int     // runtime/debug.SetGCPercent
	machine    func() (bytes int64, from string)
}

// applyGCPolicy sets the Go runtime's soft memory limit and GC pacing at
// start. The memory limit: GOMEMLIMIT in the environment wins (a systemd
// drop-in, an operator measuring; the runtime has already read it);
// otherwise limits.memory_limit (0: no limit), lowered to a quarter of the
// machine's memory or three quarters of the service's cgroup limit when
// those are smaller (machineMemory): a 512 MiB Pi Zero 2 gets about 110
// MiB, a 1 GiB Pi 3 the configured 140MiB. The pacing: GOGC in the
// environment wins, otherwise defaultGCPercent. It logs what applies and
// why.
func applyGCPolicy(limit config.Size, sys gcSystem, log *slog.Logger) {
	log = log.With("component", "main")
	switch env := sys.getenv("GOMEMLIMIT"); {
	case env != "":
		log.Info("memory limit from the environment; limits.memory_limit ignored", "GOMEMLIMIT", env, "memory_limit", limit.String())
	case limit == 0:
		log.Info("no memory limit (limits.memory_limit: 0)")
	default:
		n := limit.Bytes()
		if cap, from := sys.machine(); cap > 0 && cap < n {
			log.Info("memory limit lowered to fit the machine", "memory_limit", limit.String(),
				"limit", config.Size(cap).String(), "from", from)
			n = cap
		} else {
			log.Info("memory limit set", "memory_limit", limit.String())
		}
		sys.setLimit(n)
	}
	if env := sys.getenv("GOGC"); env != "" {
		log.Info("GC pacing from the environment", "GOGC", env)
		return
	}
	sys.setPercent(defaultGCPercent)
	log.Info("GC pacing set", "gc_percent", defaultGCPercent)
}

// applyGCPolicyFromConfig is applyGCPolicy for the running process.
func applyGCPolicyFromConfig(cfg *config.Config, log *slog.Logger) {
	applyGCPolicy(cfg.Limits.MemoryLimit, gcSystem{
		getenv: os.Getenv, setLimit: debug.SetMemoryLimit, setPercent: debug.SetGCPercent,
		machine: func() (int64, string) { return machineMemory("/proc", "/sys/fs/cgroup") },
	}, log)
}

// machineMemory is the largest soft memory limit the machine leaves room
// for, and what set it: a quarter of MemTotal (proc/meminfo), or three
// quarters of the tightest of the process's cgroup v2 memory.high and
// memory.max (systemd's MemoryHigh=, MemoryMax=) when that is less. The
// rest is for what the limit does not count and the kernel does: the
// binary's pages, the queue's mmapped files and page cache, other
// processes. 0 when none of them can be read (cgroup v1 is not read).
func machineMemory(proc, cgroupRoot string) (n int64, from string) {
	if b, err := os.ReadFile(filepath.Join(proc, "meminfo")); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				if kb, err := strconv.ParseInt(strings.Fields(v + " x")[0], 10, 64); err == nil && kb > 0 {
					n, from = kb<<10/4, "a quarter of MemTotal"
				}
			}
		}
	}
	b, err := os.ReadFile(filepath.Join(proc, "self", "cgroup"))
	if err != nil {
		return n, from
	}
	for _, l := range strings.Split(string(b), "\n") {
		rel, ok := strings.CutPrefix(l, "0::")
		if !ok {
			continue
		}
		for _, f := range []string{"memory.high", "memory.max"} {
			v, err := os.ReadFile(filepath.Join(cgroupRoot, rel, f))
			if err != nil {
				continue
			}
			lim, err := strconv.ParseInt(strings.TrimSpace(string(v)), 10, 64) // "max": no limit
			if err == nil && lim > 0 && (n == 0 || lim/4*3 < n) {
				n, from = lim/4*3, "three quarters of cgroup "+f
			}
		}
	}
	return n, from
}
