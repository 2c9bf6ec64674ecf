package main

import (
	"os"

	"github.com/edgegw/edgegw/cmd/edgegw/demo"
	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newDemoCmd) }

func newDemoCmd(a *app) *cobra.Command {
	var perSensor int
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole pipeline on this machine: nothing to install, no network",
		Long: `Demo creates a throwaway site in a temporary directory (a site CA and a cloud CA,
certificates for three sensors temp-1, light-1, lock-1 and for the gateway), starts an
upstream broker (a second edgegw in broker-only mode with mTLS), starts the gateway bridged
to it, and runs simulated sensors through a story: normal traffic, a denied publish to a
neighbour's topic, a revoked sensor cut off, an upstream outage with messages queued and
then drained. It prints a summary (sent, acked, queued, delivered, lost) and removes
everything it created. Everything listens on 127.0.0.1 only; it runs as any user.

Exit status: 0 when every step happened and nothing was lost, 1 otherwise.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if a.logLevel == "" {
				a.logLevel = "error" // the story is on stdout; the gateways' logs only when asked
			}
			log, err := a.logger(nil)
			if err != nil {
				return err
			}
			live := false
			if f, ok := a.stdout.(*os.File); ok {
				if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
					live = true
				}
			}
			if _, err := demo.Run(cmd.Context(), a.stdout, demo.Options{Logger: log, PerSensor: perSensor, Live: live}); err != nil {
				return &exitError{code: 1} // demo.Run printed why
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&perSensor, "messages", 10, "messages per sensor in each traffic phase")
	return cmd
}
