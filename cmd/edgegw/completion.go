package main

// Dynamic shell completion (bash, zsh, fish through cobra's hidden
// __complete command; the package installs the bash script):
//
//   - thing names (--thing, pki revoke THING): the registry the config names;
//   - routes (--route): bridge.routes of the config;
//   - policy actions (--action): connect, publish, subscribe, receive,
//     retain-publish;
//   - key URIs (--key): the schemes, and file paths after "file:".
//
// Each reads the config given with -c (or the default), never the daemon,
// and offers nothing when the config cannot be read: completion must not
// print errors into the shell.

import (
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/edgegw/edgegw/gateway/broker"
	"github.com/edgegw/edgegw/gateway/config"
)

// addCompletions registers the completion functions on every command of
// the tree that has the flags (or arguments) they complete.
func addCompletions(root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for name, fn := range map[string]cobra.CompletionFunc{
			"thing": completeThings, "route": completeRoutes, "action": completeActions, "key": completeKeyURIs,
		} {
			if f := c.LocalFlags().Lookup(name); f != nil && (name != "key" || strings.Contains(f.Usage, "URI")) {
				_ = c.RegisterFlagCompletionFunc(name, fn)
			}
		}
		if c.Name() == "revoke" && c.Parent() != nil && c.Parent().Name() == "pki" {
			c.ValidArgsFunction = func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
				if len(args) > 0 {
					return nil, cobra.ShellCompDirectiveNoFileComp // one THING|SERIAL
				}
				return completeThings(cmd, args, toComplete)
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// completionConfig loads the config named by -c (or the default) quietly.
func completionConfig(cmd *cobra.Command) *config.Config {
	path := defaultConfig
	if f := cmd.Flags().Lookup("config"); f != nil {
		path = f.Value.String()
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil
	}
	return cfg
}

func completeThings(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	cfg := completionConfig(cmd)
	if cfg == nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	eng, _, err := broker.LoadPolicy(cfg.Devices, cfg.Policies) // a broken policy file does not hide the things
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for th := range eng.Things() {
		if !strings.HasPrefix(th.Name, toComplete) {
			continue
		}
		desc := th.Type
		if th.Disabled {
			desc = strings.TrimSpace(desc + " (disabled)")
		}
		out = append(out, cobra.CompletionWithDesc(th.Name, desc))
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

func completeRoutes(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	cfg := completionConfig(cmd)
	if cfg == nil || cfg.Bridge == nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for _, r := range cfg.Bridge.Routes {
		if strings.HasPrefix(r.Name, toComplete) {
			out = append(out, cobra.CompletionWithDesc(r.Name, r.Direction+" "+r.Topic))
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// policyActions are the command-line names authz.ParseAction accepts.
var policyActions = []struct{ name, desc string }{
	{"connect", "iot:Connect on client/ID"},
	{"publish", "iot:Publish on topic/NAME"},
	{"subscribe", "iot:Subscribe on topicfilter/FILTER"},
	{"receive", "iot:Receive on topic/NAME"},
	{"retain-publish", "iot:RetainPublish on topic/NAME"},
}

func completeActions(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	var out []cobra.Completion
	for _, a := range policyActions {
		if strings.HasPrefix(a.name, toComplete) {
			out = append(out, cobra.CompletionWithDesc(a.name, a.desc))
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// keySchemes are the key URI forms hw accepts, as starting points.
var keySchemes = []struct{ prefix, desc string }{
	{"file:", "PEM key file"},
	{"tpm:handle=0x81000100", "persistent TPM key"},
	{"pkcs11:token=", "PKCS#11 token (HSM)"},
	{"auto", "TPM if /dev/tpmrm0 exists, else a 0600 file"},
}

func completeKeyURIs(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if p, ok := strings.CutPrefix(toComplete, "file:"); ok {
		return completeFilePaths("file:", p), cobra.ShellCompDirectiveNoSpace | cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for _, s := range keySchemes {
		if strings.HasPrefix(s.prefix, toComplete) {
			out = append(out, cobra.CompletionWithDesc(s.prefix, s.desc))
		}
	}
	return out, cobra.ShellCompDirectiveNoSpace | cobra.ShellCompDirectiveNoFileComp
}

// completeFilePaths lists the entries of the directory part of p starting
// with its last element, directories with a trailing '/'.
func completeFilePaths(prefix, p string) []cobra.Completion {
	dir, base := filepath.Split(p)
	readDir := dir
	if readDir == "" {
		readDir = "."
	}
	ents, err := os.ReadDir(readDir)
	if err != nil {
		return nil
	}
	var out []cobra.Completion
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), base) || (strings.HasPrefix(e.Name(), ".") && !strings.HasPrefix(base, ".")) {
			continue
		}
		name := prefix + dir + e.Name()
		if e.IsDir() {
			name += "/"
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}
