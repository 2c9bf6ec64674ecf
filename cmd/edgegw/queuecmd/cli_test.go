package queuecmd

import (
	"testing"

	"github.com/spf13/cobra"

	"github.com/edgegw/edgegw/cmd/edgegw/cli"
	"github.com/edgegw/edgegw/cmd/edgegw/cli/clitest"
)

// run runs `edgegw ARGS` with the queue command through the test command
// line (clitest: output in memory, --log-level, exit statuses from
// *ExitError) and returns the exit status, stdout and stderr. The binary's
// own tests run the same commands through main's execute.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return clitest.Run(t, func(c cli.CLI) *cobra.Command { return New(c, "/nonexistent/edgegw.yaml") }, args...)
}
