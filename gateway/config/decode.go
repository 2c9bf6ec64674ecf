package config

import (
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// FieldError is one problem in a config file: where it is and what is wanted.
type FieldError struct {
	File string // the config file as given to Load
	Line int    // 1-based; 0 when unknown (a Config built in code)
	Path string // key path, e.g. "bridge.routes[0].topic"; "" for the file itself
	Msg  string
}

// Error formats the problem as "file:line: path: msg".
func (e *FieldError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":" + strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Error holds every problem found in a config, in file order.
type Error struct {
	Errors []*FieldError
}

// Error lists the problems, one a line.
func (e *Error) Error() string {
	s := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		s[i] = fe.Error()
	}
	return strings.Join(s, "\n")
}

// report collects FieldErrors and knows where each key path was written.
type report struct {
	file   string
	pos    map[string]int  // key path -> line
	failed map[string]bool // paths that failed to decode: no follow-up errors under them
	errs   []*FieldError
	merges int // depth of nested merge keys, bounded against self-reference
	visits int // values decoded so far, bounded against alias/merge bombs
}

// maxVisits bounds the values decoded from one file. Aliases and merge keys
// let a small file expand exponentially ("billion laughs"); a real config has
// a few hundred values.
const maxVisits = 20000

func newReport(file string) *report {
	return &report{file: file, pos: map[string]int{}, failed: map[string]bool{}}
}

// line returns the line of path, or of its nearest written ancestor.
func (r *report) line(path string) int {
	for {
		if l, ok := r.pos[path]; ok {
			return l
		}
		if path == "" {
			return 0
		}
		path = parentPath(path)
	}
}

// has reports whether the key path was written in the file (a nil report,
// a config built in code, has none).
func (r *report) has(path string) bool {
	if r == nil {
		return false
	}
	_, ok := r.pos[path]
	return ok
}

func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

// add records a validation problem at path unless path (or an ancestor)
// already failed to decode.
func (r *report) add(path, format string, args ...any) {
	for p := path; ; p = parentPath(p) {
		if r.failed[p] {
			return
		}
		if p == "" {
			break
		}
	}
	r.errs = append(r.errs, &FieldError{File: r.file, Line: r.line(path), Path: path, Msg: fmt.Sprintf(format, args...)})
}

// addAt records a decode problem at an explicit line and marks path failed.
func (r *report) addAt(line int, path, format string, args ...any) {
	r.failed[path] = true
	r.errs = append(r.errs, &FieldError{File: r.file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (r *report) err() error {
	if len(r.errs) == 0 {
		return nil
	}
	sort.SliceStable(r.errs, func(i, j int) bool { return r.errs[i].Line < r.errs[j].Line })
	return &Error{Errors: r.errs}
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError turns a yaml.v3 parse error into a FieldError with a line.
func (r *report) syntaxError(err error) {
	msg := err.Error()
	line := 0
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	r.errs = append(r.errs, &FieldError{File: r.file, Line: line, Msg: "YAML syntax: " + msg})
}

// scalarDecoder is implemented by config types written as one YAML scalar.
type scalarDecoder interface{ decodeScalar(string) error }

// defaulter is implemented by config types whose fresh values (a list item,
// an optional section) start from defaults rather than zero.
type defaulter interface{ setDefaults() }

var (
	scalarDecoderType = reflect.TypeFor[scalarDecoder]()
	// A time.Duration field (in the section types components own, such as enrol.Config) is
	// read as the config's Duration is ("90s", "7d"; never negative).
	timeDurationType = reflect.TypeFor[time.Duration]()
)

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping (key: value)"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return strconv.Quote(n.Value)
	}
	return "something else"
}

// maxAliasDepth bounds alias chains (an alias to an alias to ...).
const maxAliasDepth = 16

func resolveAlias(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < maxAliasDepth; i++ {
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.AliasNode {
		return nil
	}
	return n
}

// decode fills v from n strictly: every key must be known, every value must
// have the wanted shape. Errors are collected in r; v keeps its defaults
// where decoding fails.
func (r *report) decode(n *yaml.Node, v reflect.Value, path string) {
	if !r.visit(n) {
		return
	}
	n = resolveAlias(n)
	if n == nil {
		r.addAt(0, path, "alias nested too deep")
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // "key:" with no value keeps the default
	}
	if v.CanAddr() && v.Addr().Type().Implements(scalarDecoderType) {
		if n.Kind != yaml.ScalarNode {
			r.addAt(n.Line, path, "want a single value, got %s", describe(n))
			return
		}
		if err := v.Addr().Interface().(scalarDecoder).decodeScalar(n.Value); err != nil {
			r.addAt(n.Line, path, "%v", err)
		}
		return
	}
	if v.Type() == timeDurationType {
		var d Duration
		if n.Kind != yaml.ScalarNode {
			r.addAt(n.Line, path, "want a single value, got %s", describe(n))
		} else if err := d.decodeScalar(n.Value); err != nil {
			r.addAt(n.Line, path, "%v", err)
		} else {
			v.SetInt(int64(d))
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		if d, ok := p.Interface().(defaulter); ok {
			d.setDefaults()
		}
		r.decode(n, p.Elem(), path)
		v.Set(p)
	case reflect.Struct:
		r.decodeStruct(n, v, path)
	case reflect.Slice:
		r.decodeSlice(n, v, path)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			r.addAt(n.Line, path, "want a single value, got %s", describe(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Int, reflect.Int64:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			r.addAt(n.Line, path, "want a whole number, got %s", describe(n))
			return
		}
		i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
		if err != nil || v.OverflowInt(i) {
			r.addAt(n.Line, path, "%s: number out of range", strconv.Quote(n.Value))
			return
		}
		v.SetInt(i)
	case reflect.Map:
		r.decodeMap(n, v, path)
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.ToLower(n.Value))
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || err != nil {
			r.addAt(n.Line, path, "want true or false, got %s", describe(n))
			return
		}
		v.SetBool(b)
	default:
		panic("gateway: config field of unsupported kind " + v.Kind().String())
	}
}

// decodeSlice fills the slice v from the sequence n, each element from its defaults.
func (r *report) decodeSlice(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		r.addAt(n.Line, path, "want a list, got %s", describe(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), 0, len(n.Content))
	for i, item := range n.Content {
		ip := fmt.Sprintf("%s[%d]", path, i)
		r.pos[ip] = item.Line
		e := reflect.New(v.Type().Elem())
		if d, ok := e.Interface().(defaulter); ok {
			d.setDefaults()
		}
		r.decode(item, e.Elem(), ip)
		s = reflect.Append(s, e.Elem())
	}
	v.Set(s)
}

// decodeMap fills the map v (map[string]T) from the mapping n; a key given twice is an error.
func (r *report) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	// map[string]T (enrolment attributes): keys as written, values decoded as T.
	if v.Type().Key().Kind() != reflect.String {
		panic("gateway: config map with non-string keys")
	}
	if n.Kind != yaml.MappingNode {
		r.addAt(n.Line, path, "want a mapping (key: value), got %s", describe(n))
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			r.addAt(k.Line, path, "want a key name, got %s", describe(k))
			continue
		}
		kp := joinPath(path, k.Value)
		if m.MapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key())).IsValid() {
			r.addAt(k.Line, kp, "duplicate key")
			continue
		}
		r.pos[kp] = k.Line
		e := reflect.New(v.Type().Elem())
		r.decode(val, e.Elem(), kp)
		m.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), e.Elem())
	}
	v.Set(m)
}

