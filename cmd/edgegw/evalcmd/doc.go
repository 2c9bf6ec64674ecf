// Package evalcmd is the offline evaluation commands of edgegw: `edgegw
// policy test` decides one request as the broker would (the registry and the
// AWS IoT-style policies the config names, gateway/authz through
// broker.CheckPolicy, the broker's own loading) and says why; `edgegw rule
// test` evaluates one AWS IoT SQL statement on one message (gateway/rules).
// Neither needs a running daemon, a broker or the queue.
//
// It is a room of the edgegw command line: package main adds it with
// NewPolicy and NewRule and provides the CLI (cmd/edgegw/cli); an error that
// carries an exit status is a *cli.ExitError. It is a client of the
// gateway's public API (the broker's offline loaders CheckPolicy and
// ReadCertChain, config, authz, rules), not of the running daemon. It must
// not import mochi-mqtt, badger, prometheus or paho itself; only cmd/edgegw
// imports it (cmd/edgegw/deps_test.go). `edgegw check`'s own rule, policy
// and authorizer check stays with check in cmd/edgegw.
package evalcmd

import "github.com/edgegw/edgegw/cmd/edgegw/cli"

// app is the command line around the evaluation commands, as their
// functions use it.
type app struct {
	cli.CLI
	defaultConfig string // -c's default (policy test)
}
