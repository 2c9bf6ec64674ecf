package evalcmd

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"

	"github.com/spf13/cobra"

	"github.com/edgegw/edgegw/cmd/edgegw/cli"
	"github.com/edgegw/edgegw/gateway/authz"
	"github.com/edgegw/edgegw/gateway/broker"
	"github.com/edgegw/edgegw/gateway/broker/listen"
	"github.com/edgegw/edgegw/gateway/config"
)

// NewPolicy is `edgegw policy`: offline tools for the AWS IoT-style policies. c is the command
// line around it; defaultConfig is -c's default.
func NewPolicy(c cli.CLI, defaultConfig string) *cobra.Command {
	a := app{CLI: c, defaultConfig: defaultConfig}
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
	output                                                 string // -o table|json
	asJSON                                                 bool
}

func newPolicyTestCmd(a app) *cobra.Command {
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

With -o json it prints the decision as one document (see 'edgegw help' for the
convention; the exit status is the same):
  {"allowed": BOOL, "decision": "allow"|"deny", "action": "iot:Publish",
   "resource": "topic/...", "thing": T, "client_id": ID, "how": TEXT,
   "refused_at_connect": REASON (only when the connection itself is refused),
   "policies": [NAME], "decider": STATEMENT (absent: no statement allowed it),
   "matched": [STATEMENT], "not_applied": [STATEMENT with "reason"],
   "variables": [{"name", "values": [...], "unresolved": WHY}], "notes": [TEXT]}
  STATEMENT: {"policy", "file", "index", "sid", "line", "effect": "Allow"|"Deny"}

Exit status: 0 allowed, 1 denied, 2 error (bad flags, config, registry or policy).`,
		Example: `  edgegw policy test --thing temp-hq-f01-001 --action publish --topic building/hq/floor/01/temp/temp-hq-f01-001
  edgegw policy test -c edgegw.yaml --thing lock-f03-100 --action subscribe --topic 'building/#' --cert lock.crt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.policyTest(&f) },
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.config, "config", "c", a.defaultConfig, "config file")
	fl.StringVar(&f.thing, "thing", "", "thing name bound to the certificate (required)")
	fl.StringVar(&f.action, "action", "", "connect, publish, subscribe, receive or retain-publish (required)")
	fl.StringVar(&f.topic, "topic", "", "topic name, or topic filter for subscribe")
	fl.StringVar(&f.clientID, "client-id", "", "MQTT client ID (default: the thing name)")
	fl.StringVar(&f.cert, "cert", "", "device certificate (PEM) for iot:Certificate.* variables")
	fl.StringVar(&f.sourceIP, "source-ip", "", "client address for aws:SourceIp")
	fl.BoolVar(&f.persistent, "persistent", false, "CONNECT with a persistent session (iot:ConnectAttributes PersistentConnect)")
	fl.BoolVar(&f.will, "will", false, "CONNECT with a will message (iot:ConnectAttributes LastWill)")
	a.OutputFlags(cmd, &f.output, &f.asJSON)
	return cmd
}

// PolicyTestJSON is `edgegw policy test -o json`.
type PolicyTestJSON struct {
	Allowed          bool            `json:"allowed"`
	Decision         string          `json:"decision"` // allow | deny
	Action           string          `json:"action"`
	Resource         string          `json:"resource"`
	Thing            string          `json:"thing"`
	ClientID         string          `json:"client_id"`
	How              string          `json:"how,omitempty"`
	RefusedAtConnect string          `json:"refused_at_connect,omitempty"`
	Policies         []string        `json:"policies"`
	Decider          *statementJSON  `json:"decider,omitempty"` // absent: no statement allowed it
	Matched          []statementJSON `json:"matched"`
	NotApplied       []statementJSON `json:"not_applied"`
	Variables        []variableJSON  `json:"variables"`
	Notes            []string        `json:"notes"`
}

type statementJSON struct {
	Policy string `json:"policy"`
	File   string `json:"file"`
	Index  int    `json:"index"`
	Sid    string `json:"sid,omitempty"`
	Line   int    `json:"line,omitempty"`
	Effect string `json:"effect"`           // Allow | Deny
	Reason string `json:"reason,omitempty"` // not_applied: why
}

type variableJSON struct {
	Name       string   `json:"name"`
	Values     []string `json:"values"`
	Unresolved string   `json:"unresolved,omitempty"` // why it has no value
}

func policyTestView(ex authz.Explanation) PolicyTestJSON {
	ref := func(r authz.StatementRef) statementJSON {
		return statementJSON{Policy: r.Policy, File: r.File, Index: r.Index, Sid: r.Sid, Line: r.Line, Effect: r.Effect.String(), Reason: r.Reason}
	}
	out := PolicyTestJSON{Allowed: ex.Allowed, Decision: "deny", Action: ex.Action.String(), Resource: ex.Resource, Thing: ex.Thing,
		ClientID: ex.ClientID, How: ex.How, Policies: []string{}, Matched: []statementJSON{}, NotApplied: []statementJSON{},
		Variables: []variableJSON{}, Notes: []string{}}
	if ex.Allowed {
		out.Decision = "allow"
	}
	out.Policies = append(out.Policies, ex.Policies...)
	if ex.Decider != nil {
		d := ref(*ex.Decider)
		out.Decider = &d
	}
	for _, r := range ex.Matched {
		out.Matched = append(out.Matched, ref(r))
	}
	for _, r := range ex.NotApplied {
		out.NotApplied = append(out.NotApplied, ref(r))
	}
	for _, v := range ex.Variables {
		out.Variables = append(out.Variables, variableJSON{Name: v.Name, Values: append([]string{}, v.Values...), Unresolved: v.Why})
	}
	return out
}

