package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/edgegw/edgegw/gateway"
	"github.com/edgegw/edgegw/gateway/authz"
	"github.com/edgegw/edgegw/gateway/broker"
	"github.com/edgegw/edgegw/gateway/brokerconf"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/uplink"
	"github.com/spf13/cobra"
)

func (a *app) checkCmd() *cobra.Command {
	var cfgPath, asUser, format string
	var asJSON bool
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
'systemctl reload edgegw'.

With -o json it prints one document on stdout either way (exit status unchanged; see
'edgegw help' for the convention):
  {"ok": true|false, "config": PATH, "summary": "PATH: OK (...)" (when ok),
   "counts": {"listeners": N, "bridges": N, "routes": N, "devices": PATH,
              "policies": PATH} (when ok),
   "problems": [{"file": PATH, "line": N, "key": "bridge.routes[0].topic", "message": TEXT}],
   "warnings": [TEXT]}
file, line and key are left out where a problem has none (line: not known).`,
		Example: `  edgegw check
  edgegw check -c /etc/edgegw/edgegw.yaml
  edgegw check -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			isJSON, err := jsonOutput(format, asJSON)
			if err != nil {
				return err
			}
			cfg, warnings, err := a.check(cfgPath, asUser)
			if isJSON {
				return a.checkJSONOut(cfgPath, cfg, warnings, err)
			}
			for _, w := range warnings {
				fmt.Fprintln(a.stderr, "warning: "+w)
			}
			if err != nil {
				if ce := (*config.Error)(nil); errors.As(err, &ce) {
					return a.reportConfigError(ce)
				}
				return err
			}
			fmt.Fprintln(a.stdout, summary(cfgPath, cfg))
			return nil
		},
	}
	addConfigFlag(cmd, &cfgPath)
	cmd.Flags().StringVar(&asUser, "user", "", "also check that this user can read the files the config names (default when root checks "+defaultConfig+": edgegw, the service's user)")
	outputFlags(cmd, &format, &asJSON)
	return cmd
}

// check runs the checks: the config and its bridges' warnings when it
// passes; a *config.Error (problems with file and line), an *exitError, or
// another error when it does not.
func (a *app) check(cfgPath, asUser string) (*config.Config, []string, error) {
	cfg, err := config.Check(cfgPath)
	if err != nil {
		return nil, nil, err
	}
	if err := checkRulesPoliciesAuthorizers(cfg); err != nil { // below
		return cfg, nil, err
	}
	warnings, err := uplink.CheckBridges(cfg) // each bridge against its cloud's rules
	if err != nil {
		return cfg, warnings, err
	}
	// What `edgegw run` checks before it binds: the same functions,
	// in the same order, creating nothing.
	if err := checkAdminSocketDir(cfg.Admin.Socket, false); err != nil {
		return cfg, warnings, &exitError{code: 1, err: err}
	}
	if err := gateway.Preflight(a.ctx, cfg); err != nil {
		return cfg, warnings, &exitError{code: 1, err: err}
	}
	// Run as root, the checks above say nothing about the
	// service's user: check what it must read (check_owner.go).
	u, err := serviceAccount(asUser, cfgPath)
	if err != nil {
		return cfg, warnings, &exitError{code: 2, err: err}
	}
	if u != nil {
		if err := checkReadableBy(cfg, u); err != nil {
			return cfg, warnings, &exitError{code: 1, err: err}
		}
	}
	return cfg, warnings, nil
}

// checkJSON is `edgegw check -o json`.
type checkJSON struct {
	OK       bool           `json:"ok"`
	Config   string         `json:"config"`
	Summary  string         `json:"summary,omitempty"` // the text form's OK line
	Counts   *checkCounts   `json:"counts,omitempty"`  // when ok
	Problems []checkProblem `json:"problems"`
	Warnings []string       `json:"warnings"`
}

// checkCounts is what a valid config holds.
type checkCounts struct {
	Listeners int    `json:"listeners"`
	Bridges   int    `json:"bridges"`
	Routes    int    `json:"routes"`
	Devices   string `json:"devices"`  // the registry file
	Policies  string `json:"policies"` // the policy directory
}

// checkProblem is one thing check refused.
type checkProblem struct {
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Key     string `json:"key,omitempty"` // e.g. "bridge.routes[0].topic"
	Message string `json:"message"`
}

