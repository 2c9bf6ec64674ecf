package authz

import (
	"maps"
	"strconv"
)

// Registry is the parsed device registry (devices.yaml):
//
//	version: 1
//	default: {policies: []}          # for certificates whose thing is neither listed nor matched by a group
//	things:
//	  - name: temp-f01-001           # [a-zA-Z0-9:_-]+, unique
//	    type: temperature            # thing type
//	    attributes: {floor: "01", building: hq}
//	    policies: [temperature]      # policy names: policy file names without extension
//	    disabled: false
//	groups:
//	  - name: temperature-sensors
//	    match: {name: "temp-*", type: temperature, attributes: {floor: "01"}}  # all given must hold
//	    policies: [temperature]
//
// A group with only a name pattern also covers things that are not listed: such a
// thing is known by name only (no type, no attributes).
type Registry struct {
	File            string
	DefaultPolicies []string
	Things          []Thing
	Groups          []Group

	refs []policyRef
}

// Thing is one registry entry.
type Thing struct {
	Name       string
	Type       string
	Attributes map[string]string
	Policies   []string // attached directly
	Disabled   bool
	Line       int

	// Filled by the Engine: groups whose match holds, and every attached policy
	// (direct first, then by group, without duplicates).
	Groups      []string
	AllPolicies []string
	Listed      bool // false for a thing known only through a group's name pattern
}

// Group attaches policies to every thing its Match selects.
type Group struct {
	Name     string
	Match    GroupMatch
	Policies []string
	Line     int

	name glob
}

// GroupMatch selects things; every non-empty criterion must hold.
type GroupMatch struct {
	Name       string // IAM glob (`*`, `?`) on the thing name
	Type       string
	Attributes map[string]string
}

func (g *Group) matches(t *Thing) bool {
	if g.Match.Name != "" && !g.name.match("", t.Name) {
		return false
	}
	if g.Match.Type != "" && g.Match.Type != t.Type {
		return false
	}
	for k, v := range g.Match.Attributes {
		if tv, ok := t.Attributes[k]; !ok || tv != v {
			return false
		}
	}
	return true
}

// nameOnly reports whether the group selects by name pattern alone (so it can cover
// things that are not listed).
func (g *Group) nameOnly() bool {
	return g.Match.Name != "" && g.Match.Type == "" && len(g.Match.Attributes) == 0
}

type policyRef struct {
	name string
	line int
}

// ParseRegistry parses devices.yaml (errors are an ErrorList naming file:line). It
// does not check that attached policies exist; Load does.
func ParseRegistry(src Source) (*Registry, error) {
	r, e := parseRegistry(src)
	if err := e.err(); err != nil {
		return nil, err
	}
	return r, nil
}

func parseRegistry(src Source) (*Registry, *errs) {
	e := &errs{file: src.Name}
	r := &Registry{File: src.Name}
	root, perr := parseYAML(src.Name, src.Data)
	if perr != nil {
		e.list = append(e.list, perr)
		return r, e
	}
	if root.kind != mapNode {
		e.add(root.line, "the registry must be a mapping with version, default, things, groups")
		return r, e
	}
	sawVersion := false
	for i, k := range root.keys {
		v := root.vals[i]
		switch k.str {
		case "version":
			sawVersion = true
			if v.kind != scalarNode || v.str != "1" {
				e.add(v.line, "version: unsupported registry version %q: want 1", v.str)
			}
		case "default":
			if v.kind == nullNode {
				continue
			}
			if v.kind != mapNode {
				e.add(v.line, "default: must be a mapping with policies")
				continue
			}
			for j, dk := range v.keys {
				if dk.str != "policies" {
					e.add(dk.line, "default: unknown key %q: want policies", dk.str)
					continue
				}
				r.DefaultPolicies = r.policyList(e, "default.policies", v.vals[j])
			}
		case "things":
			r.parseThings(e, v)
		case "groups":
			r.parseGroups(e, v)
		default:
			e.add(k.line, "unknown key %q: want version, default, things, groups", k.str)
		}
	}
	if !sawVersion {
		e.add(root.line, "missing version: add \"version: 1\"")
	}
	return r, e
}

func (r *Registry) policyList(e *errs, where string, n *node) []string {
	if n.kind == nullNode {
		return nil
	}
	list, ok := n.strings()
	if !ok || n.kind != listNode {
		e.add(n.line, "%s: must be a list of policy names", where)
		return nil
	}
	for i, p := range list {
		if p == "" {
			e.add(n.items[i].line, "%s: empty policy name", where)
			continue
		}
		r.refs = append(r.refs, policyRef{name: p, line: n.items[i].line})
	}
	return list
}

