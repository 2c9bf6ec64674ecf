package rules

import (
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/edgegw/edgegw/gateway/rules/sql"
)

// Config is one rule as the config file holds it:
//
//	rules:
//	  - name: hot_rooms
//	    sql: "SELECT temp, topic(2) AS device FROM 'building/+/temp' WHERE temp > 30"
//	    actions:
//	      - republish: {topic: "alarms/${topic(2)}", qos: 1}
//	      - forward: {route: cloud}
//	    error_action:
//	      republish: {topic: "rules/errors"}
type Config struct {
	Name string `yaml:"name"`
	SQL  string `yaml:"sql"`
	// SQLVersion is the AWS IoT SQL version; empty means 2016-03-23, the only
	// one the gateway implements.
	SQLVersion string `yaml:"sql_version,omitempty"`
	// Identity is the registry thing whose policies authorize the rule's
	// republish actions (the caller checks iot:Publish as that thing); empty
	// leaves the choice to the caller.
	Identity    string         `yaml:"identity,omitempty"`
	Disabled    bool           `yaml:"disabled,omitempty"`
	Actions     []ActionConfig `yaml:"actions"`
	ErrorAction *ActionConfig  `yaml:"error_action,omitempty"`
}

// ActionConfig is one action: exactly one of its fields is set.
type ActionConfig struct {
	Republish *RepublishConfig `yaml:"republish,omitempty"`
	Forward   *ForwardConfig   `yaml:"forward,omitempty"`
}

// RepublishConfig publishes the rule's output on the local broker. Topic is a
// substitution template (${topic()}, ${clientid()}, ${any expression}); $$
// writes a literal $ (for $aws/... topics). QoS is 0 (default) or 1, as AWS's
// republish action allows.
type RepublishConfig struct {
	Topic   string         `yaml:"topic"`
	QoS     int            `yaml:"qos,omitempty"`
	Headers *HeadersConfig `yaml:"headers,omitempty"`
}

// HeadersConfig are the MQTT 5 properties of a republished message, as AWS's
// republish action takes them (MqttHeaders); every field is a substitution
// template.
type HeadersConfig struct {
	// PayloadFormatIndicator is UNSPECIFIED_BYTES or UTF8_DATA.
	PayloadFormatIndicator string `yaml:"payload_format_indicator,omitempty"`
	ContentType            string `yaml:"content_type,omitempty"`
	ResponseTopic          string `yaml:"response_topic,omitempty"`
	// CorrelationData is base64; the published property is the decoded bytes.
	CorrelationData string `yaml:"correlation_data,omitempty"`
	// MessageExpiry is the message expiry interval in seconds.
	MessageExpiry  string               `yaml:"message_expiry,omitempty"`
	UserProperties []UserPropertyConfig `yaml:"user_properties,omitempty"`
}

// UserPropertyConfig is one user property; key and value are templates.
type UserPropertyConfig struct {
	Key   string `yaml:"key"`
	Value string `yaml:"value"`
}

// Headers are the rendered MQTT 5 properties of a republish Output.
type Headers struct {
	PayloadUTF8     *bool // nil: not set
	ContentType     string
	ResponseTopic   string
	CorrelationData []byte
	MessageExpiry   *uint32 // seconds; nil: not set
	UserProperties  []UserProperty
}

// ForwardConfig hands the rule's output to a bridge route, which the caller
// enqueues durably. Topic (a substitution template) defaults to the topic of
// the incoming message.
type ForwardConfig struct {
	Route string `yaml:"route"`
	Topic string `yaml:"topic,omitempty"`
}

// ActionKind says what the caller does with an Output.
type ActionKind uint8

const (
	// Republish: publish Payload on Topic on the local broker, with QoS,
	// authorized as the rule's identity.
	Republish ActionKind = iota + 1
	// Forward: enqueue Payload for the bridge route Route, on Topic.
	Forward
)

func (k ActionKind) String() string {
	switch k {
	case Republish:
		return "republish"
	case Forward:
		return "forward"
	}
	return fmt.Sprintf("ActionKind(%d)", uint8(k))
}

