// Package queuecmd is `edgegw queue`: stats, peek, purge, export and replay of
// dead letters on the durable queue, and the hidden self-test `queue smoke`.
// While the daemon is stopped the commands open the queue (store) directly;
// while it runs (it holds the queue's lock) they go through its admin socket
// (observe), where each operation is audited.
//
// It is a room of the edgegw command line: package main adds it with New and
// provides the CLI (output streams, the logger from the global flags, the JSON
// output convention, how config and admin socket failures are reported). An
// error that carries an exit status is an *ExitError.
//
// It is a client of the gateway's public API: config to read the setup,
// gateway for the queue's store options (gateway.StoreOptionsFromConfig,
// StoreOptionsForBridge), store to open the queue, observe to ask the daemon.
// It must not import mochi-mqtt, badger (the store's), prometheus (observe's)
// or paho, and only cmd/edgegw imports it (cmd/edgegw/deps_test.go). The
// tests of the whole binary that drive these commands against a running
// daemon (queue_live_e2e_test.go, queue_open_e2e_test.go) stay beside the
// binary in cmd/edgegw.
package queuecmd

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/edgegw/edgegw/gateway/config"
)

// CLI is what the queue commands need from the command line around them.
type CLI interface {
	// Context ends on SIGINT/SIGTERM; Stdout and Stderr are the output streams.
	Context() context.Context
	Stdout() io.Writer
	Stderr() io.Writer
	// Logger is the logger the global flags ask for, else cfg's log section
	// (cfg may be nil).
	Logger(cfg *config.Config) (*slog.Logger, error)
	// ConfigError reports a config that did not load (every problem, one a
	// line) and returns the error to exit with.
	ConfigError(err error) error
	// AdminError turns a failure to ask the daemon at socket into the
	// message and exit status.
	AdminError(socket string, err error) error
	// OutputFlags adds -o/--output (table|json); JSONOutput reads it;
	// WriteJSON prints one document by the JSON output convention.
	OutputFlags(cmd *cobra.Command, format *string, legacy *bool)
	JSONOutput(format string, legacy bool) (bool, error)
	WriteJSON(w io.Writer, v any) error
}

// app is the CLI as the commands' methods use it.
type app struct{ CLI }

// ExitError carries the process exit status of a failed command: 1 error, 2
// usage. Its message, if any (Err nil: already reported), is printed once.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func usageError(format string, args ...any) error {
	return &ExitError{Code: 2, Err: fmt.Errorf(format, args...)}
}
