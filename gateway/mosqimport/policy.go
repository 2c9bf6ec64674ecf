package mosqimport

import (
	"encoding/json"
	"fmt"
	"strings"
)

// PolicyDoc is one AWS IoT policy document to write as policies/NAME.json.
type PolicyDoc struct {
	Name       string
	Statements []Statement
}

// Statement is one policy statement.
type Statement struct {
	Sid      string
	Effect   string // Allow | Deny
	Action   []string
	Resource []string
}

// JSON renders the document (Version 2012-10-17, so variables substitute).
func (p *PolicyDoc) JSON() []byte {
	type st struct {
		Sid      string   `json:"Sid,omitempty"`
		Effect   string   `json:"Effect"`
		Action   []string `json:"Action"`
		Resource []string `json:"Resource"`
	}
	doc := struct {
		Version   string `json:"Version"`
		Statement []st   `json:"Statement"`
	}{Version: "2012-10-17"}
	for _, s := range p.Statements {
		doc.Statement = append(doc.Statement, st(s))
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		panic("mosqimport: marshalling a policy: " + err.Error()) // plain strings only
	}
	return append(out, '\n')
}

// Policy names the importer writes.
const (
	PolicyBase     = "mosquitto-base"
	PolicyAllowAll = "mosquitto-allow-all"
	PolicyPatterns = "acl-patterns"
	GroupAll       = "all-clients"
)

// UserPolicy is the policy name for the ACL lines of a user.
func UserPolicy(user string) string { return "acl-user-" + user }

var (
	actPublish   = []string{"iot:Publish", "iot:RetainPublish"}
	actReceive   = []string{"iot:Receive"}
	actReadWrite = []string{"iot:Publish", "iot:RetainPublish", "iot:Receive"}
)

func actionsFor(a Access) []string {
	switch a {
	case Read:
		return actReceive
	case Write:
		return actPublish
	}
	return actReadWrite // readwrite, and deny (which refuses both)
}

func basePolicy() PolicyDoc {
	return PolicyDoc{Name: PolicyBase, Statements: []Statement{
		{Sid: "ConnectAsThing", Effect: "Allow", Action: []string{"iot:Connect"},
			Resource: []string{"client/" + varUser}},
		{Sid: "SubscribeAny", Effect: "Allow", Action: []string{"iot:Subscribe"},
			Resource: []string{"topicfilter/*"}},
	}}
}

func allowAllPolicy() PolicyDoc {
	return PolicyDoc{Name: PolicyAllowAll, Statements: []Statement{
		{Sid: "NoACLFile", Effect: "Allow", Action: actReadWrite, Resource: []string{"topic/*"}},
	}}
}

func topicResources(gs []globPat) []string {
	out := make([]string, len(gs))
	for i, g := range gs {
		out[i] = "topic/" + g.String()
	}
	return out
}

// rule is one ACL line with its translation.
type rule struct {
	line   *ACLLine
	levels []level
	tr     translation
}

func newRule(l *ACLLine) *rule {
	lv := parseLevels(l.Topic, l.Pattern)
	return &rule{line: l, levels: lv, tr: translate(lv)}
}

// statements are the policy statements of one ACL line.
func (r *rule) statements() []Statement {
	sid := fmt.Sprintf("Line%d", r.line.Line)
	acts := actionsFor(r.line.Access)
	if r.line.Access == Deny {
		return []Statement{{Sid: sid + "Deny", Effect: "Deny", Action: acts, Resource: topicResources(r.tr.globs)}}
	}
	out := []Statement{{Sid: sid, Effect: "Allow", Action: acts, Resource: topicResources(r.tr.globs)}}
	if len(r.tr.trims) > 0 {
		out = append(out, Statement{Sid: sid + "OneLevel", Effect: "Deny", Action: acts, Resource: topicResources(r.tr.trims)})
	}
	if r.tr.dollar {
		out = append(out, Statement{Sid: sid + "NoDollar", Effect: "Deny", Action: acts, Resource: []string{"topic/$*"}})
	}
	return out
}

// scope is what applies to one kind of client: a user's lines and the
// patterns (sb fixes %c and %u), or the patterns alone for any other thing.
type scope struct {
	who   string
	sb    subst
	user  []*rule
	pats  []*rule
	users bool // user lines come first (Mosquitto) and pattern denies do not override them
}

func (s *scope) all() []*rule { return append(append([]*rule(nil), s.user...), s.pats...) }