// awsName is the failedAction name of the error message, as AWS names its
// actions (RepublishAction, S3Action, ...).
func (k ActionKind) awsName() string {
	switch k {
	case Republish:
		return "RepublishAction"
	case Forward:
		return "ForwardAction"
	}
	return "UnknownAction"
}

// Output is one thing for the caller to do. Payload may be shared between the
// outputs of one message and with the incoming Message.Payload (SELECT *); the
// caller must not modify it.
type Output struct {
	Action  int // index in the rule's actions; -1 for the error action
	Kind    ActionKind
	Topic   string
	QoS     byte
	Route   string
	Payload []byte
	Headers *Headers // republish only, when the action sets headers
}

// Failure is one action that could not be done, for the error action.
type Failure struct {
	Action   int // index in the rule's actions; -1 when the SQL itself failed
	Kind     ActionKind
	Resource string // the topic or route
	Message  string
}

type template struct {
	raw    string
	litLen int      // the length of all literal pieces
	lits   []string // len(exprs)+1 literal pieces around the expressions
	exprs  []sql.EvalFn
}

type action struct {
	kind    ActionKind
	topic   *template // nil for forward without topic: the incoming topic
	qos     byte
	route   string
	headers *headerTemplates
}

type headerTemplates struct {
	format, contentType, responseTopic, correlation, expiry *template
	userKeys, userValues                                    []*template
}

// Rule is one compiled rule. It is immutable and safe for concurrent use.
type Rule struct {
	name     string
	identity string
	sql      string
	disabled bool
	st       *sql.Statement
	actions  []action
	errAct   *action
}

// Name is the rule's name.
func (r *Rule) Name() string { return r.name }

// Identity is the thing the rule's republishes are authorized as ("" if unset).
func (r *Rule) Identity() string { return r.identity }

// SQL is the rule's statement as configured.
func (r *Rule) SQL() string { return r.sql }

// Filter is the topic filter of the FROM clause.
func (r *Rule) Filter() string { return r.st.Filter() }

// Matches reports whether the rule is enabled and its FROM filter matches topic.
func (r *Rule) Matches(topic string) bool { return !r.disabled && r.st.Match(topic) }

var ruleName = regexp.MustCompile(`^[a-zA-Z0-9_]{1,128}$`)

