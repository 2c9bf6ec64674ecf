package authz

import (
	"fmt"
	"net/netip"
	"path"
	"strconv"
	"strings"
)

// Source is one input file: its name (for errors and, for policies, the policy name:
// the base name without extension) and its bytes. Callers do the reading.
type Source struct {
	Name string
	Data []byte
}

// Effect is a statement's Effect.
type Effect uint8

// Statement effects.
const (
	Allow Effect = iota + 1
	Deny
)

func (e Effect) String() string {
	switch e {
	case Allow:
		return "Allow"
	case Deny:
		return "Deny"
	}
	return "Effect(?)"
}

// Policy is one compiled policy document.
type Policy struct {
	Name       string // file base name without extension: what devices.yaml attaches
	File       string
	Version    string
	Statements []*Statement
	Notes      []string // "file:line: ..." remarks that are not errors (ignored actions...)
}

// Statement is one compiled statement of a policy.
type Statement struct {
	Policy *Policy
	Index  int // position in the Statement list, from 0
	Sid    string
	Line   int
	Effect Effect

	mask        actionMask
	resources   []resourcePattern
	notResource bool
	conds       []*condition
	connectOnly bool       // a condition uses iot:ConnectAttributes (present on CONNECT only)
	keys        []*keySpec // every variable and condition key the statement uses
}

type resourcePattern struct {
	tmpl   template
	static glob // compiled at load when tmpl has no variables
	never  bool // a resource of another service: never matches an MQTT request
}

const policyVersion = "2012-10-17"

// ParsePolicy parses and compiles one policy document (.json, .yaml or .yml). It is
// the entry point for `edgegw check` and fuzzing; errors are an ErrorList.
func ParsePolicy(src Source) (*Policy, error) {
	p, e := parsePolicy(src)
	if err := e.err(); err != nil {
		return nil, err
	}
	return p, nil
}

func policyName(file string) string {
	base := path.Base(strings.ReplaceAll(file, "\\", "/"))
	return strings.TrimSuffix(base, path.Ext(base))
}

func parsePolicy(src Source) (*Policy, *errs) {
	e := &errs{file: src.Name}
	p := &Policy{Name: policyName(src.Name), File: src.Name}
	root, perr := parseDocument(src.Name, src.Data)
	if perr != nil {
		e.list = append(e.list, perr)
		return p, e
	}
	if root.kind != mapNode {
		e.add(root.line, "a policy document must be an object with \"Version\" and \"Statement\", not %s", root.kind)
		return p, e
	}
	var stmts *node
	vars := false
	for i, k := range root.keys {
		v := root.vals[i]
		switch k.str {
		case "Version":
			p.Version = v.str
			switch {
			case v.kind != scalarNode:
				e.add(v.line, "\"Version\" must be a string")
			case v.str == policyVersion:
				vars = true
			case v.str == "2008-10-17":
				p.note(v.line, "Version 2008-10-17: policy variables are not substituted (use %q)", policyVersion)
			default:
				e.add(v.line, "unsupported Version %q: want %q", v.str, policyVersion)
			}
		case "Id":
		case "Statement":
			stmts = v
		default:
			e.add(k.line, "unknown key %q%s: want Version, Id, Statement", k.str, didYouMean(k.str, "Version", "Id", "Statement"))
		}
	}
	if p.Version == "" {
		p.note(root.line, "no Version: policy variables are not substituted (add \"Version\": %q)", policyVersion)
	}
	switch {
	case stmts == nil:
		e.add(root.line, "missing \"Statement\"")
	case stmts.kind == mapNode:
		p.parseStatement(e, stmts, 0, vars)
	case stmts.kind == listNode:
		if len(stmts.items) == 0 {
			e.add(stmts.line, "\"Statement\" is empty")
		}
		for i, s := range stmts.items {
			if s.kind != mapNode {
				e.add(s.line, "Statement[%d] must be an object, not %s", i, s.kind)
				continue
			}
			p.parseStatement(e, s, i, vars)
		}
	default:
		e.add(stmts.line, "\"Statement\" must be an object or a list of objects, not %s", stmts.kind)
	}
	return p, e
}

func (p *Policy) note(line int, format string, args ...any) {
	p.Notes = append(p.Notes, fmt.Sprintf("%s:%d: %s", p.File, line, fmt.Sprintf(format, args...)))
}

func didYouMean(got string, want ...string) string {
	for _, w := range want {
		if strings.EqualFold(got, w) {
			return fmt.Sprintf(" (did you mean %q?)", w)
		}
	}
	return ""
}