func (a app) policyTest(f *policyTestFlags) error {
	isJSON, err := a.JSONOutput(f.output, f.asJSON)
	if err != nil {
		return err
	}
	action, id, resource, err := f.request()
	if err != nil {
		return err
	}
	eng, err := a.policyTestEngine(f.config)
	if err != nil {
		return err
	}
	sess, err := eng.Bind(id)
	if err != nil {
		var de *authz.DenyError
		if errors.As(err, &de) {
			if isJSON {
				out := policyTestView(authz.Explanation{Action: action, Resource: action.Resource(resource), Thing: id.ThingName, ClientID: id.ClientID})
				out.RefusedAtConnect = fmt.Sprint(de.Reason)
				if err := a.WriteJSON(a.Stdout(), out); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(a.Stdout(), "DENY %s %s\n  refused at CONNECT: %v\n", action, action.Resource(resource), de.Reason)
			}
			return &cli.ExitError{Code: 1}
		}
		return &cli.ExitError{Code: 2, Err: err}
	}
	ex := sess.Explain(action, resource)
	const retainNote = "a PUBLISH with RETAIN also needs iot:Publish on the topic"
	if isJSON {
		out := policyTestView(ex)
		if action == authz.RetainPublish {
			out.Notes = append(out.Notes, retainNote)
		}
		if err := a.WriteJSON(a.Stdout(), out); err != nil {
			return err
		}
	} else {
		fmt.Fprint(a.Stdout(), ex.String())
		if action == authz.RetainPublish {
			fmt.Fprintln(a.Stdout(), "  note: "+retainNote)
		}
	}
	if !ex.Allowed {
		return &cli.ExitError{Code: 1}
	}
	return nil
}

// request is the request the flags describe: the action, the connection's
// identity, and the resource (the client ID for connect, else --topic).
func (f *policyTestFlags) request() (authz.Action, authz.Identity, string, error) {
	var action authz.Action
	id := authz.Identity{ThingName: f.thing, ClientID: f.clientID, CleanSession: !f.persistent, HasWill: f.will}
	if f.thing == "" {
		return action, id, "", cli.Usage("policy test: --thing is required")
	}
	if f.action == "" {
		return action, id, "", cli.Usage("policy test: --action is required")
	}
	action, err := authz.ParseAction(f.action)
	if err != nil {
		return action, id, "", cli.Usage("policy test: --action: %v", err)
	}
	if id.ClientID == "" {
		id.ClientID = f.thing
	}
	resource := f.topic
	switch {
	case action == authz.Connect && f.topic != "" && f.topic != id.ClientID:
		return action, id, "", cli.Usage("policy test: for connect the resource is the client ID; use --client-id, not --topic")
	case action == authz.Connect:
		resource = id.ClientID
	case f.topic == "":
		return action, id, "", cli.Usage("policy test: --topic is required for %s", f.action)
	}
	if f.sourceIP != "" {
		if id.SourceIP, err = netip.ParseAddr(f.sourceIP); err != nil {
			return action, id, "", cli.Usage("policy test: --source-ip: %v", err)
		}
	}
	if f.cert != "" {
		if id.Cert, err = readCert(f.cert); err != nil {
			return action, id, "", &cli.ExitError{Code: 2, Err: err}
		}
	}
	return action, id, resource, nil
}

// policyTestEngine loads the registry and policies the config at path names,
// printing each problem in the config or the policies to stderr.
func (a app) policyTestEngine(path string) (*authz.Engine, error) {
	cfg, err := config.Load(path)
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			for _, fe := range ce.Errors {
				fmt.Fprintln(a.Stderr(), fe.Error())
			}
			return nil, &cli.ExitError{Code: 2, Err: fmt.Errorf("policy test: %d problem(s) in the configuration", len(ce.Errors))}
		}
		return nil, &cli.ExitError{Code: 2, Err: err}
	}
	eng, err := broker.CheckPolicy(cfg.Devices, cfg.Policies)
	if err != nil {
		var list authz.ErrorList
		if errors.As(err, &list) {
			for _, e := range list {
				fmt.Fprintln(a.Stderr(), e.Error())
			}
			return nil, &cli.ExitError{Code: 2, Err: fmt.Errorf("policy test: %d problem(s) in the registry or policies", len(list))}
		}
		return nil, &cli.ExitError{Code: 2, Err: err}
	}
	return eng, nil
}

// readCert reads the leaf (first) certificate of a PEM file.
func readCert(path string) (*x509.Certificate, error) {
	chain, err := listen.ReadCertChain(path)
	if err != nil {
		return nil, err
	}
	return chain[0], nil
}