// CompileRule compiles one rule. Errors are *RuleError values (joined when
// there are several), each naming the field and, for SQL, the line:column.
func CompileRule(index int, cfg Config) (*Rule, error) {
	var errs []error
	fail := func(field string, err error) {
		errs = append(errs, &RuleError{Index: index, Name: cfg.Name, Field: field, Err: err})
	}
	if !ruleName.MatchString(cfg.Name) {
		fail("name", fmt.Errorf("%q is not a rule name: use 1 to 128 letters, digits and _, as AWS IoT does", cfg.Name))
	}
	if cfg.SQLVersion != "" && cfg.SQLVersion != sql.Version {
		fail("sql_version", fmt.Errorf("%q is not supported: the gateway implements AWS IoT SQL version %s only; set it to %s or remove it", cfg.SQLVersion, sql.Version, sql.Version))
	}
	r := &Rule{name: cfg.Name, identity: cfg.Identity, sql: cfg.SQL, disabled: cfg.Disabled}
	if strings.TrimSpace(cfg.SQL) == "" {
		fail("sql", errors.New("empty: a rule needs a statement like SELECT * FROM 'a/topic'"))
	} else if st, err := sql.Compile(cfg.SQL); err != nil {
		fail("sql", err)
	} else {
		r.st = st
	}
	if len(cfg.Actions) == 0 {
		fail("actions", errors.New("a rule needs at least one action (republish or forward)"))
	}
	var vars map[string]int
	if r.st != nil {
		vars = r.st.Vars()
	}
	lenient := r.st == nil
	for i, ac := range cfg.Actions {
		a, err := compileAction(ac, vars, lenient)
		if err != nil {
			fail(joinField(fmt.Sprintf("actions[%d]", i), err.field), err.err)
			continue
		}
		r.actions = append(r.actions, a)
	}
	if cfg.ErrorAction != nil {
		a, err := compileAction(*cfg.ErrorAction, vars, lenient)
		if err != nil {
			fail(joinField("error_action", err.field), err.err)
		} else {
			r.errAct = &a
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return r, nil
}

func joinField(parent, field string) string {
	if field == "" {
		return parent
	}
	return parent + "." + field
}

type fieldErr struct {
	field string
	err   error
}

func compileAction(ac ActionConfig, vars map[string]int, lenient bool) (action, *fieldErr) {
	switch {
	case ac.Republish != nil && ac.Forward != nil:
		return action{}, &fieldErr{"", errors.New("set one of republish or forward per action, not both")}
	case ac.Republish != nil:
		rp := ac.Republish
		if rp.QoS != 0 && rp.QoS != 1 {
			return action{}, &fieldErr{"republish.qos", fmt.Errorf("%d: the republish action takes QoS 0 or 1, as in AWS IoT", rp.QoS)}
		}
		if rp.Topic == "" {
			return action{}, &fieldErr{"republish.topic", errors.New("empty: give the topic to publish on, e.g. alarms/${topic(2)}")}
		}
		t, err := compileTemplate(rp.Topic, vars, lenient)
		if err != nil {
			return action{}, &fieldErr{"republish.topic", err}
		}
		if len(t.exprs) == 0 && !sql.ValidTopicName(t.lits[0]) {
			return action{}, &fieldErr{"republish.topic", fmt.Errorf("%q cannot be published to: a topic has no + or #", rp.Topic)}
		}
		a := action{kind: Republish, topic: t, qos: byte(rp.QoS)}
		if rp.Headers != nil {
			h, fe := compileHeaders(rp.Headers, vars, lenient)
			if fe != nil {
				fe.field = "republish.headers." + fe.field
				return action{}, fe
			}
			a.headers = h
		}
		return a, nil
	case ac.Forward != nil:
		fw := ac.Forward
		if fw.Route == "" {
			return action{}, &fieldErr{"forward.route", errors.New("empty: name the bridge route to forward into")}
		}
		a := action{kind: Forward, route: fw.Route}
		if fw.Topic != "" {
			t, err := compileTemplate(fw.Topic, vars, lenient)
			if err != nil {
				return action{}, &fieldErr{"forward.topic", err}
			}
			a.topic = t
		}
		return a, nil
	}
	return action{}, &fieldErr{"", errors.New("empty action: set republish or forward")}
}

func compileHeaders(hc *HeadersConfig, vars map[string]int, lenient bool) (*headerTemplates, *fieldErr) {
	h := &headerTemplates{}
	one := func(field, src string, dst **template) *fieldErr {
		if src == "" {
			return nil
		}
		t, err := compileTemplate(src, vars, lenient)
		if err != nil {
			return &fieldErr{field, err}
		}
		*dst = t
		return nil
	}
	if fe := one("payload_format_indicator", hc.PayloadFormatIndicator, &h.format); fe != nil {
		return nil, fe
	}
	if h.format != nil && len(h.format.exprs) == 0 && h.format.lits[0] != "UNSPECIFIED_BYTES" && h.format.lits[0] != "UTF8_DATA" {
		return nil, &fieldErr{"payload_format_indicator", fmt.Errorf("%q: use UNSPECIFIED_BYTES or UTF8_DATA", hc.PayloadFormatIndicator)}
	}
	if fe := one("content_type", hc.ContentType, &h.contentType); fe != nil {
		return nil, fe
	}
	if fe := one("response_topic", hc.ResponseTopic, &h.responseTopic); fe != nil {
		return nil, fe
	}
	if fe := one("correlation_data", hc.CorrelationData, &h.correlation); fe != nil {
		return nil, fe
	}
	if fe := one("message_expiry", hc.MessageExpiry, &h.expiry); fe != nil {
		return nil, fe
	}
	for i, up := range hc.UserProperties {
		var k, v *template
		if fe := one(fmt.Sprintf("user_properties[%d].key", i), up.Key, &k); fe != nil {
			return nil, fe
		}
		if k == nil {
			return nil, &fieldErr{fmt.Sprintf("user_properties[%d].key", i), errors.New("empty: a user property needs a key")}
		}
		if fe := one(fmt.Sprintf("user_properties[%d].value", i), up.Value, &v); fe != nil {
			return nil, fe
		}
		if v == nil {
			v = &template{lits: []string{""}}
		}
		h.userKeys = append(h.userKeys, k)
		h.userValues = append(h.userValues, v)
	}
	return h, nil
}

// render evaluates the header templates; an invalid value (a format that is
// not one of the two names, correlation data that is not base64, an expiry
// that is not a number of seconds) fails the action.
func (h *headerTemplates) render(c *sql.Ctx) (*Headers, error) {
	out := &Headers{}
	if h.format != nil {
		switch f := h.format.render(c); f {
		case "UTF8_DATA":
			out.PayloadUTF8 = new(true)
		case "UNSPECIFIED_BYTES":
			out.PayloadUTF8 = new(false)
		default:
			return nil, fmt.Errorf("headers.payload_format_indicator gave %q: want UNSPECIFIED_BYTES or UTF8_DATA", f)
		}
	}
	if h.contentType != nil {
		out.ContentType = h.contentType.render(c)
	}
	if h.responseTopic != nil {
		out.ResponseTopic = h.responseTopic.render(c)
		if !sql.ValidTopicName(out.ResponseTopic) {
			return nil, fmt.Errorf("headers.response_topic gave %q, which is not a topic name", out.ResponseTopic)
		}
	}
	if h.correlation != nil {
		s := h.correlation.render(c)
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("headers.correlation_data gave %q, which is not base64", s)
		}
		out.CorrelationData = b
	}
	if h.expiry != nil {
		s := h.expiry.render(c)
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("headers.message_expiry gave %q, which is not a number of seconds", s)
		}
		out.MessageExpiry = new(uint32(n))
	}
	for i, k := range h.userKeys {
		out.UserProperties = append(out.UserProperties, UserProperty{Key: k.render(c), Value: h.userValues[i].render(c)})
	}
	return out, nil
}

