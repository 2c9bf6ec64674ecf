package queuecmd

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

	"github.com/edgegw/edgegw/gateway/config"
)

// testCLI is the command line around the queue commands in these tests, as
// package main provides it: output in memory, --log-level, exit statuses
// from *ExitError (the binary's own tests run the same commands through
// main's execute).
type testCLI struct {
	stdout, stderr bytes.Buffer
	level          string
}

func (c *testCLI) Context() context.Context { return context.Background() }
func (c *testCLI) Stdout() io.Writer        { return &c.stdout }
func (c *testCLI) Stderr() io.Writer        { return &c.stderr }

func (c *testCLI) Logger(*config.Config) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(c.level)); err != nil {
		return nil, &ExitError{Code: 2, Err: fmt.Errorf("--log-level %v", err)}
	}
	return slog.New(slog.NewTextHandler(&c.stderr, &slog.HandlerOptions{Level: lv})), nil
}

func (c *testCLI) ConfigError(err error) error {
	var ce *config.Error
	if errors.As(err, &ce) {
		for _, fe := range ce.Errors {
			fmt.Fprintln(&c.stderr, fe.Error())
		}
		return &ExitError{Code: 1}
	}
	return &ExitError{Code: 1, Err: err}
}

func (c *testCLI) AdminError(socket string, err error) error {
	return &ExitError{Code: 1, Err: fmt.Errorf("asking %s: %w", socket, err)}
}

func (c *testCLI) OutputFlags(cmd *cobra.Command, format *string, legacy *bool) {
	cmd.Flags().StringVarP(format, "output", "o", "table", "table or json")
	cmd.Flags().BoolVar(legacy, "json", false, "same as -o json")
}

func (c *testCLI) JSONOutput(format string, legacy bool) (bool, error) {
	if legacy || format == "json" || format == "table" {
		return legacy || format == "json", nil
	}
	return false, usageError("-o %q: want table or json", format)
}

func (c *testCLI) WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// run runs `edgegw ARGS` with the queue command and returns the exit status,
// stdout and stderr.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	c := &testCLI{}
	root := &cobra.Command{Use: "edgegw", SilenceErrors: true, SilenceUsage: true}
	root.SetOut(&c.stdout)
	root.SetErr(&c.stderr)
	root.PersistentFlags().StringVar(&c.level, "log-level", "info", "log level")
	root.AddCommand(New(c, "/nonexistent/edgegw.yaml"))
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	var ee *ExitError
	switch {
	case err == nil:
		return 0, c.stdout.String(), c.stderr.String()
	case errors.As(err, &ee):
		if ee.Err != nil {
			fmt.Fprintf(&c.stderr, "edgegw: %v\n", ee.Err)
		}
		return ee.Code, c.stdout.String(), c.stderr.String()
	}
	fmt.Fprintf(&c.stderr, "edgegw: %v\n", err)
	return 1, c.stdout.String(), c.stderr.String()
}
