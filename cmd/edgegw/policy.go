package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"

	"github.com/spf13/cobra"

	"github.com/edgegw/edgegw/gateway/authz"
	"github.com/edgegw/edgegw/gateway/broker"
	"github.com/edgegw/edgegw/gateway/config"
)

func init() { extraCommands = append(extraCommands, newPolicyCmd) }

// newPolicyCmd is `edgegw policy`: offline tools for the AWS IoT-style policies.
func newPolicyCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Explain policy decisions offline",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newPolicyTestCmd(a))
	return cmd
}

type policyTestFlags struct {
	config, thing, action, topic, clientID, cert, sourceIP string
	persistent, will                                       bool
}

func newPolicyTestCmd(a *app) *cobra.Command {
	var f policyTestFlags
	cmd := &cobra.Command{
		Use:   "test --thing T --action ACTION --topic TOPIC",
		Short: "Decide one request as the broker would, and say why",
		Long: `Loads the registry and policies named by the config, binds a connection of thing T
(client ID = T unless --client-id, certificate variables from --cert) and decides
one request. It prints ALLOW or DENY, the deciding statement (file and index) or
"no statement allowed it", statements that did not apply and why, and every
policy variable with its value.

ACTION is connect, publish, subscribe, receive, retain-publish, get-thing-shadow,
update-thing-shadow or delete-thing-shadow (their resource is THING or THING/SHADOW). TOPIC is the topic
name (publish, receive, retain-publish) or the filter as the client sends it
(subscribe); for connect the resource is the client ID and --topic is not needed.

Exit status: 0 allowed, 1 denied, 2 error (bad flags, config, registry or policy).`,
		Example: `  edgegw policy test --thing temp-hq-f01-001 --action publish --topic building/hq/floor/01/temp/temp-hq-f01-001
  edgegw policy test -c edgegw.yaml --thing lock-f03-100 --action subscribe --topic 'building/#' --cert lock.crt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.policyTest(&f) },
	}
	fl := cmd.Flags()
	addConfigFlag(cmd, &f.config)
	fl.StringVar(&f.thing, "thing", "", "thing name bound to the certificate (required)")
	fl.StringVar(&f.action, "action", "", "connect, publish, subscribe, receive or retain-publish (required)")
	fl.StringVar(&f.topic, "topic", "", "topic name, or topic filter for subscribe")
	fl.StringVar(&f.clientID, "client-id", "", "MQTT client ID (default: the thing name)")
	fl.StringVar(&f.cert, "cert", "", "device certificate (PEM) for iot:Certificate.* variables")
	fl.StringVar(&f.sourceIP, "source-ip", "", "client address for aws:SourceIp")
	fl.BoolVar(&f.persistent, "persistent", false, "CONNECT with a persistent session (iot:ConnectAttributes PersistentConnect)")
	fl.BoolVar(&f.will, "will", false, "CONNECT with a will message (iot:ConnectAttributes LastWill)")
	return cmd
}

func usageError(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

func (a *app) policyTest(f *policyTestFlags) error {
	if f.thing == "" {
		return usageError("policy test: --thing is required")
	}
	if f.action == "" {
		return usageError("policy test: --action is required")
	}
	action, err := authz.ParseAction(f.action)
	if err != nil {
		return usageError("policy test: --action: %v", err)
	}
	id := authz.Identity{ThingName: f.thing, ClientID: f.clientID, CleanSession: !f.persistent, HasWill: f.will}
	if id.ClientID == "" {
		id.ClientID = f.thing
	}
	resource := f.topic
	switch {
	case action == authz.Connect && f.topic != "" && f.topic != id.ClientID:
		return usageError("policy test: for connect the resource is the client ID; use --client-id, not --topic")
	case action == authz.Connect:
		resource = id.ClientID
	case f.topic == "":
		return usageError("policy test: --topic is required for %s", f.action)
	}
	if f.sourceIP != "" {
		if id.SourceIP, err = netip.ParseAddr(f.sourceIP); err != nil {
			return usageError("policy test: --source-ip: %v", err)
		}
	}
	if f.cert != "" {
		if id.Cert, err = readCert(f.cert); err != nil {
			return &exitError{code: 2, err: err}
		}
	}
	cfg, err := config.Load(f.config)
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			for _, fe := range ce.Errors {
				fmt.Fprintln(a.stderr, fe.Error())
			}
			return &exitError{code: 2, err: fmt.Errorf("policy test: %d problem(s) in the configuration", len(ce.Errors))}
		}
		return &exitError{code: 2, err: err}
	}
	eng, err := broker.CheckPolicy(cfg.Devices, cfg.Policies)
	if err != nil {
		var list authz.ErrorList
		if errors.As(err, &list) {
			for _, e := range list {
				fmt.Fprintln(a.stderr, e.Error())
			}
			return &exitError{code: 2, err: fmt.Errorf("policy test: %d problem(s) in the registry or policies", len(list))}
		}
		return &exitError{code: 2, err: err}
	}
	sess, err := eng.Bind(id)
	if err != nil {
		var de *authz.DenyError
		if errors.As(err, &de) {
			fmt.Fprintf(a.stdout, "DENY %s %s\n  refused at CONNECT: %v\n", action, action.Resource(resource), de.Reason)
			return &exitError{code: 1}
		}
		return &exitError{code: 2, err: err}
	}
	ex := sess.Explain(action, resource)
	fmt.Fprint(a.stdout, ex.String())
	if action == authz.RetainPublish {
		fmt.Fprintln(a.stdout, "  note: a PUBLISH with RETAIN also needs iot:Publish on the topic")
	}
	if !ex.Allowed {
		return &exitError{code: 1}
	}
	return nil
}

// readCert reads the leaf (first) certificate of a PEM file.
func readCert(path string) (*x509.Certificate, error) {
	chain, err := broker.ReadCertChain(path)
	if err != nil {
		return nil, err
	}
	return chain[0], nil
}