// compileTemplate splits a substitution template into literal text and ${...}
// expressions. An expression is evaluated on the incoming message (it cannot
// see the SELECT's AS names, as in AWS IoT).
func compileTemplate(s string, vars map[string]int, lenient bool) (*template, error) {
	t := &template{raw: s}
	var lit strings.Builder
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], "$$") {
			lit.WriteByte('$')
			i += 2
			continue
		}
		if !strings.HasPrefix(s[i:], "${") {
			lit.WriteByte(s[i])
			i++
			continue
		}
		end, err := templateEnd(s, i+2)
		if err != nil {
			return nil, err
		}
		src := s[i+2 : end]
		e, err := sql.CompileTemplateExpr(src, vars, lenient)
		if err != nil {
			var se *SQLError
			if errors.As(err, &se) {
				return nil, &SQLError{Pos: se.Pos, Err: se.Unwrap(), Msg: fmt.Sprintf("in template ${%s} at offset %d: %s", src, i, se.Msg)}
			}
			return nil, fmt.Errorf("template ${%s} at offset %d: %w", src, i, err)
		}
		t.lits = append(t.lits, lit.String())
		lit.Reset()
		t.exprs = append(t.exprs, e)
		i = end + 1
	}
	t.lits = append(t.lits, lit.String())
	for _, l := range t.lits {
		t.litLen += len(l)
	}
	return t, nil
}

// templateEnd finds the } that closes a ${ expression, skipping braces and
// quoted strings inside it.
func templateEnd(s string, from int) (int, error) {
	depth := 0
	for i := from; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'', '"':
			j := i + 1
			for j < len(s) && s[j] != c {
				if s[j] == '\\' {
					j++
				}
				j++
			}
			i = j
		case '{':
			depth++
		case '}':
			if depth == 0 {
				if i == from {
					return 0, fmt.Errorf("empty ${} at offset %d", from-2)
				}
				return i, nil
			}
			depth--
		}
	}
	return 0, fmt.Errorf("${ at offset %d is not closed with }", from-2)
}

