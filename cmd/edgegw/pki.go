package main

import (
	"github.com/spf13/cobra"

	"github.com/edgegw/edgegw/cmd/edgegw/pkicmd"
)

// The pki commands are their own room (pkicmd); this is their place on the
// command line, with the CLI every room shares (appCLI, rooms.go) and the key
// facts they share with the key commands (key.go).

func init() {
	extraCommands = append(extraCommands, func(a *app) *cobra.Command {
		return pkicmd.New(appCLI{a}, defaultConfig, pkicmd.Keys{URIHelp: keyURIHelp, DefaultStateDir: keyDefaultStateDir})
	})
}

// daemonUser is the system user the package creates and `edgegw run` runs as (pkicmd owns it:
// the pki commands hand it the files it must read).
const daemonUser = pkicmd.DaemonUser
