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
	var cfgPath, asUser string
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check the configuration and the files it names; safe before every reload",
		Long: `Check reads the configuration strictly (unknown keys are errors), validates every
section, and checks that the files it names exist and are readable: TLS CA, certificates,
CRL, key files, the device registry and the policy directory. Then it runs every check
'edgegw run' makes before it binds anything, with the same code: the registry and the
policies compile, password files parse (bcrypt, or mosquitto_passwd's $7$ and $6$), every
certificate belongs to its key (file, TPM or PKCS#11), the audit file's directory exists,
and the directories the daemon writes exist or can be created. Run as root on the
service's config (or with --user), it also checks that the service's user (edgegw) can
read every key, certificate, CRL, password file, the registry and the policies.

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
			// What `edgegw run` checks before it binds: the same functions,
			// in the same order, creating nothing.
			if err := checkAdminSocketDir(cfg.Admin.Socket, false); err != nil {
				return &exitError{code: 1, err: err}
			}
			if err := gateway.Preflight(a.ctx, cfg); err != nil {
				return &exitError{code: 1, err: err}
			}
			// Run as root, the checks above say nothing about the
			// service's user: check what it must read (check_owner.go).
			u, err := serviceAccount(asUser, cfgPath)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			if u != nil {
				if err := checkReadableBy(cfg, u); err != nil {
					return &exitError{code: 1, err: err}
				}
			}
			fmt.Fprintln(a.stdout, summary(cfgPath, cfg))
			return nil
		},
	}
	addConfigFlag(cmd, &cfgPath)
	cmd.Flags().StringVar(&asUser, "user", "", "also check that this user can read the files the config names (default when root checks "+defaultConfig+": edgegw, the service's user)")
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
