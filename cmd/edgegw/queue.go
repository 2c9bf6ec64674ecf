package main

import (
	"github.com/spf13/cobra"

	"github.com/edgegw/edgegw/cmd/edgegw/queuecmd"
)

// The queue commands are their own room (queuecmd); this is their place on
// the command line, with the CLI every room shares (appCLI, rooms.go).

func init() {
	extraCommands = append(extraCommands, func(a *app) *cobra.Command { return queuecmd.New(appCLI{a}, defaultConfig) })
}
