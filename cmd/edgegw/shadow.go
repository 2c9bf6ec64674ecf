package main

import (
	"github.com/spf13/cobra"

	"github.com/edgegw/edgegw/cmd/edgegw/shadowcmd"
)

// The shadow command is its own room (shadowcmd); this is its place on the command line, with
// the CLI every room shares (appCLI, rooms.go), which also says where the admin socket is.

func init() {
	extraCommands = append(extraCommands, func(a *app) *cobra.Command { return shadowcmd.New(appCLI{a}, defaultConfig) })
}
