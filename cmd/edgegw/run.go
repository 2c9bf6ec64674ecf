package main

import (
	"context"
	"log/slog"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/edgegw/edgegw/gateway"
	"github.com/edgegw/edgegw/gateway/config"
)

func (a *app) runCmd() *cobra.Command {
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the gateway daemon (what systemd starts)",
		Long: `Run loads and checks the configuration (the same checks as 'edgegw check'), then
runs the gateway until SIGINT or SIGTERM. Logs go to stderr (journald under systemd).

The Go runtime runs with half the CPUs as scheduler threads (GOMAXPROCS, at least 1):
edgegw's work per message is short hand-offs between goroutines, and with a thread per CPU
each hand-off wakes a second thread that mostly finds nothing to do. GOMAXPROCS in the
environment wins (a systemd drop-in: Environment=GOMAXPROCS=4), as GOGC does for the
collector's pacing (edgegw runs it at 50). The log says which applies.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// A SIGHUP before the gateway catches it (while the config
			// loads) or after (while it shuts down) would end the daemon:
			// ignore it there. Gateway.Run takes it over in between.
			signal.Ignore(syscall.SIGHUP)
			// Flags are checked before the config is read, so a typo in
			// --log-level is reported as such.
			if _, err := a.logger(nil); err != nil {
				return err
			}
			cfg, err := config.Check(cfgPath)
			if err != nil {
				return a.reportConfigError(err)
			}
			log, err := a.logger(cfg)
			if err != nil {
				return err
			}
			log.Info("config loaded", "component", "main", "file", cfgPath, "site", cfg.Site,
				"listeners", len(cfg.Listeners), "routes", routeCount(cfg), "version", version)
			applyGCPolicyFromConfig(cfg, log)
			applyProcsPolicyFromEnv(log)
			if err := checkAdminSocketDir(cfg.Admin.Socket, true); err != nil {
				return &exitError{code: 1, err: err}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return runGateway(ctx, cfg, log)
		},
	}
	addConfigFlag(cmd, &cfgPath)
	return cmd
}

// runGateway is the daemon's whole life: build the gateway, run it until
// ctx ends. Under systemd (Type=notify, see sdnotify.go) it reports READY once
// the listeners accept and the queue is open, RELOADING/READY around every
// SIGHUP reload, STOPPING when shutdown begins, and pings the watchdog while
// the gateway is healthy.
func runGateway(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	g, err := gateway.New(cfg, log)
	if err != nil {
		return err
	}
	log = log.With("component", "main")
	notify := func(state string) {
		if _, err := sdNotify(state); err != nil {
			log.Warn("systemd notification failed", "state", strings.SplitN(state, "\n", 2)[0], "err", err)
		}
	}
	running := "listeners up, queue open"
	if cfg.Bridge == nil {
		running = "listeners up (no bridge: local broker only)"
	}
	wdCtx, wdStop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { wdStop(); wg.Wait() }()
	g.SetLifecycle(gateway.Lifecycle{
		Ready: func(healthy func() error) {
			notify(sdReady + "\n" + sdStatus(running))
			wg.Add(1)
			go func() { defer wg.Done(); sdWatchdog(wdCtx, watchdogProbe(log, healthy)) }()
		},
		Reloading: func() { notify(sdReloadingNow() + "\n" + sdStatus("reloading")) },
		Reloaded: func(err error) {
			status := running + "; reloaded"
			if err != nil {
				status = running + "; last reload failed (see the log): " + err.Error()
			}
			notify(sdReady + "\n" + sdStatus(status))
		},
		Stopping: func() {
			wdStop()
			notify(sdStopping + "\n" + sdStatus("stopping"))
		},
	})
	if err := g.Run(ctx); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// watchdogProbe wraps healthy for sdWatchdog: it logs when the gateway turns
// unhealthy (the pings stop, so systemd will restart it) and when it recovers.
func watchdogProbe(log *slog.Logger, healthy func() error) func() error {
	var failing bool // only sdWatchdog's goroutine calls the probe
	return func() error {
		err := healthy()
		switch {
		case err != nil && !failing:
			log.Error("unhealthy: not pinging the systemd watchdog", "err", err)
		case err == nil && failing:
			log.Info("healthy again: pinging the systemd watchdog")
		}
		failing = err != nil
		return err
	}
}

func routeCount(cfg *config.Config) int {
	if cfg.Bridge == nil {
		return 0
	}
	return len(cfg.Bridge.Routes)
}
