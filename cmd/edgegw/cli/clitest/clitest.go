// Package clitest runs the commands of a room of the edgegw command line in
// tests, as package main does: a root command with --log-level, output in
// memory (or the given streams), exit statuses from *cli.ExitError. The
// binary's own tests run the same commands through main's execute. It also
// holds the one checker of the JSON output convention (ConventionProblems).
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
	"regexp"
	"strings"
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
// writing to stdout and stderr, and returns the exit status as main's
// execute does: 0, the *cli.ExitError's code (its message printed as
// "edgegw: ..."; a bad flag is 2), 2 for an unknown command, else 1.
func Execute(ctx context.Context, newCmd func(cli.CLI) *cobra.Command, args []string, stdout, stderr io.Writer) int {
	c := NewCLI(ctx, stdout, stderr)
	root := &cobra.Command{Use: "edgegw", SilenceErrors: true, SilenceUsage: true}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &cli.ExitError{Code: 2, Err: fmt.Errorf("%w (see '%s --help')", err, cmd.CommandPath())}
	})
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
	if strings.HasPrefix(err.Error(), "unknown command ") {
		return 2
	}
	return 1
}

// Run is Execute with output in memory: the exit status, stdout and stderr.
func Run(t *testing.T, newCmd func(cli.CLI) *cobra.Command, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Execute(context.Background(), newCmd, args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

var snakeKey = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// ConventionProblems walks a JSON document (as encoding/json decodes it into
// any) and lists what breaks the output convention of the command line
// (cmd/edgegw's output.go): non-snake_case keys, nulls, zero times,
// nanosecond durations.
func ConventionProblems(path string, v any) []string {
	var out []string
	switch x := v.(type) {
	case nil:
		out = append(out, path+": null (want [] or {} or the key left out)")
	case map[string]any:
		for k, e := range x {
			// Map keys that are data (route names, drop reasons, causes) are
			// lower case by construction; field keys must be snake_case.
			if !snakeKey.MatchString(k) && !strings.Contains(path, ".drops") && !strings.Contains(path, ".counts") {
				out = append(out, fmt.Sprintf("%s: key %q is not snake_case", path, k))
			}
			if strings.HasSuffix(k, "_ns") || strings.HasSuffix(k, "_nanoseconds") {
				out = append(out, fmt.Sprintf("%s.%s: nanoseconds (want seconds)", path, k))
			}
			out = append(out, ConventionProblems(path+"."+k, e)...)
		}
	case []any:
		for i, e := range x {
			out = append(out, ConventionProblems(fmt.Sprintf("%s[%d]", path, i), e)...)
		}
	case string:
		if strings.HasPrefix(x, "0001-01-01") {
			out = append(out, path+": zero time (want the key left out)")
		}
	}
	return out
}
