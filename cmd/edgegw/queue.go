package main

import (
	"context"
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/edgegw/edgegw/cmd/edgegw/queuecmd"
	"github.com/edgegw/edgegw/gateway/config"
)

// The queue commands are their own room (queuecmd); this is their place on
// the command line: the CLI they ask for, from the app every command shares.
// Their *queuecmd.ExitError is turned into an exit status by execute.

func init() {
	extraCommands = append(extraCommands, func(a *app) *cobra.Command { return queuecmd.New(queueCLI{a}, defaultConfig) })
}

// queueCLI is the app as queuecmd.CLI.
type queueCLI struct{ a *app }

var _ queuecmd.CLI = queueCLI{}

func (c queueCLI) Context() context.Context                        { return c.a.ctx }
func (c queueCLI) Stdout() io.Writer                               { return c.a.stdout }
func (c queueCLI) Stderr() io.Writer                               { return c.a.stderr }
func (c queueCLI) Logger(cfg *config.Config) (*slog.Logger, error) { return c.a.logger(cfg) }
func (c queueCLI) ConfigError(err error) error                     { return c.a.reportConfigError(err) }
func (queueCLI) AdminError(socket string, err error) error         { return adminError(socket, err) }
func (queueCLI) JSONOutput(format string, legacy bool) (bool, error) {
	return jsonOutput(format, legacy)
}
func (queueCLI) WriteJSON(w io.Writer, v any) error { return writeJSONOut(w, v) }
func (queueCLI) OutputFlags(cmd *cobra.Command, format *string, legacy *bool) {
	outputFlags(cmd, format, legacy)
}
