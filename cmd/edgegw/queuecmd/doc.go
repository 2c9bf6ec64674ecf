// Package queuecmd is `edgegw queue`: stats, peek, purge, export and replay of
// dead letters on the durable queue, and the hidden self-test `queue smoke`.
// While the daemon is stopped the commands open the queue (store) directly;
// while it runs (it holds the queue's lock) they go through its admin socket
// (observe), where each operation is audited.
//
// It is a room of the edgegw command line: package main adds it with New and
// provides the CLI (cmd/edgegw/cli: output streams, the logger from the
// global flags, the JSON output convention, how config and admin socket
// failures are reported). An error that carries an exit status is an
// *ExitError (cli.ExitError).
//
// It is a client of the gateway's public API: config to read the setup,
// gateway/uplink for the queue's store options (uplink.StoreOptionsFromConfig,
// StoreOptionsForBridge), store to open the queue, observe to ask the daemon.
// It must not import mochi-mqtt, badger (the store's), prometheus (observe's)
// or paho, and only cmd/edgegw imports it (cmd/edgegw/deps_test.go). The
// tests of the whole binary that drive these commands against a running
// daemon (queue_live_e2e_test.go, queue_open_e2e_test.go) stay beside the
// binary in cmd/edgegw.
package queuecmd

import (
	"fmt"

	"github.com/edgegw/edgegw/cmd/edgegw/cli"
)

// CLI is what the queue commands need from the command line around them:
// the one interface every room of the command line shares (cli.CLI).
type CLI = cli.CLI

// app is the CLI as the commands' methods use it.
type app struct{ CLI }

// ExitError carries the process exit status of a failed command: 1 error, 2
// usage (cli.ExitError, which main's execute turns into the exit status).
type ExitError = cli.ExitError

func usageError(format string, args ...any) error {
	return &ExitError{Code: 2, Err: fmt.Errorf(format, args...)}
}
