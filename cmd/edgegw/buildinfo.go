package main

import "github.com/edgegw/edgegw/gateway/clock"

// buildDate is the build time, set by the Makefile with -ldflags "-X main.buildDate=..." (RFC 3339,
// the commit time for reproducible builds; unix seconds work too). "" means unknown.
var buildDate = ""

// The -ldflags variables (version, commit in main.go; buildDate above) are link-time constants,
// already set when init runs. clock.BuildInfo is their one home: the build_info metric,
// `edgegw status`, the daemon's clock guard and the PKI commands' clock floor (clockFloor in
// pkicmd) all read it. A system clock before the build date is wrong (a Pi has no RTC):
// certificate checks and new certificates use the build date instead.
func init() {
	clock.SetBuildInfo(clock.BuildInfo{Version: version, Commit: commit, Date: clock.ParseBuildDate(buildDate)})
}