func (p *Policy) parseStatement(e *errs, n *node, idx int, vars bool) {
	s := &Statement{Policy: p, Index: idx, Line: n.line}
	where := fmt.Sprintf("Statement[%d]", idx)
	k := s.readKeys(e, n, where)
	if s.Effect == 0 {
		e.add(n.line, "%s: missing \"Effect\"", where)
	}
	p.parseActions(e, s, n, k.action, k.notAction, where)
	p.parseResources(e, s, n, k.resource, k.notResource, where, vars)
	if k.cond != nil {
		s.parseConditions(e, k.cond, where, vars)
	}
	p.Statements = append(p.Statements, s)
}

// stmtNodes are the parts of a statement compiled after its keys are read.
type stmtNodes struct {
	action, notAction, resource, notResource, cond *node
}

// readKeys reads a statement's keys: Sid and Effect into s, the others into the
// returned nodes. Principal and unknown keys are errors.
func (s *Statement) readKeys(e *errs, n *node, where string) stmtNodes {
	var sn stmtNodes
	for i, k := range n.keys {
		v := n.vals[i]
		switch k.str {
		case "Sid":
			s.Sid = v.str
		case "Effect":
			switch {
			case v.kind == scalarNode && v.str == "Allow":
				s.Effect = Allow
			case v.kind == scalarNode && v.str == "Deny":
				s.Effect = Deny
			default:
				e.add(v.line, "%s: \"Effect\" must be \"Allow\" or \"Deny\", not %q", where, v.str)
				s.Effect = Deny // keep going; the document is rejected anyway
			}
		case "Action":
			sn.action = v
		case "NotAction":
			sn.notAction = v
		case "Resource":
			sn.resource = v
		case "NotResource":
			sn.notResource = v
		case "Condition":
			sn.cond = v
		case "Principal", "NotPrincipal":
			e.add(k.line, "%s: %q is not allowed in an AWS IoT policy (policies attach to things by devices.yaml)", where, k.str)
		default:
			e.add(k.line, "%s: unknown key %q%s: want Sid, Effect, Action, NotAction, Resource, NotResource, Condition",
				where, k.str, didYouMean(k.str, "Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition"))
		}
	}
	return sn
}

// itemLine is the line of the i-th string of n: its own line in a list, n's line
// for a single string.
func itemLine(n *node, i int) int {
	if n.kind == listNode {
		return n.items[i].line
	}
	return n.line
}

// pickElement chooses between a statement element and its Not form (Action or
// NotAction, Resource or NotResource; name is the first): exactly one must be
// given. It returns the chosen node (nil: none), whether it is the Not form,
// and its strings; each problem is added to e.
func pickElement(e *errs, n, pos, neg *node, name, where string) (chosen *node, negated bool, list []string) {
	chosen, cname := pos, name
	switch {
	case pos != nil && neg != nil:
		e.add(neg.line, "%s: \"%s\" and \"Not%s\" cannot both be given", where, name, name)
	case pos == nil && neg == nil:
		e.add(n.line, "%s: missing \"%s\"", where, name)
	case neg != nil:
		chosen, cname, negated = neg, "Not"+name, true
	}
	if chosen == nil {
		return nil, false, nil
	}
	list, ok := chosen.strings()
	if !ok || len(list) == 0 {
		e.add(chosen.line, "%s: %q must be a string or a non-empty list of strings", where, cname)
	}
	return chosen, negated, list
}

// parseActions compiles Action (or NotAction, exactly one of the two) into s.mask.
func (p *Policy) parseActions(e *errs, s *Statement, n, action, notAction *node, where string) {
	an, negated, list := pickElement(e, n, action, notAction, "Action", where)
	for i, a := range list {
		line := itemLine(an, i)
		note, msg := compileAction(a, &s.mask)
		if msg != "" {
			e.add(line, "%s: %s", where, msg)
		} else if note != "" {
			p.note(line, "%s: %s", where, note)
		}
	}
	if negated {
		s.mask = allActions &^ s.mask
	}
}

// parseResources compiles Resource (or NotResource, exactly one of the two) into
// s.resources; vars says whether policy variables are substituted.
func (p *Policy) parseResources(e *errs, s *Statement, n, resource, notResource *node, where string, vars bool) {
	rn, negated, list := pickElement(e, n, resource, notResource, "Resource", where)
	s.notResource = negated
	for i, r := range list {
		line := itemLine(rn, i)
		rp, msg := compileResource(r, vars)
		if msg != "" {
			e.add(line, "%s: %s", where, msg)
			continue
		}
		s.resources = append(s.resources, rp)
		s.addKeys(rp.tmpl)
		p.noteUnknown(line, where, rp.tmpl)
	}
}

