package main

import "github.com/edgegw/edgegw/gateway"

// The -ldflags variables (version, commit in main.go; buildDate in pki.go)
// are link-time constants, already set when init runs. The gateway uses them
// for the build_info metric, `edgegw status` and the clock guard (a system
// clock before the build date is wrong: certificate checks use the build date).
func init() {
	gateway.SetBuildInfo(gateway.BuildInfo{Version: version, Commit: commit, Date: gateway.ParseBuildDate(buildDate)})
}