// fieldsOf maps the yaml key names of a struct type to field index paths. The keys of an
// embedded struct tagged `yaml:",inline"` are the struct's own (config.Enrolment embeds
// enrol.Config so).
func fieldsOf(t reflect.Type) (map[string][]int, []string) {
	idx := map[string][]int{}
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",") // "name,omitempty": the name
		if f.Anonymous && tag == "" && opts == "inline" && f.Type.Kind() == reflect.Struct {
			sub, subNames := fieldsOf(f.Type)
			for _, n := range subNames {
				idx[n] = append([]int{i}, sub[n]...)
			}
			names = append(names, subNames...)
			continue
		}
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		idx[tag] = []int{i}
		names = append(names, tag)
	}
	return idx, names
}

// visit counts one decoded value; it reports false once the budget is spent
// (after recording the error once).
func (r *report) visit(n *yaml.Node) bool {
	r.visits++
	if r.visits == maxVisits+1 {
		line := 0
		if n != nil {
			line = n.Line
		}
		r.addAt(line, "", "too many values after expanding aliases and merge keys (more than %d); write the config out plainly", maxVisits)
	}
	return r.visits <= maxVisits
}

func (r *report) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if !r.visit(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		r.addAt(n.Line, path, "want a mapping (key: value), got %s", describe(n))
		return
	}
	if _, ok := r.pos[path]; !ok {
		r.pos[path] = n.Line
	}
	idx, names := fieldsOf(v.Type())
	seen := map[string]int{}
	// Merge keys (<<: *anchor) first, so keys written here override them.
	r.merges++
	defer func() { r.merges-- }()
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			if r.merges > maxAliasDepth {
				r.addAt(k.Line, path, "merge keys (<<) nested too deep")
				continue
			}
			val = resolveAlias(val)
			if val != nil && val.Kind == yaml.SequenceNode {
				for _, m := range val.Content {
					r.decodeStruct(resolveAlias(orNull(m)), v, path)
				}
			} else if val != nil {
				r.decodeStruct(val, v, path)
			}
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			r.addAt(k.Line, path, "want a key name, got %s", describe(k))
			continue
		}
		name := k.Value
		if first, dup := seen[name]; dup {
			r.addAt(k.Line, joinPath(path, name), "duplicate key (first at line %d)", first)
			continue
		}
		seen[name] = k.Line
		fi, ok := idx[name]
		if !ok {
			if s := suggest(name, names); s != "" {
				r.addAt(k.Line, path, "unknown key %q (did you mean %q?)", name, s)
				r.failed[joinPath(path, s)] = true
			} else {
				r.addAt(k.Line, path, "unknown key %q; want one of: %s", name, strings.Join(names, ", "))
			}
			continue
		}
		fp := joinPath(path, name)
		r.pos[fp] = k.Line
		r.decode(val, v.FieldByIndex(fi), fp)
	}
}

func orNull(n *yaml.Node) *yaml.Node {
	if n == nil {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}
	}
	return n
}

// suggest returns the known name closest to an unknown key, if close enough.
func suggest(key string, names []string) string {
	best, bestD := "", 1<<30
	for _, n := range names {
		if d := editDistance(strings.ToLower(key), n); d < bestD {
			best, bestD = n, d
		}
	}
	limit := max(2, len(key)/3)
	if bestD <= limit {
		return best
	}
	return ""
}

// editDistance is the optimal string alignment distance (Levenshtein plus
// transpositions of neighbours).
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 30
	}
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
