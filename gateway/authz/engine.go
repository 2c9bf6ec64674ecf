package authz

import (
	"crypto/x509"
	"fmt"
	"iter"
	"net/netip"
	"slices"
	"strings"
)

// Engine is a compiled registry and policy set. It is immutable and safe for
// concurrent use; a reload builds a new Engine.
type Engine struct {
	registryFile string
	policies     map[string]*Policy
	things       map[string]*thingEntry
	names        []string // sorted thing names
	groups       []*Group
	defaults     []*Policy
	notes        []string
}

type thingEntry struct {
	thing    Thing
	policies []*Policy
}

// Load parses the registry and every policy document and compiles them. All errors
// are returned at once as an ErrorList, each naming file:line.
func Load(registry Source, policies []Source) (*Engine, error) {
	var all ErrorList
	reg, re := parseRegistry(registry)
	all = append(all, re.list...)
	e := &Engine{registryFile: registry.Name, policies: map[string]*Policy{}, things: map[string]*thingEntry{}}
	for _, src := range policies {
		p, pe := parsePolicy(src)
		all = append(all, pe.list...)
		if prev, dup := e.policies[p.Name]; dup {
			all = append(all, &Error{File: src.Name, Msg: fmt.Sprintf("policy %q is also defined by %s", p.Name, prev.File)})
			continue
		}
		e.policies[p.Name] = p
		e.notes = append(e.notes, p.Notes...)
	}
	for _, ref := range reg.refs {
		if _, ok := e.policies[ref.name]; !ok {
			all = append(all, &Error{File: registry.Name, Line: ref.line,
				Msg: fmt.Sprintf("unknown policy %q: no policy file %s.json, %s.yaml or %s.yml", ref.name, ref.name, ref.name, ref.name)})
		}
	}
	if len(all) > 0 {
		return nil, all.sorted()
	}

	used := map[string]bool{}
	resolve := func(dst []*Policy, names []string) []*Policy {
		for _, n := range names {
			p := e.policies[n]
			used[n] = true
			if !slices.Contains(dst, p) {
				dst = append(dst, p)
			}
		}
		return dst
	}
	e.defaults = resolve(nil, reg.DefaultPolicies)
	for i := range reg.Groups {
		e.groups = append(e.groups, &reg.Groups[i])
	}
	for _, t := range reg.Things {
		te := &thingEntry{thing: t}
		te.policies = resolve(nil, t.Policies)
		for _, g := range e.groups {
			if g.matches(&te.thing) {
				te.thing.Groups = append(te.thing.Groups, g.Name)
				te.policies = resolve(te.policies, g.Policies)
			}
		}
		for _, p := range te.policies {
			te.thing.AllPolicies = append(te.thing.AllPolicies, p.Name)
		}
		if len(te.policies) == 0 && !t.Disabled {
			e.notes = append(e.notes, fmt.Sprintf("%s:%d: thing %q has no policy: it can connect to nothing", registry.Name, t.Line, t.Name))
		}
		e.things[t.Name] = te
		e.names = append(e.names, t.Name)
	}
	for _, g := range e.groups {
		resolve(nil, g.Policies)
	}
	slices.Sort(e.names)
	for name, p := range e.policies {
		if !used[name] {
			e.notes = append(e.notes, fmt.Sprintf("%s: policy %q is attached to nothing in %s", p.File, name, registry.Name))
		}
	}
	slices.Sort(e.notes)
	return e, nil
}

// Notes are remarks that are not errors: actions edgegw ignores, policies attached to
// nothing, things without policies. `edgegw check` prints them.
func (e *Engine) Notes() []string { return slices.Clone(e.notes) }

// Thing returns the registry entry for name (a copy).
func (e *Engine) Thing(name string) (Thing, bool) {
	te, ok := e.things[name]
	if !ok {
		return Thing{}, false
	}
	return te.thing.clone(), true
}

// Things yields every listed thing in name order (copies).
func (e *Engine) Things() iter.Seq[Thing] {
	return func(yield func(Thing) bool) {
		for _, n := range e.names {
			if !yield(e.things[n].thing.clone()) {
				return
			}
		}
	}
}

// Policy returns the compiled policy of that name.
func (e *Engine) Policy(name string) (*Policy, bool) {
	p, ok := e.policies[name]
	return p, ok
}

// Identity is what the broker knows about a connecting client. ThingName is the thing
// bound to the verified certificate (or, on a loopback listener without TLS, the
// client ID); empty means no thing.
type Identity struct {
	ClientID     string
	ThingName    string
	Username     string
	Cert         *x509.Certificate
	SourceIP     netip.Addr
	CleanSession bool
	HasWill      bool
}

// Session is the authorization state of one connection: every attached statement
// with its variables substituted and its conditions evaluated. It is immutable and
// safe for concurrent use.
type Session struct {
	id       Identity
	thing    *Thing // nil when no thing is attached
	how      string // how the policies were found
	policies []*Policy
	stmts    []*sessStmt
	rules    [numActions]struct{ deny, allow []*sessStmt }
	ctx      *bindCtx
}

