package authz

import (
	"crypto/x509"
	"errors"
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

	broken         map[string]*FileError // policy name -> why it did not load
	brokenList     []*FileError          // the same, in file order
	defaultsBroken string                // a default policy that did not load
}

type thingEntry struct {
	thing    Thing
	policies []*Policy
	broken   string // an attached policy that did not load: the thing is denied
}

// FileError is one policy that did not load: its file failed to parse, another file
// defines the same policy name, or the registry attaches a policy no file defines.
// Everything attached to it is denied (Bind returns a *DenyError with
// ErrPolicyBroken) until it is fixed; the rest of the policy set works.
type FileError struct {
	Policy string    // the policy name, as devices.yaml attaches it
	File   string    // the file at fault (the registry for a missing policy)
	Err    ErrorList // every error, each naming file:line
	// Denied names what the broken policy takes down, for the operator:
	// "thing NAME", "group NAME" (every thing it matches), "default policies".
	Denied []string
}

func (e *FileError) Error() string {
	msg := fmt.Sprintf("policy %q did not load", e.Policy)
	if len(e.Denied) > 0 {
		msg += "; denied until it is fixed: " + strings.Join(e.Denied, ", ")
	}
	return msg + ":\n" + e.Err.Error()
}

// Unwrap lets errors.As find the individual *Error values.
func (e *FileError) Unwrap() error { return e.Err }

// Load parses the registry and every policy document and compiles them. All errors
// are returned at once as an ErrorList, each naming file:line. It refuses the whole
// set when any file is bad; LoadEach keeps the good files.
func Load(registry Source, policies []Source) (*Engine, error) {
	e, broken, err := LoadEach(registry, policies)
	var all ErrorList
	var regErrs ErrorList
	if errors.As(err, &regErrs) {
		all = append(all, regErrs...)
	} else if err != nil {
		return nil, err
	}
	for _, fe := range broken {
		all = append(all, fe.Err...)
	}
	if len(all) > 0 {
		return nil, all.sorted()
	}
	return e, nil
}

// LoadEach is Load for a running gateway: one bad policy file must not take the
// others down. It returns the Engine built from every policy that loaded and one
// *FileError per policy that did not; the things, groups and default policies that
// attach a broken policy are denied at Bind with ErrPolicyBroken (fail closed, and
// loudly: the caller logs each FileError, and each refused connection carries the
// policy name). err is non-nil (an ErrorList) only when the registry itself is
// broken: then there is no Engine.
func LoadEach(registry Source, policies []Source) (*Engine, []*FileError, error) {
	reg, re := parseRegistry(registry)
	e := &Engine{registryFile: registry.Name, policies: map[string]*Policy{}, things: map[string]*thingEntry{},
		broken: map[string]*FileError{}}
	files := e.loadPolicies(policies)
	for _, ref := range reg.refs {
		if _, ok := files[ref.name]; !ok {
			e.markBroken(ref.name, registry.Name, ErrorList{&Error{File: registry.Name, Line: ref.line,
				Msg: fmt.Sprintf("unknown policy %q: no policy file %s.json, %s.yaml or %s.yml", ref.name, ref.name, ref.name, ref.name)}})
		}
	}
	if len(re.list) > 0 {
		return nil, e.brokenList, re.list.sorted()
	}

	used := map[string]bool{}
	e.defaults = e.resolve(used, nil, reg.DefaultPolicies, &e.defaultsBroken)
	if e.defaultsBroken != "" {
		fe := e.broken[e.defaultsBroken]
		fe.Denied = append(fe.Denied, "default policies")
	}
	for i := range reg.Groups {
		e.groups = append(e.groups, &reg.Groups[i])
	}
	for _, t := range reg.Things {
		e.addThing(t, registry.Name, used)
	}
	for _, g := range e.groups {
		var bad string
		e.resolve(used, nil, g.Policies, &bad)
		if bad != "" && g.nameOnly() {
			fe := e.broken[bad]
			fe.Denied = append(fe.Denied, "group "+g.Name)
		}
	}
	slices.Sort(e.names)
	for name, p := range e.policies {
		if !used[name] {
			e.notes = append(e.notes, fmt.Sprintf("%s: policy %q is attached to nothing in %s", p.File, name, registry.Name))
		}
	}
	slices.Sort(e.notes)
	return e, e.brokenList, nil
}

// markBroken records errs against the policy name (defined in file), adding to
// the errors already recorded for it.
func (e *Engine) markBroken(name, file string, errs ErrorList) {
	if fe, ok := e.broken[name]; ok {
		fe.Err = append(fe.Err, errs...)
		return
	}
	fe := &FileError{Policy: name, File: file, Err: errs}
	e.broken[name] = fe
	e.brokenList = append(e.brokenList, fe)
}

// loadPolicies parses every policy file into e.policies, or into e.broken when it
// has errors or shares its name with another file. It returns the file of each name.
func (e *Engine) loadPolicies(policies []Source) map[string]string {
	files := map[string]string{}
	for _, src := range policies {
		p, pe := parsePolicy(src)
		if prev, dup := files[p.Name]; dup {
			// Two files, one name: neither can be trusted to be the one meant.
			dupErr := &Error{File: src.Name, Msg: fmt.Sprintf("policy %q is also defined by %s", p.Name, prev)}
			e.markBroken(p.Name, src.Name, append(ErrorList{dupErr}, pe.list...))
			delete(e.policies, p.Name)
			continue
		}
		files[p.Name] = src.Name
		if len(pe.list) > 0 {
			e.markBroken(p.Name, src.Name, pe.list.sorted())
			continue
		}
		e.policies[p.Name] = p
		e.notes = append(e.notes, p.Notes...)
	}
	return files
}

