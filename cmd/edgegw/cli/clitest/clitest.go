// Package clitest runs the commands of a room of the edgegw command line in
// tests, as package main does: a root command with --log-level, output in
// memory (or the given streams), exit statuses from *cli.ExitError. The
// binary's own tests run the same commands through main's execute.
//
// It is a test helper: only tests import it (cmd/edgegw/deps_test.go). Of
// this module it imports cli and gateway/config only.
package clitest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/spf13/cobra"

	"github.com/edgegw/edgegw/cmd/edgegw/cli"
	"github.com/edgegw/edgegw/gateway/config"
)

// CLI is the command line around a room in tests.
type CLI struct {
	ctx            context.Context
	stdout, stderr io.Writer
	level          string // --log-level; "" = info
}

var _ cli.CLI = (*CLI)(nil)

func (c *CLI) Context() context.Context { return c.ctx }
func (c *CLI) Stdout() io.Writer        { return c.stdout }
func (c *CLI) Stderr() io.Writer        { return c.stderr }

// Logger logs text to stderr at --log-level (default info).
func (c *CLI) Logger(*config.Config) (*slog.Logger, error) {
	level := c.level
	if level == "" {
		level = "info"
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, &cli.ExitError{Code: 2, Err: fmt.Errorf("--log-level %v", err)}
	}
	return slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: lv})), nil
}

// ConfigError prints every config problem, one a line.
func (c *CLI) ConfigError(err error) error {
	var ce *config.Error
	if errors.As(err, &ce) {
		for _, fe := range ce.Errors {
			fmt.Fprintln(c.stderr, fe.Error())
		}
		return &cli.ExitError{Code: 1}
	}
	return &cli.ExitError{Code: 1, Err: err}
}

func (c *CLI) AdminError(socket string, err error) error {
	return &cli.ExitError{Code: 1, Err: fmt.Errorf("asking %s: %w", socket, err)}
}

func (c *CLI) OutputFlags(cmd *cobra.Command, format *string, legacy *bool) {
	cmd.Flags().StringVarP(format, "output", "o", "table", "table or json")
	cmd.Flags().BoolVar(legacy, "json", false, "same as -o json")
}

func (c *CLI) JSONOutput(format string, legacy bool) (bool, error) {
	if legacy || format == "json" || format == "table" {
		return legacy || format == "json", nil
	}
	return false, cli.Usage("-o %q: want table or json", format)
}

func (c *CLI) WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// NewCLI is a CLI with these streams and context, logging at info.
func NewCLI(ctx context.Context, stdout, stderr io.Writer) *CLI {
	return &CLI{ctx: ctx, stdout: stdout, stderr: stderr}
}

// Execute runs `edgegw ARGS` with the command newCmd makes for the CLI,
// writing to stdout and stderr, and returns the exit status: 0, the
// *cli.ExitError's code (its message printed as "edgegw: ..."), else 1.
func Execute(ctx context.Context, newCmd func(cli.CLI) *cobra.Command, args []string, stdout, stderr io.Writer) int {
	c := NewCLI(ctx, stdout, stderr)
	root := &cobra.Command{Use: "edgegw", SilenceErrors: true, SilenceUsage: true}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&c.level, "log-level", "", "log level (default info)")
	root.AddCommand(newCmd(c))
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	var ee *cli.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ee.Err != nil {
			fmt.Fprintf(stderr, "edgegw: %v\n", ee.Err)
		}
		return ee.Code
	}
	fmt.Fprintf(stderr, "edgegw: %v\n", err)
	return 1
}

// Run is Execute with output in memory: the exit status, stdout and stderr.
func Run(t *testing.T, newCmd func(cli.CLI) *cobra.Command, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Execute(context.Background(), newCmd, args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}
