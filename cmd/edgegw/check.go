package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/edgegw/edgegw/gateway"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/spf13/cobra"
)

func (a *app) checkCmd() *cobra.Command {
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check the configuration and the files it names; safe before every reload",
		Long: `Check reads the configuration strictly (unknown keys are errors), validates every
section, and checks that the files it names exist and are readable: TLS CA, certificates,
CRL, key files, the device registry and the policy directory.

It prints one summary line and exits 0 when all is well; otherwise it prints every
problem as FILE:LINE: KEY: what is wrong, and exits 1. Run it before
'systemctl reload edgegw'.`,
		Example: `  edgegw check
  edgegw check -c /etc/edgegw/edgegw.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Check(cfgPath)
			if err != nil {
				return a.reportConfigError(err)
			}
			if err := checkRulesPoliciesAuthorizers(cfg); err != nil { // rule.go
				return a.reportConfigError(err)
			}
			warnings, err := gateway.CheckBridges(cfg) // each bridge against its cloud's rules
			for _, w := range warnings {
				fmt.Fprintln(a.stderr, "warning: "+w)
			}
			if err != nil {
				return a.reportConfigError(err)
			}
			fmt.Fprintln(a.stdout, summary(cfgPath, cfg))
			return nil
		},
	}
	addConfigFlag(cmd, &cfgPath)
	return cmd
}

// summary is the one line `edgegw check` prints for a valid config, e.g.
// "edgegw.yaml: OK (2 listeners, 3 routes, devices: devices.yaml, policies: policies/)".
func summary(path string, cfg *config.Config) string {
	routes := "no bridge"
	if bs := cfg.BridgeList(); len(bs) > 0 {
		n := 0
		for _, b := range bs {
			n += len(b.Routes)
		}
		routes = plural(n, "route")
		if cfg.Bridges != nil {
			routes = plural(len(bs), "bridge") + ", " + routes
		}
	}
	return fmt.Sprintf("%s: OK (%s, %s, devices: %s, policies: %s)", path,
		plural(len(cfg.Listeners), "listener"), routes,
		relTo(cfg.Dir, cfg.Devices), relTo(cfg.Dir, cfg.Policies)+"/")
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// relTo shows p relative to dir when it lies below it, else as is.
func relTo(dir, p string) string {
	if r, err := filepath.Rel(dir, p); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return p
}