// resolve appends the named policies to dst and marks them used; the first broken
// one is reported in *bad.
func (e *Engine) resolve(used map[string]bool, dst []*Policy, names []string, bad *string) []*Policy {
	for _, n := range names {
		used[n] = true
		if _, ok := e.broken[n]; ok {
			if *bad == "" {
				*bad = n
			}
			continue
		}
		if p := e.policies[n]; !slices.Contains(dst, p) {
			dst = append(dst, p)
		}
	}
	return dst
}

// addThing resolves thing t's own and group policies and adds it to e; a thing
// that attaches a broken policy is denied (and named in that policy's FileError).
func (e *Engine) addThing(t Thing, registryFile string, used map[string]bool) {
	te := &thingEntry{thing: t}
	te.policies = e.resolve(used, nil, t.Policies, &te.broken)
	for _, g := range e.groups {
		if g.matches(&te.thing) {
			te.thing.Groups = append(te.thing.Groups, g.Name)
			te.policies = e.resolve(used, te.policies, g.Policies, &te.broken)
		}
	}
	for _, p := range te.policies {
		te.thing.AllPolicies = append(te.thing.AllPolicies, p.Name)
	}
	if te.broken != "" {
		if !t.Disabled {
			fe := e.broken[te.broken]
			fe.Denied = append(fe.Denied, "thing "+t.Name)
		}
	} else if len(te.policies) == 0 && !t.Disabled {
		e.notes = append(e.notes, fmt.Sprintf("%s:%d: thing %q has no policy: it can connect to nothing", registryFile, t.Line, t.Name))
	}
	e.things[t.Name] = te
	e.names = append(e.names, t.Name)
}

// Broken returns the policies that did not load (see LoadEach), in file order.
func (e *Engine) Broken() []*FileError { return slices.Clone(e.brokenList) }

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

// Identity is what the broker knows about a connecting client: the request context
// every policy variable and condition key is read from. ThingName is the thing bound
// to the verified certificate (or, on a loopback listener without TLS, the client
// ID); empty means no thing. A field left zero makes its keys absent (a statement
// needing them does not apply), never a wrong match.
//
//	field         keys it gives                          the broker fills it from
//	ClientID      iot:ClientId                           CONNECT client identifier
//	ThingName     iot:Connection.Thing.*                 the thing bound to the certificate
//	Cert          iot:Certificate.*, iot:CertificateId   the verified peer certificate
//	SourceIP      aws:SourceIp                           the TCP peer address
//	CleanSession  iot:ConnectAttributes PersistentConnect  CONNECT clean session / clean start
//	HasWill       iot:ConnectAttributes LastWill         CONNECT will flag
//	WillTopic     iot:LastWillTopic                      CONNECT will topic (with HasWill)
//	ServerName    iot:DomainName                         TLS ClientHello server name (SNI)
//	TLS           aws:SecureTransport                    the connection is TLS
//
// iot:ConnectAttributes and iot:LastWillTopic exist only while iot:Connect is
// evaluated, as in AWS.
type Identity struct {
	ClientID     string
	ThingName    string
	Username     string
	Cert         *x509.Certificate
	SourceIP     netip.Addr
	CleanSession bool
	HasWill      bool
	WillTopic    string
	ServerName   string
	TLS          bool
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
		if te.broken != "" {
			return nil, e.brokenDeny(id, te.broken)
		}
		s.thing, s.policies = &te.thing, te.policies
		s.how = fmt.Sprintf("thing %q listed in %s at line %d", id.ThingName, e.registryFile, te.thing.Line)
	} else if id.ThingName != "" {
		t := &Thing{Name: id.ThingName}
		for _, g := range e.groups {
			if g.nameOnly() && g.matches(t) {
				t.Groups = append(t.Groups, g.Name)
				for _, n := range g.Policies {
					if _, bad := e.broken[n]; bad {
						return nil, e.brokenDeny(id, n)
					}
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
		if e.defaultsBroken != "" {
			return nil, e.brokenDeny(id, e.defaultsBroken)
		}
		if len(e.defaults) == 0 {
			return nil, &DenyError{Thing: id.ThingName, ClientID: id.ClientID, Reason: ErrUnknownThing}
		}
		s.policies = e.defaults
		s.how = fmt.Sprintf("thing %q unknown: default policies of %s", id.ThingName, e.registryFile)
	}
	s.bind()
	return s, nil
}

// NewSession binds policies that did not come from the registry (a custom
// authorizer's answer, parsed with ParsePolicy) to one connection, with the same
// semantics as Bind: variables substituted, conditions evaluated, Deny wins. No
// registry thing is attached, so iot:Connection.Thing.* variables do not resolve
// (as in AWS for a custom-authorizer connection). how says where the policies came
// from, for Explain.
func NewSession(id Identity, how string, policies []*Policy) *Session {
	s := &Session{id: id, how: how, policies: slices.Clone(policies)}
	s.bind()
	return s
}

func (s *Session) bind() {
	s.ctx = newBindCtx(s.id, s.thing)
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
}

func (e *Engine) brokenDeny(id Identity, policy string) *DenyError {
	de := &DenyError{Thing: id.ThingName, ClientID: id.ClientID, Reason: ErrPolicyBroken, Policy: policy}
	if fe := e.broken[policy]; fe != nil {
		de.File = fe.File
	}
	return de
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