// checkJSONOut prints check's result as checkJSON, with the exit status of
// the table form (usage errors stay errors on stderr).
func (a *app) checkJSONOut(cfgPath string, cfg *config.Config, warnings []string, err error) error {
	out := checkJSON{OK: err == nil, Config: cfgPath, Problems: []checkProblem{}, Warnings: []string{}}
	out.Warnings = append(out.Warnings, warnings...)
	var ee *exitError
	if errors.As(err, &ee) && ee.code == 2 {
		return err
	}
	if ce := (*config.Error)(nil); errors.As(err, &ce) {
		for _, fe := range ce.Errors {
			out.Problems = append(out.Problems, checkProblem{File: fe.File, Line: fe.Line, Key: fe.Path, Message: fe.Msg})
		}
	} else if err != nil {
		msg := err.Error()
		if ee != nil && ee.err != nil {
			msg = ee.err.Error()
		}
		out.Problems = append(out.Problems, checkProblem{Message: msg})
	}
	if err == nil {
		out.Summary = summary(cfgPath, cfg)
		c := countsOf(cfg)
		out.Counts = &c
	}
	if werr := writeJSONOut(a.stdout, out); werr != nil {
		return werr
	}
	if err != nil {
		return &exitError{code: 1} // reported in the document
	}
	return nil
}

// summary is the one line `edgegw check` prints for a valid config, e.g.
// "edgegw.yaml: OK (2 listeners, 3 routes, devices: devices.yaml, policies: policies/)".
func summary(path string, cfg *config.Config) string {
	c := countsOf(cfg)
	routes := "no bridge"
	if c.Bridges > 0 {
		routes = plural(c.Routes, "route")
		if cfg.Bridges != nil {
			routes = plural(c.Bridges, "bridge") + ", " + routes
		}
	}
	return fmt.Sprintf("%s: OK (%s, %s, devices: %s, policies: %s)", path,
		plural(c.Listeners, "listener"), routes,
		relTo(cfg.Dir, cfg.Devices), relTo(cfg.Dir, cfg.Policies)+"/")
}

// countsOf is what a valid config holds, for the summary line and -o json.
func countsOf(cfg *config.Config) checkCounts {
	c := checkCounts{Listeners: len(cfg.Listeners), Devices: cfg.Devices, Policies: cfg.Policies}
	for _, b := range cfg.BridgeList() {
		c.Bridges++
		c.Routes += len(b.Routes)
	}
	return c
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

// checkRulesPoliciesAuthorizers is the part of `edgegw check` that needs the
// runtime rooms: the rules compile (SQL errors at the rule's line with the
// position in the statement), every policy file loads (strictly: a bad file is
// an error naming its file and line, although the daemon would run with it and
// deny what attaches it), and each listener's authorizer section builds. It
// returns a *config.Error listing every problem, or nil.
func checkRulesPoliciesAuthorizers(cfg *config.Config) error {
	var all config.Error
	add := func(err error) {
		var ce *config.Error
		if errors.As(err, &ce) {
			all.Errors = append(all.Errors, ce.Errors...)
		} else if err != nil {
			all.Errors = append(all.Errors, &config.FieldError{File: cfg.File, Msg: err.Error()})
		}
	}
	_, err := brokerconf.CompileRules(cfg)
	add(err)
	add(brokerconf.CheckAuthorizers(cfg))
	eng, err := broker.CheckPolicy(cfg.Devices, cfg.Policies)
	if err != nil {
		var list authz.ErrorList
		if errors.As(err, &list) {
			for _, e := range list {
				all.Errors = append(all.Errors, &config.FieldError{Msg: e.Error()})
			}
		} else {
			add(err)
		}
	} else {
		// A rule's identity must be a thing the registry knows (and has
		// not disabled): its policies authorize the rule's republishes.
		for i, r := range cfg.Rules {
			if r.Identity == "" {
				continue
			}
			if _, err := eng.Bind(authz.Identity{ThingName: r.Identity, ClientID: r.Identity, CleanSession: true}); err != nil {
				p := fmt.Sprintf("rules[%d].identity", i)
				all.Errors = append(all.Errors, &config.FieldError{File: cfg.File, Line: cfg.Line(p), Path: p,
					Msg: fmt.Sprintf("%q: %v; name a thing of %s whose policies allow the rule's republish topics", r.Identity, err, cfg.Devices)})
			}
		}
	}
	if len(all.Errors) == 0 {
		return nil
	}
	return &all
}
