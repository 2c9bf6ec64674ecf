package main

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/edgegw/edgegw/gateway/authz"
	"github.com/edgegw/edgegw/gateway/broker"
	"github.com/edgegw/edgegw/gateway/brokerconf"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/rules"
)

func init() { extraCommands = append(extraCommands, newRuleCmd) }

// newRuleCmd is `edgegw rule`: offline tools for AWS IoT SQL rules.
func newRuleCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rule",
		Short: "Try AWS IoT SQL rules offline",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newRuleTestCmd(a))
	return cmd
}

type ruleTestFlags struct {
	sql, topic, payload, clientID string
	output                        string // -o table|json
	asJSON                        bool
}

// ruleTestJSON is `edgegw rule test -o json`.
type ruleTestJSON struct {
	Fires        bool   `json:"fires"`         // the topic matches and WHERE held: the actions run
	TopicMatches bool   `json:"topic_matches"` // the topic matches FROM
	WhereHeld    bool   `json:"where_held"`    // WHERE was true (or absent)
	Error        string `json:"error,omitempty"`
	// Output is the payload the actions would receive (base64), left out
	// when there is none; OutputJSON is the same when it is JSON.
	Output     []byte          `json:"output,omitempty"`
	OutputJSON json.RawMessage `json:"output_json,omitempty"`
}

func newRuleTestCmd(a *app) *cobra.Command {
	var f ruleTestFlags
	cmd := &cobra.Command{
		Use:   "test --sql SQL --topic TOPIC --payload PAYLOAD",
		Short: "Evaluate one rule statement on one message and show the output",
		Long: `Compiles the statement (AWS IoT SQL, version 2016-03-23) as the gateway does and
evaluates it on one message, as the rule would when that message is published.
It prints whether the topic matches the FROM filter, whether WHERE held, and the
output payload the rule's actions would receive.

With -o json (see 'edgegw help' for the convention; same exit status):
  {"fires": BOOL, "topic_matches": BOOL, "where_held": BOOL, "error": TEXT (when the
   statement failed on this payload), "output": BASE64, "output_json": DOCUMENT (when
   the output is JSON)}

Exit status: 0 the rule fires (topic matches and WHERE holds), 1 it does not,
2 error (bad flags, or the statement does not compile: the message gives the
line:column in the statement).`,
		Example: `  edgegw rule test --sql "SELECT temp, topic(2) AS room FROM 'building/+/temp' WHERE temp > 30" \
      --topic building/hall/temp --payload '{"temp": 31.5}'
  edgegw rule test --sql "SELECT * FROM 'a/#'" --topic a/b --payload hello --client-id sensor-1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.ruleTest(&f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.sql, "sql", "", "the rule's SQL statement (required)")
	fl.StringVar(&f.topic, "topic", "", "the message's topic (required)")
	fl.StringVar(&f.payload, "payload", "", "the message's payload (JSON or any bytes)")
	fl.StringVar(&f.clientID, "client-id", "", "the publisher's client ID, for clientid()")
	fl.StringVar(&f.clientID, "clientid", "", "same as --client-id")
	outputFlags(cmd, &f.output, &f.asJSON)
	return cmd
}

func (a *app) ruleTest(f *ruleTestFlags) error {
	isJSON, err := jsonOutput(f.output, f.asJSON)
	if err != nil {
		return err
	}
	if f.sql == "" {
		return usageError("rule test: --sql is required")
	}
	if f.topic == "" {
		return usageError("rule test: --topic is required")
	}
	if err := config.ValidateTopicName(f.topic); err != nil {
		return usageError("rule test: --topic %q: %v", f.topic, err)
	}
	tr, err := rules.TrySQL(f.sql, &rules.Message{Topic: f.topic, Payload: []byte(f.payload), ClientID: f.clientID})
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("rule test: %w", err)}
	}
	fires := tr.Err == nil && tr.Matched && tr.TopicMatches
	if isJSON {
		out := ruleTestJSON{Fires: fires, TopicMatches: tr.TopicMatches, WhereHeld: tr.Err == nil && tr.Matched}
		if tr.Err != nil {
			out.Error = tr.Err.Error()
		} else if tr.Matched {
			out.Output = tr.Payload
			if json.Valid(tr.Payload) {
				out.OutputJSON = tr.Payload
			}
		}
		if err := writeJSONOut(a.stdout, out); err != nil {
			return err
		}
		if !fires {
			return &exitError{code: 1}
		}
		return nil
	}
	match := "matches"
	if !tr.TopicMatches {
		match = "does NOT match"
	}
	fmt.Fprintf(a.stdout, "topic %s %s the FROM filter\n", f.topic, match)
	switch {
	case tr.Err != nil:
		fmt.Fprintf(a.stdout, "ERROR evaluating the statement: %v\n  (the rule's error action would run)\n", tr.Err)
		return &exitError{code: 1}
	case !tr.Matched:
		fmt.Fprintln(a.stdout, "WHERE is not true: no output, no action runs")
		return &exitError{code: 1}
	}
	fmt.Fprintf(a.stdout, "OUTPUT %s\n", tr.Payload)
	if !tr.TopicMatches {
		return &exitError{code: 1}
	}
	return nil
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
