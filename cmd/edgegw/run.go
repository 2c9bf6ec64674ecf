package main

import (
	"context"
	"log/slog"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/edgegw/edgegw/gateway"
)

func (a *app) runCmd() *cobra.Command {
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the gateway daemon (what systemd starts)",
		Long: `Run loads and checks the configuration (the same checks as 'edgegw check'), then
runs the gateway until SIGINT or SIGTERM. Logs go to stderr (journald under systemd).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Flags are checked before the config is read, so a typo in
			// --log-level is reported as such.
			if _, err := a.logger(nil); err != nil {
				return err
			}
			cfg, err := gateway.Check(cfgPath)
			if err != nil {
				return a.reportConfigError(err)
			}
			log, err := a.logger(cfg)
			if err != nil {
				return err
			}
			log.Info("config loaded", "component", "main", "file", cfgPath, "site", cfg.Site,
				"listeners", len(cfg.Listeners), "routes", routeCount(cfg), "version", version)
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return runGateway(ctx, cfg, log)
		},
	}
	addConfigFlag(cmd, &cfgPath)
	return cmd
}

// runGateway is the daemon's whole life: build the gateway, run it until
// ctx ends.
func runGateway(ctx context.Context, cfg *gateway.Config, log *slog.Logger) error {
	g, err := gateway.New(cfg, log)
	if err != nil {
		return err
	}
	if err := g.Run(ctx); err != nil {
		return err
	}
	log.Info("stopped", "component", "main")
	return nil
}

func routeCount(cfg *gateway.Config) int {
	if cfg.Bridge == nil {
		return 0
	}
	return len(cfg.Bridge.Routes)
}