func (p *Policy) noteUnknown(line int, where string, t template) {
	for _, u := range t.unknown {
		p.note(line, "%s: variable \"${%s}\" is not one edgegw knows%s: it never resolves, so this statement never applies (as in AWS)",
			where, u, didYouMeanKey(u))
	}
}

func didYouMeanKey(name string) string {
	if g := suggestKey(strings.ToLower(name)); g != "" {
		return fmt.Sprintf(" (did you mean %s?)", g)
	}
	return ""
}

func (s *Statement) addKeys(t template) {
	for _, part := range t.parts {
		if part.key != nil {
			s.keys = append(s.keys, part.key)
		}
	}
}

// resourceTypes are the AWS IoT ARN resource types (for validation); client,
// topic and topicfilter are requested by MQTT actions, thing by the shadow
// actions.
var resourceTypes = map[string]bool{
	"client": true, "topic": true, "topicfilter": true,
	"thing": true, "thinggroup": true, "thingtype": true, "billinggroup": true, "cert": true,
	"cacert": true, "policy": true, "rule": true, "destination": true, "job": true,
	"jobtemplate": true, "rolealias": true, "authorizer": true, "stream": true, "otaupdate": true,
	"provisioningtemplate": true, "domainconfiguration": true, "dimension": true,
	"securityprofile": true, "mitigationaction": true, "scheduledaudit": true,
	"custommetric": true, "fleetmetric": true, "index": true, "tunnel": true, "package": true,
	"retainedmessage": true,
}

const resourceForms = "want client/ID, topic/NAME, topicfilter/FILTER, thing/NAME, arn:aws:iot:REGION:ACCOUNT:client|topic|topicfilter|thing/..., or *"

// compileResource validates one Resource element and compiles it to a pattern over
// "TYPE/NAME" (the ARN prefix is dropped: region and account are not checked).
func compileResource(raw string, vars bool) (resourcePattern, string) {
	var rp resourcePattern
	rest := raw
	switch {
	case raw == "":
		return rp, "empty resource: " + resourceForms
	case raw == "*":
	case strings.HasPrefix(raw, "arn:"):
		parts := splitARN(raw)
		if len(parts) < 6 {
			return rp, fmt.Sprintf("bad ARN %q: want arn:aws:iot:REGION:ACCOUNT:TYPE/NAME", raw)
		}
		switch part := parts[1]; {
		case part == "aws" || part == "aws-cn" || part == "aws-us-gov" || strings.HasPrefix(part, "aws-iso"):
		case strings.ContainsAny(part, "*?") && globMatchString(part, "aws"):
		default:
			return rp, fmt.Sprintf("bad ARN %q: unknown partition %q", raw, part)
		}
		svc := strings.ToLower(parts[2])
		if !globMatchString(svc, "iot") {
			if !validServiceName(svc) {
				return rp, fmt.Sprintf("bad ARN %q: bad service %q", raw, parts[2])
			}
			rp.never = true // another service's resource: never an MQTT request
			return rp, ""
		}
		rest = parts[5]
		if rest == "" {
			return rp, fmt.Sprintf("bad ARN %q: empty resource after the account", raw)
		}
		typ, _, slash := strings.Cut(rest, "/")
		if !strings.ContainsAny(typ, "*?$") {
			if !slash {
				return rp, fmt.Sprintf("bad ARN %q: resource %q: want TYPE/NAME, e.g. topic/NAME", raw, rest)
			}
			if !resourceTypes[typ] {
				return rp, fmt.Sprintf("bad ARN %q: unknown resource type %q: want client, topic or topicfilter", raw, typ)
			}
		}
	default:
		typ, _, slash := strings.Cut(raw, "/")
		if !slash || (typ != "client" && typ != "topic" && typ != "topicfilter" && typ != "thing") {
			return rp, fmt.Sprintf("bad resource %q: %s", raw, resourceForms)
		}
	}
	t, msg := parseTemplate(rest, vars)
	if msg != "" {
		return rp, msg
	}
	rp.tmpl = t
	if !t.vars {
		rp.static, _ = t.glob(nil)
	}
	return rp, ""
}