type sessStmt struct {
	st          *Statement
	mask        actionMask
	globs       []glob
	notResource bool
	why         string // why the statement does not apply (mask 0)
}

func (s *sessStmt) matches(prefix, res string) bool {
	for i := range s.globs {
		if s.globs[i].match(prefix, res) {
			return !s.notResource
		}
	}
	return s.notResource
}

// Bind resolves the connecting client's thing and policies and prepares its Session.
// It returns a *DenyError when the thing is disabled, or unknown with no group or
// default policy to apply.
func (e *Engine) Bind(id Identity) (*Session, error) {
	s := &Session{id: id}
	if te, ok := e.things[id.ThingName]; ok && id.ThingName != "" {
		if te.thing.Disabled {
			return nil, &DenyError{Thing: id.ThingName, ClientID: id.ClientID, Reason: ErrThingDisabled}
		}
		s.thing, s.policies = &te.thing, te.policies
		s.how = fmt.Sprintf("thing %q listed in %s at line %d", id.ThingName, e.registryFile, te.thing.Line)
	} else if id.ThingName != "" {
		t := &Thing{Name: id.ThingName}
		for _, g := range e.groups {
			if g.nameOnly() && g.matches(t) {
				t.Groups = append(t.Groups, g.Name)
				for _, n := range g.Policies {
					if p := e.policies[n]; !slices.Contains(s.policies, p) {
						s.policies = append(s.policies, p)
						t.AllPolicies = append(t.AllPolicies, n)
					}
				}
			}
		}
		if len(t.Groups) > 0 {
			s.thing = t
			s.how = fmt.Sprintf("thing %q not listed; matched by name in group(s) %s", t.Name, strings.Join(t.Groups, ", "))
		}
	}
	if s.thing == nil {
		if len(e.defaults) == 0 {
			return nil, &DenyError{Thing: id.ThingName, ClientID: id.ClientID, Reason: ErrUnknownThing}
		}
		s.policies = e.defaults
		s.how = fmt.Sprintf("thing %q unknown: default policies of %s", id.ThingName, e.registryFile)
	}
	s.ctx = newBindCtx(id, s.thing)
	for _, p := range s.policies {
		for _, st := range p.Statements {
			ss := s.bindStatement(st)
			s.stmts = append(s.stmts, ss)
			for a := Action(0); a < numActions; a++ {
				if !ss.mask.has(a) {
					continue
				}
				if st.Effect == Deny {
					s.rules[a].deny = append(s.rules[a].deny, ss)
				} else {
					s.rules[a].allow = append(s.rules[a].allow, ss)
				}
			}
		}
	}
	return s, nil
}

func (s *Session) bindStatement(st *Statement) *sessStmt {
	ss := &sessStmt{st: st, notResource: st.notResource, mask: st.mask}
	if ss.mask == 0 {
		ss.why = "none of its actions is enforced by edgegw"
		return ss
	}
	for _, rp := range st.resources {
		if rp.never {
			continue
		}
		if !rp.tmpl.vars {
			ss.globs = append(ss.globs, rp.static)
			continue
		}
		g, why := rp.tmpl.glob(s.ctx)
		if why != "" {
			ss.mask, ss.why = 0, "Resource "+rp.tmpl.raw+": "+why
			return ss
		}
		ss.globs = append(ss.globs, g)
	}
	if st.connectOnly {
		// iot:ConnectAttributes exists on CONNECT only: evaluate both ways.
		okC, whyC := evalConds(st.conds, s.ctx.with(true))
		okO, whyO := evalConds(st.conds, s.ctx.with(false))
		if !okC {
			ss.mask &^= 1 << Connect
		}
		if !okO {
			ss.mask &= 1 << Connect
		}
		if ss.mask == 0 {
			ss.why = whyC
			if whyC == "" {
				ss.why = whyO
			}
		}
		return ss
	}
	if ok, why := evalConds(st.conds, s.ctx); !ok {
		ss.mask, ss.why = 0, why
	}
	return ss
}

// Allowed reports whether the session may perform a on resource: the client ID for
// Connect, the topic name for Publish, Receive and RetainPublish, the topic filter
// as sent for Subscribe. A PUBLISH with RETAIN needs both Publish and RetainPublish.
// It does not allocate.
func (s *Session) Allowed(a Action, resource string) bool {
	if a >= numActions {
		return false
	}
	prefix := resourcePrefix[a]
	r := &s.rules[a]
	for _, st := range r.deny {
		if st.matches(prefix, resource) {
			return false
		}
	}
	for _, st := range r.allow {
		if st.matches(prefix, resource) {
			return true
		}
	}
	return false
}

// Thing is the thing attached to the session (nil when default policies apply).
func (s *Session) Thing() *Thing { return s.thing }
