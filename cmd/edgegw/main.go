// Command edgegw is the edge gateway appliance: one binary with subcommands
// (run, check, version; later pki, key, policy, queue, status, demo). It
// parses flags, loads the config through config.Load/config.Check and
// hands it to gateway.New(...).Run(ctx). It is the only importer of package
// gateway; it must not import mochi-mqtt or badger directly.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/edgegw/edgegw/gateway/config"
	"github.com/spf13/cobra"
)

// Set by the Makefile: -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "dev"
)

// defaultConfig is where the package installs the config.
const defaultConfig = "/etc/edgegw/edgegw.yaml"

func main() {
	os.Exit(execute(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// app is what every subcommand shares: output streams, the global flags and
// the context that ends on SIGINT/SIGTERM.
type app struct {
	ctx            context.Context
	stdout, stderr io.Writer
	logLevel       string // --log-level; "" = from the config, else info
	logFormat      string // --log-format; "" = from the config, else text
}

// extraCommands lets files for later subcommands (pki.go, key.go, man.go, ...)
// register themselves without editing this file:
//
//	func init() { extraCommands = append(extraCommands, newPKICmd) }
var extraCommands []func(*app) *cobra.Command

// exitError carries an exit code; its message (if any) is printed once.
type exitError struct {
	code int
	err  error // nil: already reported
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

// execute runs the command line args and returns the process exit code:
// 0 success, 1 failure (invalid config, runtime error), 2 usage error.
func execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{ctx: ctx, stdout: stdout, stderr: stderr}
	root := a.rootCmd()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	prio := ""
	if onJournal(stderr) {
		prio = "<3>" // journal.go: the failure at priority err
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(stderr, "%sedgegw: %v\n", prio, ee.err)
		}
		return ee.code
	}
	fmt.Fprintf(stderr, "%sedgegw: %v\n", prio, err)
	if strings.HasPrefix(err.Error(), "unknown command ") {
		return 2
	}
	return 1
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "edgegw",
		Short: "MQTT edge gateway: local mTLS broker, policies, durable queue, upstream bridge",
		Long: `edgegw is an MQTT edge gateway appliance. Sensors on the LAN connect with their own
X.509 certificates to a local broker; AWS IoT-style policies decide what each may do;
matching messages are queued durably and bridged to one upstream MQTT broker.

The configuration is /etc/edgegw/edgegw.yaml; check it with 'edgegw check' before
every reload.

Machine-readable output: every command that prints a result (status, devices, check,
queue stats|peek|purge|replay, pki init|import-ca|issue|sign|claim|revoke|crl|server|list,
policy test, rule test, key info|create, shadow, passwd, version) takes -o json and then
prints one JSON document on stdout, with the same exit status; errors stay on stderr.
Each command's help lists its document's keys, types and units. Keys are snake_case; a
quantity carries its unit in its name (_seconds, _bytes); times are RFC 3339 in UTC and
left out when not known; empty lists are [], never null; payloads are base64.
'queue export' writes JSON lines instead.
shadow prints the shadow service's documents as they are (AWS's keys). import mosquitto
and key csr use -o for their output path and print no JSON.`,
		Version:       version,
		SilenceErrors: true, // execute prints the error once
		SilenceUsage:  true, // a failed run is not a usage error
	}
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetVersionTemplate(versionLine() + "\n")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &exitError{code: 2, err: fmt.Errorf("%w (see '%s --help')", err, cmd.CommandPath())}
	})
	pf := root.PersistentFlags()
	pf.StringVar(&a.logLevel, "log-level", "", "log level: debug, info, warn or error (default: log.level from the config, else info)")
	pf.StringVar(&a.logFormat, "log-format", "", "log format: text or json (default: log.format from the config, else text)")
	root.AddCommand(a.runCmd(), a.checkCmd(), a.versionCmd())
	for _, newCmd := range extraCommands {
		root.AddCommand(newCmd(a))
	}
	addCompletions(root) // completion.go
	addJSONSchemas(root) // output_schema.go
	return root
}

// addConfigFlag adds -c/--config to a subcommand that reads the config.
func addConfigFlag(cmd *cobra.Command, path *string) {
	cmd.Flags().StringVarP(path, "config", "c", defaultConfig, "config file")
}

// logger builds the slog logger from the flags, falling back to the config's
// log section (cfg may be nil). It is passed down, never installed globally.
func (a *app) logger(cfg *config.Config) (*slog.Logger, error) {
	level, format := "info", "text"
	if cfg != nil {
		level, format = cfg.Log.Level, cfg.Log.Format
	}
	if a.logLevel != "" {
		level = a.logLevel
	}
	if a.logFormat != "" {
		format = a.logFormat
	}
	lv, err := config.ParseLogLevel(level)
	if err != nil {
		return nil, &exitError{code: 2, err: fmt.Errorf("--log-level %v", err)}
	}
	opts := &slog.HandlerOptions{Level: slog.Level(lv)}
	out := a.stderr
	if onJournal(out) { // journal.go: priorities, no second timestamp
		out, opts = priorityWriter{out}, journalHandlerOptions(opts)
	}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(out, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(out, opts)), nil
	}
	return nil, &exitError{code: 2, err: fmt.Errorf("--log-format %q: want text or json", format)}
}

// reportConfigError prints every config problem to stderr, one a line, and
// returns an exitError that execute does not print again.
func (a *app) reportConfigError(err error) error {
	var ce *config.Error
	if !errors.As(err, &ce) {
		return &exitError{code: 1, err: err}
	}
	for _, fe := range ce.Errors {
		fmt.Fprintln(a.stderr, fe.Error())
	}
	n := len(ce.Errors)
	plural := "s"
	if n == 1 {
		plural = ""
	}
	fmt.Fprintf(a.stderr, "edgegw: %d problem%s in the configuration\n", n, plural)
	return &exitError{code: 1}
}
