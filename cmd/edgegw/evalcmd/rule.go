package evalcmd

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/edgegw/edgegw/cmd/edgegw/cli"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/rules"
)

// NewRule is `edgegw rule`: offline tools for AWS IoT SQL rules. c is the command line around it.
func NewRule(c cli.CLI) *cobra.Command {
	a := app{CLI: c}
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

// RuleTestJSON is `edgegw rule test -o json`.
type RuleTestJSON struct {
	Fires        bool   `json:"fires"`         // the topic matches and WHERE held: the actions run
	TopicMatches bool   `json:"topic_matches"` // the topic matches FROM
	WhereHeld    bool   `json:"where_held"`    // WHERE was true (or absent)
	Error        string `json:"error,omitempty"`
	// Output is the payload the actions would receive (base64), left out
	// when there is none; OutputJSON is the same when it is JSON.
	Output     []byte          `json:"output,omitempty"`
	OutputJSON json.RawMessage `json:"output_json,omitempty"`
}

func newRuleTestCmd(a app) *cobra.Command {
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
	a.OutputFlags(cmd, &f.output, &f.asJSON)
	return cmd
}

func (a app) ruleTest(f *ruleTestFlags) error {
	isJSON, err := a.JSONOutput(f.output, f.asJSON)
	if err != nil {
		return err
	}
	if f.sql == "" {
		return cli.Usage("rule test: --sql is required")
	}
	if f.topic == "" {
		return cli.Usage("rule test: --topic is required")
	}
	if err := config.ValidateTopicName(f.topic); err != nil {
		return cli.Usage("rule test: --topic %q: %v", f.topic, err)
	}
	tr, err := rules.TrySQL(f.sql, &rules.Message{Topic: f.topic, Payload: []byte(f.payload), ClientID: f.clientID})
	if err != nil {
		return &cli.ExitError{Code: 2, Err: fmt.Errorf("rule test: %w", err)}
	}
	fires := tr.Err == nil && tr.Matched && tr.TopicMatches
	if isJSON {
		out := RuleTestJSON{Fires: fires, TopicMatches: tr.TopicMatches, WhereHeld: tr.Err == nil && tr.Matched}
		if tr.Err != nil {
			out.Error = tr.Err.Error()
		} else if tr.Matched {
			out.Output = tr.Payload
			if json.Valid(tr.Payload) {
				out.OutputJSON = tr.Payload
			}
		}
		if err := a.WriteJSON(a.Stdout(), out); err != nil {
			return err
		}
		if !fires {
			return &cli.ExitError{Code: 1}
		}
		return nil
	}
	match := "matches"
	if !tr.TopicMatches {
		match = "does NOT match"
	}
	fmt.Fprintf(a.Stdout(), "topic %s %s the FROM filter\n", f.topic, match)
	switch {
	case tr.Err != nil:
		fmt.Fprintf(a.Stdout(), "ERROR evaluating the statement: %v\n  (the rule's error action would run)\n", tr.Err)
		return &cli.ExitError{Code: 1}
	case !tr.Matched:
		fmt.Fprintln(a.Stdout(), "WHERE is not true: no output, no action runs")
		return &cli.ExitError{Code: 1}
	}
	fmt.Fprintf(a.Stdout(), "OUTPUT %s\n", tr.Payload)
	if !tr.TopicMatches {
		return &cli.ExitError{Code: 1}
	}
	return nil
}
