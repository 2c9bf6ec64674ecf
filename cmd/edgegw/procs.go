package main

import (
	"log/slog"
	"os"
	"runtime"
)

// The daemon's Ps (GOMAXPROCS): half the CPUs the process may use, at least
// one, unless GOMAXPROCS is set in the environment.
//
// Why fewer than the CPUs: a message's path through edgegw is a chain of
// short hand-offs between goroutines (the sensor's read loop submits to the
// group commit, the commit wakes the PUBACK worker and the bridge's writer,
// the bridge's reader frees window slots for the writer), each a few
// microseconds of work. Whenever a goroutine is made runnable while a P is
// idle, the Go scheduler wakes another thread to run it (runtime.wakep);
// that thread mostly finds the work already taken by the thread that made
// it runnable, spins, and sleeps again. With one P per CPU on a 2-CPU
// machine that was 0.38 thread wake-ups and 0.62 context switches per
// message (perf probes on runtime.wakep, perf stat), the single largest
// line of the profile (finish_task_switch, 23% of the daemon's CPU), where
// Mosquitto's single-threaded bridge makes 0.07. With half the CPUs the
// hand-offs mostly stay on the thread that made them, while the CPUs left
// over still run what does not need a P: the kernel's side of fdatasync,
// socket writes and TLS peers. Measured with the paho harness
// (BenchmarkEdgegwVsMosquittoPaho, 100,000 messages, this default against
// the build before it, same run, interleaved, median of 3, on a 2-CPU
// machine shared with other load): CPU per delivered message 20.5 / 13.7 /
// 13.4 µs against 26.6 / 16.9 / 15.9 at 1 / 4 / 16 publishers with the
// upstream's Receive Maximum at 20, 17.4 / 11.6 / 10.8 against 23.7 / 14.8
// / 12.2 at 100; context switches per message 0.47 against 0.68, futex
// calls 0.10 against 0.25. The cost: one P held in a syscall (the store's
// fdatasync) holds everything until the runtime's monitor hands the P to
// another thread, 20 µs or more later; on a machine whose CPUs are shared
// with other busy processes, one runnable thread also gets a smaller share
// than two. The delivered rate on that machine moved more from run to run
// than between the two settings: over six runs at Receive Maximum 100 the
// ratio of the medians (this default / before) was 0.78 to 1.35 at 16
// publishers (middle 0.88) and 0.86 to 1.30 at 4 (middle 0.90); at 20 it was
// 0.86 to 1.30 (middle 1.0). A loss of throughput of about 10% at 4 and 16
// publishers is therefore not excluded; GOMAXPROCS in the environment buys
// it back for the CPU.
//
// The runtime's monitor (sysmon) has a second cost that this setting does
// not remove: whenever every P was idle it sleeps until woken, and the
// first syscall after that wakes it and resets its polling to every 20 µs
// for at least 50 polls (runtime/proc.go sysmon, syscallWake). A sensor's
// window arriving after a pause is such a wake-up. Measured with
// gateway/broker's BenchmarkSensorPublish (1 publisher, GOMAXPROCS=1, no
// fsync: no P is ever held in a long syscall): 0.13-0.15 sysmon sleeps
// (nanosleep) per message, about half of the broker's 0.29 context
// switches per message, against 19 P hand-offs (retakes) in 3 s; perf puts
// sysmon at 23% of the broker's CPU there, and at 10-15% of the daemon's
// in the paho harness (1 to 16 publishers, Receive Maximum 20).
//
// An operator who wants every CPU (a gateway whose sensors' TLS alone
// needs more than half the machine) sets GOMAXPROCS in the environment (a
// systemd drop-in: Environment=GOMAXPROCS=4); the log says which applies.
// Setting GOMAXPROCS, here or in the environment, stops the runtime from
// following a later change of the cgroup's CPU limit (Go 1.25's default);
// a restart picks it up.

// procsSystem is what applyProcsPolicy reads and sets.
type procsSystem struct {
	getenv     func(string) string
	gomaxprocs func(int) int // runtime.GOMAXPROCS: n < 1 only reads
}

// defaultProcs is the daemon's GOMAXPROCS for a process that may use cpus
// CPUs (the runtime's own default: the CPUs of its affinity mask, capped by
// the cgroup's CPU limit).
func defaultProcs(cpus int) int {
	return max(1, cpus/2)
}

// applyProcsPolicy sets GOMAXPROCS at start: the environment's GOMAXPROCS
// wins (the runtime has already applied it), otherwise defaultProcs of what
// the runtime chose. It logs what applies.
func applyProcsPolicy(sys procsSystem, log *slog.Logger) {
	log = log.With("component", "main")
	cpus := sys.gomaxprocs(0)
	if env := sys.getenv("GOMAXPROCS"); env != "" {
		log.Info("scheduler threads from the environment", "GOMAXPROCS", env, "procs", cpus)
		return
	}
	n := defaultProcs(cpus)
	if n != cpus {
		sys.gomaxprocs(n)
	}
	log.Info("scheduler threads set", "procs", n, "cpus", cpus)
}

// applyProcsPolicyFromEnv is applyProcsPolicy for the running process.
func applyProcsPolicyFromEnv(log *slog.Logger) {
	applyProcsPolicy(procsSystem{getenv: os.Getenv, gomaxprocs: runtime.GOMAXPROCS}, log)
}