func (t *template) render(c *sql.Ctx) string {
	if len(t.exprs) == 0 {
		return t.lits[0]
	}
	var sb strings.Builder
	sb.Grow(t.litLen + 24*len(t.exprs))
	for i, e := range t.exprs {
		sb.WriteString(t.lits[i])
		if s, ok := sql.ToString(e(c)); ok {
			sb.WriteString(s) // Undefined and Null render as nothing
		}
	}
	sb.WriteString(t.lits[len(t.lits)-1])
	return sb.String()
}

// Result is what one rule decided for one message.
type Result struct {
	Rule *Rule
	// Matched is false when WHERE was not true: no payload, no outputs.
	Matched bool
	Payload []byte
	Outputs []Output
	// Failures are the actions that could not even be prepared (a topic
	// template giving an invalid topic, the SQL failing on this payload).
	Failures []Failure
	// ErrorOutput is the error action for Failures, when the rule has one.
	ErrorOutput *Output
}

// Evaluate runs the rule on a message whose topic matches its filter (check
// with Matches). It is safe for concurrent use.
func (r *Rule) Evaluate(m *Message) Result {
	c := sql.NewCtx(m)
	defer c.Release()
	res := Result{Rule: r}
	out, matched, err := r.st.Run(c)
	if !matched {
		return res
	}
	res.Matched = true
	if err != nil {
		for i, a := range r.actions {
			res.Failures = append(res.Failures, Failure{Action: i, Kind: a.kind, Resource: a.resource(c),
				Message: fmt.Sprintf("evaluating the rule's SQL: %v", err)})
		}
		res.ErrorOutput = r.errorOutput(c, res.Failures)
		return res
	}
	if len(out) > 0 && len(m.Payload) > 0 && &out[0] == &m.Payload[0] {
		res.Payload = out // SELECT * passes the incoming bytes through
	} else {
		res.Payload = append([]byte{}, out...)
	}
	res.Outputs = make([]Output, 0, len(r.actions))
	for i, a := range r.actions {
		o := Output{Action: i, Kind: a.kind, QoS: a.qos, Route: a.route, Payload: res.Payload}
		o.Topic = a.target(c)
		if !sql.ValidTopicName(o.Topic) {
			res.Failures = append(res.Failures, Failure{Action: i, Kind: a.kind, Resource: o.Topic,
				Message: fmt.Sprintf("%v: the topic template %q gave %q, which cannot be published to", ErrActionTarget, a.topic.raw, o.Topic)})
			continue
		}
		if a.headers != nil {
			h, err := a.headers.render(c)
			if err != nil {
				res.Failures = append(res.Failures, Failure{Action: i, Kind: a.kind, Resource: o.Topic,
					Message: fmt.Sprintf("%v: %v", ErrActionTarget, err)})
				continue
			}
			o.Headers = h
		}
		res.Outputs = append(res.Outputs, o)
	}
	if len(res.Failures) > 0 {
		res.ErrorOutput = r.errorOutput(c, res.Failures)
	}
	return res
}

// Eval is the allocation-free core of Evaluate for callers that only want the
// outgoing payload: it appends it to dst. matched is false when WHERE is not true.
func (r *Rule) Eval(m *Message, dst []byte) (out []byte, matched bool, err error) {
	c := sql.NewCtx(m)
	defer c.Release()
	o, matched, err := r.st.Run(c)
	if !matched || err != nil {
		return dst, matched, err
	}
	return append(dst, o...), true, nil
}

func (a *action) target(c *sql.Ctx) string {
	if a.topic == nil {
		return c.Message().Topic
	}
	return a.topic.render(c)
}

func (a *action) resource(c *sql.Ctx) string {
	if a.kind == Forward {
		return a.route
	}
	return a.target(c)
}

// OnError builds the error action's output for failures the caller met while
// performing the outputs (a failed enqueue, a refused publish). ok is false
// when the rule has no error action.
func (r *Rule) OnError(m *Message, failures []Failure) (Output, bool) {
	if r.errAct == nil || len(failures) == 0 {
		return Output{}, false
	}
	c := sql.NewCtx(m)
	defer c.Release()
	r.st.SetVars(c) // the error action's template may use SET variables
	o := r.errorOutput(c, failures)
	return *o, o != nil
}

