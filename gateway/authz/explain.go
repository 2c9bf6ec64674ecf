package authz

import (
	"fmt"
	"strings"
)

// Explanation is a decision with its reasons, for `edgegw policy test` and audit.
type Explanation struct {
	Allowed  bool
	Action   Action
	Resource string // as matched: "topic/building/hq/...", "client/ID", "topicfilter/..."
	Thing    string
	ClientID string
	How      string   // how the thing and its policies were found
	Policies []string // attached policy names, in evaluation order
	// Decider is the statement that decided: the first matching Deny, else the first
	// matching Allow; nil when no statement allowed it (default deny).
	Decider *StatementRef
	// Matched lists every statement that matched the request, Deny or Allow.
	Matched []StatementRef
	// NotApplied lists statements covering the action that do not apply to this
	// connection (unresolved variable, condition false), with the reason.
	NotApplied []StatementRef
	Variables  []Variable
}

// StatementRef names one statement of one policy.
type StatementRef struct {
	Policy string
	File   string
	Index  int
	Sid    string
	Line   int
	Effect Effect
	Reason string // for NotApplied: why
}

func (r StatementRef) String() string {
	s := fmt.Sprintf("%s Statement[%d]", r.File, r.Index)
	if r.Sid != "" {
		s += fmt.Sprintf(" %q", r.Sid)
	}
	return s + fmt.Sprintf(" (line %d, %s)", r.Line, r.Effect)
}

// Variable is one policy variable or condition key used by the attached policies,
// with its value for this connection.
type Variable struct {
	Name   string
	Values []string // resolved values (one for most keys)
	Why    string   // non-empty when unresolved: the reason
}

func refOf(st *Statement) StatementRef {
	return StatementRef{Policy: st.Policy.Name, File: st.Policy.File, Index: st.Index, Sid: st.Sid, Line: st.Line, Effect: st.Effect}
}

// Explain decides like Allowed and says why. It allocates; use it off the hot path.
func (s *Session) Explain(a Action, resource string) Explanation {
	ex := Explanation{Action: a, ClientID: s.id.ClientID, Thing: s.id.ThingName, How: s.how}
	if a >= numActions {
		return ex
	}
	prefix := resourcePrefix[a]
	ex.Resource = a.Resource(resource)
	for _, p := range s.policies {
		ex.Policies = append(ex.Policies, p.Name)
	}
	var firstAllow *StatementRef
	for _, ss := range s.stmts {
		if !ss.st.mask.has(a) {
			continue
		}
		ref := refOf(ss.st)
		if !ss.mask.has(a) {
			ref.Reason = ss.why
			if ref.Reason == "" {
				ref.Reason = "its conditions do not hold for " + a.String()
			}
			ex.NotApplied = append(ex.NotApplied, ref)
			continue
		}
		if !ss.matches(prefix, resource) {
			continue
		}
		ex.Matched = append(ex.Matched, ref)
		if ss.st.Effect == Deny && (ex.Decider == nil || ex.Decider.Effect != Deny) {
			r := ref
			ex.Decider = &r
		}
		if ss.st.Effect == Allow && firstAllow == nil {
			r := ref
			firstAllow = &r
		}
	}
	if ex.Decider == nil && firstAllow != nil {
		ex.Decider = firstAllow
	}
	ex.Allowed = ex.Decider != nil && ex.Decider.Effect == Allow
	seen := map[string]bool{}
	for _, p := range s.policies {
		for _, st := range p.Statements {
			for _, k := range st.keys {
				if seen[strings.ToLower(k.name)] {
					continue
				}
				seen[strings.ToLower(k.name)] = true
				v := Variable{Name: k.name}
				c := s.ctx.with(a == Connect) // connect-only keys exist while iot:Connect is evaluated
				if k.multi() {
					v.Values, v.Why = c.values(k)
				} else {
					val, why := c.substitute(k)
					v.Why = why
					if why == "" {
						v.Values = []string{val}
					}
				}
				ex.Variables = append(ex.Variables, v)
			}
		}
	}
	return ex
}

// String renders the explanation for a terminal.
func (ex Explanation) String() string {
	var b strings.Builder
	if ex.Allowed {
		b.WriteString("ALLOW")
	} else {
		b.WriteString("DENY")
	}
	fmt.Fprintf(&b, " %s %s\n", ex.Action, ex.Resource)
	fmt.Fprintf(&b, "  client ID: %q, %s\n", ex.ClientID, ex.How)
	fmt.Fprintf(&b, "  policies:  %s\n", strings.Join(ex.Policies, ", "))
	switch {
	case ex.Decider == nil:
		b.WriteString("  decided by: no statement allowed it (default deny)\n")
	case ex.Decider.Effect == Deny:
		fmt.Fprintf(&b, "  decided by: %s (an explicit Deny wins)\n", ex.Decider)
	default:
		fmt.Fprintf(&b, "  decided by: %s\n", ex.Decider)
	}
	for _, m := range ex.Matched {
		if ex.Decider == nil || m != *ex.Decider {
			fmt.Fprintf(&b, "  also matched: %s\n", m)
		}
	}
	for _, n := range ex.NotApplied {
		fmt.Fprintf(&b, "  not applied: %s: %s\n", n, n.Reason)
	}
	if len(ex.Variables) > 0 {
		b.WriteString("  variables:\n")
		for _, v := range ex.Variables {
			if v.Why != "" {
				fmt.Fprintf(&b, "    ${%s} = (unresolved: %s)\n", v.Name, v.Why)
				continue
			}
			q := make([]string, len(v.Values))
			for i, s := range v.Values {
				q[i] = fmt.Sprintf("%q", s)
			}
			fmt.Fprintf(&b, "    ${%s} = %s\n", v.Name, strings.Join(q, ", "))
		}
	}
	return b.String()
}
