package main

import (
	"github.com/spf13/cobra"

	"github.com/edgegw/edgegw/cmd/edgegw/evalcmd"
)

// The offline evaluation commands (policy test, rule test) are their own room (evalcmd); this
// is their place on the command line, with the CLI every room shares (appCLI, rooms.go).

func init() {
	extraCommands = append(extraCommands,
		func(a *app) *cobra.Command { return evalcmd.NewPolicy(appCLI{a}, defaultConfig) },
		func(a *app) *cobra.Command { return evalcmd.NewRule(appCLI{a}) })
}