// errorOutput renders the error action with AWS's error message format:
// ruleName, topic, clientId, base64OriginalPayload and failures.
func (r *Rule) errorOutput(c *sql.Ctx, failures []Failure) *Output {
	if r.errAct == nil {
		return nil
	}
	fs := make([]sql.Value, len(failures))
	for i, f := range failures {
		fs[i] = sql.ObjectValue(
			"failedAction", sql.StringValue(f.Kind.awsName()),
			"failedResource", sql.StringValue(f.Resource),
			"errorMessage", sql.StringValue(f.Message),
		)
	}
	m := c.Message()
	kv := []any{
		"ruleName", sql.StringValue(r.name),
		"topic", sql.StringValue(m.Topic),
		"clientId", sql.OptString(m.ClientID),
		"base64OriginalPayload", sql.StringValue(base64.StdEncoding.EncodeToString(m.Payload)),
		"failures", sql.ArrayValue(fs),
	}
	if m.TraceID != "" {
		kv = append(kv, "traceId", sql.StringValue(m.TraceID))
	}
	msg := sql.ObjectValue(kv...)
	a := r.errAct
	o := &Output{Action: -1, Kind: a.kind, Topic: a.target(c), QoS: a.qos, Route: a.route, Payload: sql.AppendJSON(nil, msg)}
	if a.headers != nil {
		if h, err := a.headers.render(c); err == nil {
			o.Headers = h // the error action cannot fail further: bad headers are left out
		}
	}
	return o
}

// Set is a compiled rule set, immutable: a reload compiles a new one.
type Set struct {
	rules []*Rule
}

// Compile compiles every rule. The Set holds the rules that compiled; err joins
// one *RuleError per problem (nil when all compiled), so `check` can report
// every bad rule at once and the daemon can decide to refuse the set.
func Compile(cfgs []Config) (*Set, error) {
	s := &Set{}
	var errs []error
	seen := map[string]int{}
	for i, cfg := range cfgs {
		if j, dup := seen[cfg.Name]; dup && cfg.Name != "" {
			errs = append(errs, &RuleError{Index: i, Name: cfg.Name, Field: "name",
				Err: fmt.Errorf("the name is already used by rules[%d]: rule names are unique", j)})
			continue
		}
		seen[cfg.Name] = i
		r, err := CompileRule(i, cfg)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.rules = append(s.rules, r)
	}
	return s, errors.Join(errs...)
}

// Rules lists the compiled rules in configuration order.
func (s *Set) Rules() []*Rule { return s.rules }

// Any reports whether some enabled rule's filter matches topic: the cheap test
// before Process.
func (s *Set) Any(topic string) bool {
	for _, r := range s.rules {
		if r.Matches(topic) {
			return true
		}
	}
	return false
}

// Process evaluates every enabled rule whose filter matches the message's
// topic and returns the results of those whose WHERE was true.
func (s *Set) Process(m *Message) []Result {
	var out []Result
	for _, r := range s.rules {
		if !r.Matches(m.Topic) {
			continue
		}
		if res := r.Evaluate(m); res.Matched {
			out = append(out, res)
		}
	}
	return out
}

// Trial is what TrySQL shows for one statement and one message.
type Trial struct {
	// TopicMatches is whether the message's topic matches FROM; when false the
	// rule would not run, and the rest is what it would give if it did.
	TopicMatches bool
	Matched      bool // WHERE was true (or absent)
	Payload      []byte
	Err          error // the statement failed on this payload
}

// TrySQL compiles one statement and evaluates it on one message: what
// `edgegw rule test --sql ... --topic ... --payload ...` prints.
func TrySQL(src string, m *Message) (Trial, error) {
	st, err := sql.Compile(src)
	if err != nil {
		return Trial{}, fmt.Errorf("compiling the SQL: %w", err)
	}
	c := sql.NewCtx(m)
	defer c.Release()
	tr := Trial{TopicMatches: st.Match(m.Topic)}
	out, matched, err := st.Run(c)
	tr.Matched, tr.Err = matched, err
	if matched && err == nil {
		tr.Payload = append([]byte{}, out...)
	}
	return tr, nil
}
