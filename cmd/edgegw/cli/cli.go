// Package cli is what a room of the edgegw command line (queuecmd, pkicmd,
// ...) needs from the command line around it: the CLI interface that package
// main implements once for every room, and ExitError, the error that carries
// an exit status (main's execute turns it into the process's exit status and
// prints its message once).
//
// It is a small leaf of the command line: it must not import any package of
// this module but gateway/config (the Logger and ConfigError signatures), nor
// mochi-mqtt, badger, prometheus or paho; only cmd/edgegw and its rooms
// import it (cmd/edgegw/deps_test.go). Its test double is cli/clitest.
package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/edgegw/edgegw/gateway/config"
)

// CLI is what the commands of a room need from the command line around them.
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

// Fail is an ExitError with status 1 and the message err.
func Fail(err error) *ExitError { return &ExitError{Code: 1, Err: err} }

// Usage is an ExitError with status 2 (a usage error) and the formatted message.
func Usage(format string, args ...any) *ExitError {
	return &ExitError{Code: 2, Err: fmt.Errorf(format, args...)}
}