// budget bounds the comparisons of one import (a hostile ACL file must not
// make the importer run for hours): each comparison costs the product of the
// two patterns' lengths. Lines left unchecked are reported as not exact.
type budget struct{ left int }

func (b *budget) spend(as, bs []lang) bool {
	cost := 0
	for _, a := range as {
		for _, l := range bs {
			cost += (len(a.items) + 1) * (len(l.items) + 1)
		}
	}
	if b.left < cost {
		b.left = 0
		return false
	}
	b.left -= cost
	return true
}

const maxWork = 50_000_000

func describeFilter(r *rule) string {
	return fmt.Sprintf("%s (%s %s)", r.line.Pos, r.line.Access, r.line.Topic)
}

// check finds where the translation of s's rules differs from Mosquitto, and
// reports it through inexact (once per line and reason).
func (s *scope) check(b *budget, inexact func(r *rule, reason string)) {
	ck := &checker{scope: s, b: b, inexact: inexact, langs: map[*rule][]lang{}}
	rules := s.all()
	for _, r := range rules {
		ck.checkRule(r, rules)
	}
	if s.users {
		ck.checkPatternDenies()
	}
}

// checker holds what one scope's check shares: the budget, where differences
// are reported, and each rule's topic language, computed once.
type checker struct {
	*scope
	b       *budget
	inexact func(r *rule, reason string)
	langs   map[*rule][]lang
}

// fl is the language of the topics rule r's filter matches.
func (ck *checker) fl(r *rule) []lang {
	if l, ok := ck.langs[r]; ok {
		return l
	}
	l := filterLangs(r.levels, ck.sb)
	ck.langs[r] = l
	return l
}

func (ck *checker) globLangs(gs []globPat) []lang {
	var out []lang
	for _, g := range gs {
		out = append(out, globLang(g, ck.sb))
	}
	return out
}

var dollarLang = []lang{{items: []item{{cls: clsChar, c: '$'}, {cls: clsAll, loop: true}}}}

// checkRule reports where the translation of r denies topics beyond the line's
// own intent that another (granting) rule of the scope grants.
func (ck *checker) checkRule(r *rule, rules []*rule) {
	var extra []lang // what the translation denies beyond the line's own intent
	what := ""
	switch {
	case r.line.Access == Deny && !r.tr.exact:
		ck.inexact(r, "no exact policy form for '+' before a later level and '#': the Deny is widened to "+
			strings.Join(topicResources(r.tr.globs), ", ")+", which may refuse topics Mosquitto allows")
		return
	case r.line.Access == Deny:
		what = "the Deny (a policy '*' also spans levels, '+' does not) also refuses"
	case !r.tr.exact:
		return // reported when translating: not imported
	default:
		what = "the Deny that keeps '+' to one level also refuses"
	}
	extra = ck.globLangs(r.tr.trims)
	if r.tr.dollar {
		extra = append(extra, dollarLang...)
	}
	if len(extra) == 0 {
		return
	}
	for _, m := range rules {
		if m == r || m.line.Access == Deny {
			continue
		}
		if ck.users && r.line.Pattern && m.line.Pattern {
			// Checked once for any client (variables as any thing name,
			// a superset of this user's values).
			continue
		}
		if r.line.Access != Deny && r.line.Access&m.line.Access == 0 {
			continue
		}
		if !ck.b.spend(extra, ck.fl(m)) {
			ck.inexact(r, "too many or too long ACL lines to compare all of them; treated as not exact")
			continue
		}
		if anyIntersect(extra, ck.fl(m)) {
			ck.inexact(r, fmt.Sprintf("%s topics that %s grants (for %s)", what, describeFilter(m), ck.who))
		}
	}
}

// checkPatternDenies reports pattern denies that overlap a user's granting
// lines: a pattern deny does not override a user line in Mosquitto (user lines
// are checked first); in a policy every Deny wins.
func (ck *checker) checkPatternDenies() {
	for _, d := range ck.pats {
		if d.line.Access != Deny {
			continue
		}
		dl := ck.globLangs(d.tr.globs)
		for _, m := range ck.user {
			if m.line.Access == Deny {
				continue
			}
			if !ck.b.spend(dl, ck.fl(m)) {
				ck.inexact(d, "too many or too long ACL lines to compare all of them; treated as not exact")
				continue
			}
			if anyIntersect(dl, ck.fl(m)) {
				ck.inexact(d, fmt.Sprintf("Mosquitto checks user lines before patterns, so %s still grants the topics both match (for %s); in edgegw this Deny wins", describeFilter(m), ck.who))
			}
		}
	}
}
