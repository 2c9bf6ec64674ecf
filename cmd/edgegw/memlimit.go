package main

import (
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/edgegw/edgegw/gateway/config"
)

// applyMemoryLimit sets the Go runtime's soft memory limit from
// limits.memory_limit, unless GOMEMLIMIT is set in the environment: the
// environment wins (a systemd drop-in, an operator measuring), and the
// runtime has already read it. It logs which one applies. The limit makes
// the collector run more often as the heap plus goroutine stacks approach
// it, instead of letting GOGC=100 double them (2,000 sessions: about 230 MiB
// RSS without it, see packaging/edgegw.service).
func applyMemoryLimit(limit config.Size, getenv func(string) string, set func(int64) int64, log *slog.Logger) {
	log = log.With("component", "main")
	if env := getenv("GOMEMLIMIT"); env != "" {
		log.Info("memory limit from the environment; limits.memory_limit ignored", "GOMEMLIMIT", env, "memory_limit", limit.String())
		return
	}
	if limit == 0 {
		log.Info("no memory limit (limits.memory_limit: 0): the Go collector's default pacing (GOGC)")
		return
	}
	set(limit.Bytes())
	log.Info("memory limit set", "memory_limit", limit.String())
}

// applyMemoryLimitFromConfig is applyMemoryLimit for the running process.
func applyMemoryLimitFromConfig(cfg *config.Config, log *slog.Logger) {
	applyMemoryLimit(cfg.Limits.MemoryLimit, os.Getenv, debug.SetMemoryLimit, log)
}
