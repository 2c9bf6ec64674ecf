package main

import (
	"context"
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/edgegw/edgegw/cmd/edgegw/cli"
	"github.com/edgegw/edgegw/cmd/edgegw/shadowcmd"
	"github.com/edgegw/edgegw/gateway/config"
)

// The rooms of the command line (queuecmd, ...) are their own packages; each
// asks for the command line around it as a cli.CLI, which appCLI is: the app
// every command shares. Their *cli.ExitError is turned into an exit status
// by execute.

// appCLI is the app as cli.CLI (and shadowcmd.CLI: where the admin socket is, status.go).
type appCLI struct{ a *app }

var (
	_ cli.CLI       = appCLI{}
	_ shadowcmd.CLI = appCLI{}
)

func (c appCLI) Context() context.Context                        { return c.a.ctx }
func (c appCLI) Stdout() io.Writer                               { return c.a.stdout }
func (c appCLI) Stderr() io.Writer                               { return c.a.stderr }
func (c appCLI) Logger(cfg *config.Config) (*slog.Logger, error) { return c.a.logger(cfg) }
func (c appCLI) ConfigError(err error) error                     { return c.a.reportConfigError(err) }
func (appCLI) AdminError(socket string, err error) error         { return adminError(socket, err) }
func (appCLI) JSONOutput(format string, legacy bool) (bool, error) {
	return jsonOutput(format, legacy)
}
func (appCLI) WriteJSON(w io.Writer, v any) error { return writeJSONOut(w, v) }
func (appCLI) AdminSocket(flag, cfgPath string, explicit bool) (string, error) {
	return adminSocketPath(flag, cfgPath, explicit)
}
func (appCLI) DefaultAdminSocket() string { return defaultAdminSocket }
func (appCLI) OutputFlags(cmd *cobra.Command, format *string, legacy *bool) {
	outputFlags(cmd, format, legacy)
}
