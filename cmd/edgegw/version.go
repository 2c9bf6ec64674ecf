package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
)

func (a *app) versionCmd() *cobra.Command {
	var format string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print version, commit, Go version and platform",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			isJSON, err := jsonOutput(format, asJSON) // output.go
			if err != nil {
				return err
			}
			if isJSON {
				return writeJSONOut(a.stdout, versionView())
			}
			fmt.Fprintln(a.stdout, versionLine())
			return nil
		},
	}
	outputFlags(cmd, &format, &asJSON)
	return cmd
}

// versionLine is e.g. "edgegw 1.2.0 (commit 3b15686, go1.26.8, linux/arm64)".
func versionLine() string {
	return fmt.Sprintf("edgegw %s (commit %s, %s, %s/%s)", version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