func stringMap(e *errs, where string, n *node) map[string]string {
	if n.kind == nullNode {
		return nil
	}
	if n.kind != mapNode {
		e.add(n.line, "%s: must be a mapping of names to values", where)
		return nil
	}
	m := make(map[string]string, len(n.keys))
	for i, k := range n.keys {
		v := n.vals[i]
		if v.kind != scalarNode {
			e.add(v.line, "%s.%s: must be a single value, not %s", where, k.str, v.kind)
			continue
		}
		m[k.str] = v.str
	}
	return m
}

func (r *Registry) parseThings(e *errs, n *node) {
	if n.kind == nullNode {
		return
	}
	if n.kind != listNode {
		e.add(n.line, "things: must be a list")
		return
	}
	seen := map[string]int{}
	for i, tn := range n.items {
		where := "things[" + strconv.Itoa(i) + "]"
		if tn.kind != mapNode {
			e.add(tn.line, "%s: must be a mapping with name, type, attributes, policies, disabled", where)
			continue
		}
		t := Thing{Line: tn.line, Listed: true}
		for j, k := range tn.keys {
			v := tn.vals[j]
			switch k.str {
			case "name":
				t.Name = v.str
				if v.kind != scalarNode || !ValidThingName(v.str) {
					e.add(v.line, "%s.name: %q is not a valid thing name: want 1-128 of [a-zA-Z0-9:_-]", where, v.str)
				}
			case "type":
				t.Type = v.str
				if v.kind != scalarNode || (v.str != "" && !ValidThingName(v.str)) {
					e.add(v.line, "%s.type: %q is not a valid thing type name: want [a-zA-Z0-9:_-]", where, v.str)
				}
			case "attributes":
				t.Attributes = stringMap(e, where+".attributes", v)
			case "policies":
				t.Policies = r.policyList(e, where+".policies", v)
			case "disabled":
				switch v.str {
				case "true":
					t.Disabled = true
				case "false":
				default:
					e.add(v.line, "%s.disabled: %q is not true or false", where, v.str)
				}
			default:
				e.add(k.line, "%s: unknown key %q: want name, type, attributes, policies, disabled", where, k.str)
			}
		}
		if t.Name == "" {
			e.add(tn.line, "%s: missing name", where)
			continue
		}
		if first, dup := seen[t.Name]; dup {
			e.add(tn.line, "%s: thing %q is already defined at line %d", where, t.Name, first)
			continue
		}
		seen[t.Name] = tn.line
		r.Things = append(r.Things, t)
	}
}

func (r *Registry) parseGroups(e *errs, n *node) {
	if n.kind == nullNode {
		return
	}
	if n.kind != listNode {
		e.add(n.line, "groups: must be a list")
		return
	}
	seen := map[string]int{}
	for i, gn := range n.items {
		where := "groups[" + strconv.Itoa(i) + "]"
		if gn.kind != mapNode {
			e.add(gn.line, "%s: must be a mapping with name, match, policies", where)
			continue
		}
		g := Group{Line: gn.line}
		sawMatch := false
		for j, k := range gn.keys {
			v := gn.vals[j]
			switch k.str {
			case "name":
				g.Name = v.str
			case "match":
				sawMatch = true
				if v.kind != mapNode {
					e.add(v.line, "%s.match: must be a mapping with name, type, attributes", where)
					continue
				}
				for m, mk := range v.keys {
					mv := v.vals[m]
					switch mk.str {
					case "name":
						g.Match.Name = mv.str
					case "type":
						g.Match.Type = mv.str
					case "attributes":
						g.Match.Attributes = stringMap(e, where+".match.attributes", mv)
					default:
						e.add(mk.line, "%s.match: unknown key %q: want name, type, attributes", where, mk.str)
					}
				}
			case "policies":
				g.Policies = r.policyList(e, where+".policies", v)
			default:
				e.add(k.line, "%s: unknown key %q: want name, match, policies", where, k.str)
			}
		}
		switch {
		case g.Name == "":
			e.add(gn.line, "%s: missing name", where)
			continue
		case !sawMatch || (g.Match.Name == "" && g.Match.Type == "" && len(g.Match.Attributes) == 0):
			e.add(gn.line, "%s: group %q needs a match with at least one of name, type, attributes", where, g.Name)
			continue
		}
		if first, dup := seen[g.Name]; dup {
			e.add(gn.line, "%s: group %q is already defined at line %d", where, g.Name, first)
			continue
		}
		seen[g.Name] = gn.line
		g.name = compileGlob(g.Match.Name)
		r.Groups = append(r.Groups, g)
	}
}

func (t Thing) clone() Thing {
	t.Attributes = maps.Clone(t.Attributes)
	t.Policies = append([]string(nil), t.Policies...)
	t.Groups = append([]string(nil), t.Groups...)
	t.AllPolicies = append([]string(nil), t.AllPolicies...)
	return t
}