// splitARN splits an ARN into at most 6 parts at colons outside ${...}.
func splitARN(s string) []string {
	var parts []string
	depth, start := 0, 0
	for i := 0; i < len(s) && len(parts) < 5; i++ {
		switch {
		case s[i] == '$' && i+1 < len(s) && s[i+1] == '{':
			depth++
		case s[i] == '}' && depth > 0:
			depth--
		case s[i] == ':' && depth == 0:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// condition is one (operator, key) pair of a Condition block.
type condition struct {
	line     int
	op       string // as written
	base     condOp
	set      setOp
	ifExists bool
	key      *keySpec
	vals     []template
	nets     []netip.Prefix
}

type condOp uint8

const (
	opStringEquals condOp = iota + 1
	opStringNotEquals
	opStringEqualsIgnoreCase
	opStringNotEqualsIgnoreCase
	opStringLike
	opStringNotLike
	opBool
	opIPAddress
	opNotIPAddress
	opArnEquals
	opArnNotEquals
	opArnLike
	opArnNotLike
	opNull
	opNumericEquals
	opNumericNotEquals
	opNumericLessThan
	opNumericLessThanEquals
	opNumericGreaterThan
	opNumericGreaterThanEquals
)

type setOp uint8

const (
	setNone setOp = iota
	setAny
	setAll
)

var condOps = map[string]condOp{
	"stringequals": opStringEquals, "stringnotequals": opStringNotEquals,
	"stringequalsignorecase": opStringEqualsIgnoreCase, "stringnotequalsignorecase": opStringNotEqualsIgnoreCase,
	"stringlike": opStringLike, "stringnotlike": opStringNotLike, "bool": opBool,
	"ipaddress": opIPAddress, "notipaddress": opNotIPAddress,
	"arnequals": opArnEquals, "arnnotequals": opArnNotEquals, "arnlike": opArnLike, "arnnotlike": opArnNotLike,
	"null":          opNull,
	"numericequals": opNumericEquals, "numericnotequals": opNumericNotEquals,
	"numericlessthan": opNumericLessThan, "numericlessthanequals": opNumericLessThanEquals,
	"numericgreaterthan": opNumericGreaterThan, "numericgreaterthanequals": opNumericGreaterThanEquals,
}

func (o condOp) numeric() bool { return o >= opNumericEquals && o <= opNumericGreaterThanEquals }

// globbing reports whether the operator's values are IAM wildcard patterns. IAM's
// ArnEquals is ArnLike: both match each ARN component with `*` and `?`.
func (o condOp) globbing() bool {
	switch o {
	case opStringLike, opStringNotLike, opArnEquals, opArnNotEquals, opArnLike, opArnNotLike:
		return true
	}
	return false
}

var unsupportedOps = []string{
	"DateEquals", "DateNotEquals",
	"DateLessThan", "DateLessThanEquals", "DateGreaterThan", "DateGreaterThanEquals", "BinaryEquals",
}

func (o condOp) negated() bool {
	switch o {
	case opStringNotEquals, opStringNotEqualsIgnoreCase, opStringNotLike, opNotIPAddress, opArnNotEquals, opArnNotLike,
		opNumericNotEquals:
		return true
	}
	return false
}

const supportedKeys = "iot:ClientId, iot:Connection.Thing.ThingName, iot:Connection.Thing.ThingTypeName, " +
	"iot:Connection.Thing.Attributes[NAME], iot:Connection.Thing.IsAttached, iot:Certificate.*, iot:CertificateId, " +
	"aws:SourceIp, aws:SecureTransport, iot:DomainName, iot:ConnectAttributes, iot:LastWillTopic"

func (s *Statement) parseConditions(e *errs, n *node, where string, vars bool) {
	if n.kind != mapNode {
		e.add(n.line, "%s: \"Condition\" must be an object of operators, not %s", where, n.kind)
		return
	}
	for i, opn := range n.keys {
		block := n.vals[i]
		opName := opn.str
		op, set, ifExists, msg := parseCondOp(opName)
		if msg != "" {
			e.add(opn.line, "%s: %s", where, msg)
			continue
		}
		if block.kind != mapNode {
			e.add(block.line, "%s: condition %q must be an object of keys, not %s", where, opName, block.kind)
			continue
		}
		for j, kn := range block.keys {
			c := &condition{line: kn.line, op: opName, base: op, set: set, ifExists: ifExists}
			s.parseCondition(e, c, kn, block.vals[j], where, vars)
		}
	}
}

// parseCondOp splits a condition operator as written ("ForAnyValue:StringLikeIfExists")
// into its base operator, set prefix and IfExists suffix, or says why it is not one.
func parseCondOp(opName string) (op condOp, set setOp, ifExists bool, msg string) {
	rest := opName
	if r, ok := cutPrefixFold(rest, "ForAnyValue:"); ok {
		rest, set = r, setAny
	} else if r, ok := cutPrefixFold(rest, "ForAllValues:"); ok {
		rest, set = r, setAll
	}
	if len(rest) > len("IfExists") && strings.EqualFold(rest[len(rest)-len("IfExists"):], "IfExists") {
		rest, ifExists = rest[:len(rest)-len("IfExists")], true
	}
	op, ok := condOps[strings.ToLower(rest)]
	if !ok {
		msg := fmt.Sprintf("unknown condition operator %q", opName)
		for _, u := range unsupportedOps {
			if strings.EqualFold(u, rest) {
				msg = fmt.Sprintf("condition operator %q is not supported by edgegw (no key it evaluates is a date or binary)", opName)
			}
		}
		return 0, 0, false, msg
	}
	if op == opNull && (ifExists || set != setNone) {
		return 0, 0, false, fmt.Sprintf("condition operator %q: Null takes no prefix or IfExists", opName)
	}
	return op, set, ifExists, ""
}

// parseCondition compiles one key (kn) and its values (vn) of a condition block
// into c and adds c to the statement when every value is valid.
func (s *Statement) parseCondition(e *errs, c *condition, kn, vn *node, where string, vars bool) {
	k, msg := parseKey(kn.str)
	if msg == "" && k == nil {
		if !validKeyName(kn.str) {
			msg = fmt.Sprintf("bad condition key %q: want PREFIX:NAME, e.g. iot:ClientId; supported keys are %s", kn.str, supportedKeys)
		} else {
			k = &keySpec{name: kn.str, kind: kAbsent}
			s.Policy.note(kn.line, "%s: %s", where, absentKeyNote(kn.str))
		}
	}
	if msg != "" {
		e.add(kn.line, "%s: %s", where, msg)
		return
	}
	c.key = k
	if k.connectOnly() {
		s.connectOnly = true
	}
	s.keys = append(s.keys, k)
	op, opName := c.base, c.op
	vals, ok := vn.strings()
	// An empty list is valid: AWS documents ForAllValues:StringEquals with []
	// ("only the default features"); see condition.eval for its meaning.
	if !ok || (len(vals) == 0 && op == opNull) {
		e.add(vn.line, "%s: condition %q %q: want a string or a list of strings", where, opName, kn.str)
		return
	}
	if op == opNull && len(vals) != 1 {
		e.add(vn.line, "%s: condition %q %q: Null takes one value, true or false", where, opName, kn.str)
		return
	}
	bad := false
	for _, v := range vals {
		msg, skip := c.checkValue(v)
		if msg != "" {
			e.add(vn.line, "%s: condition %q %q: %s", where, opName, kn.str, msg)
			bad = true
			if skip {
				continue
			}
		}
		if op == opIPAddress || op == opNotIPAddress {
			pfx, _ := parseIPOrCIDR(v)
			c.nets = append(c.nets, pfx)
		}
		t, msg := parseTemplate(v, vars)
		if msg != "" {
			e.add(vn.line, "%s: condition %q %q: %s", where, opName, kn.str, msg)
			bad = true
			continue
		}
		s.addKeys(t)
		s.Policy.noteUnknown(vn.line, where, t)
		c.vals = append(c.vals, t)
	}
	if !bad {
		s.conds = append(s.conds, c)
	}
}

// checkValue says what is wrong with one value v of condition c, if anything;
// skip says the value is not compiled at all (a bad Bool or IP value still is,
// so that every error in it is reported).
func (c *condition) checkValue(v string) (msg string, skip bool) {
	op := c.base
	if c.key.kind == kWillTopic && !strings.HasPrefix(v, "arn:") && !(v == "*" && op.globbing()) && op != opNull {
		return fmt.Sprintf("%q: iot:LastWillTopic is a topic ARN: want arn:aws:iot:REGION:ACCOUNT:topic/NAME (edgegw does not check region and account)", v), true
	}
	if op.numeric() {
		if _, err := strconv.ParseFloat(v, 64); err != nil && !strings.Contains(v, "${") {
			return fmt.Sprintf("%q is not a number", v), true
		}
	}
	switch op {
	case opBool, opNull:
		if !strings.EqualFold(v, "true") && !strings.EqualFold(v, "false") {
			return fmt.Sprintf("%q is not true or false", v), false
		}
	case opIPAddress, opNotIPAddress:
		if _, err := parseIPOrCIDR(v); err != nil {
			return fmt.Sprintf("bad IP address or CIDR %q", v), false
		}
	}
	return "", false
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

func parseIPOrCIDR(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}
