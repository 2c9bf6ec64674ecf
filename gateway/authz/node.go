package authz

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// node is a parsed JSON or YAML value with the line it starts on, so every load error
// can name file:line whatever the input format.
type node struct {
	kind  nodeKind
	str   string // scalar text (numbers and booleans as written)
	line  int
	keys  []*node        // mapping keys, in document order
	vals  []*node        // mapping values
	items []*node        // sequence items
	index map[string]int // key -> position, built once a mapping is large
}

type nodeKind uint8

const (
	scalarNode nodeKind = iota + 1
	nullNode
	listNode
	mapNode
)

func (k nodeKind) String() string {
	switch k {
	case scalarNode:
		return "a string"
	case nullNode:
		return "null"
	case listNode:
		return "a list"
	case mapNode:
		return "an object"
	}
	return "nothing"
}

const (
	maxDepth = 64
	maxNodes = 1 << 20 // bound alias expansion and pathological input
)

// parseDocument parses data as JSON (name ends in .json) or YAML (.yaml, .yml).
func parseDocument(name string, data []byte) (*node, *Error) {
	switch strings.ToLower(path.Ext(name)) {
	case ".json":
		return parseJSON(name, data)
	case ".yaml", ".yml":
		return parseYAML(name, data)
	}
	return nil, &Error{File: name, Msg: "unsupported file type: want .json, .yaml or .yml"}
}

func parseJSON(name string, data []byte) (*node, *Error) {
	p := jsonParser{dec: json.NewDecoder(bytes.NewReader(data)), lines: newLineIndex(data)}
	p.dec.UseNumber()
	n, err := p.value(0)
	if err == nil {
		if _, terr := p.dec.Token(); terr != io.EOF {
			err = p.errAt(p.dec.InputOffset(), "invalid JSON: unexpected data after the document")
		}
	}
	if err != nil {
		var se *json.SyntaxError
		switch {
		case errors.As(err, &se):
			return nil, &Error{File: name, Line: p.lines.line(se.Offset), Msg: "invalid JSON: " + se.Error()}
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			msg := "invalid JSON: unexpected end of input"
			if len(bytes.TrimSpace(data)) == 0 {
				msg = "empty document"
			}
			return nil, &Error{File: name, Line: p.lines.line(int64(len(data)) - 1), Msg: msg}
		}
		var pe *Error
		if errors.As(err, &pe) {
			pe.File = name
			return nil, pe
		}
		return nil, &Error{File: name, Msg: "invalid JSON: " + err.Error()}
	}
	return n, nil
}

type jsonParser struct {
	dec   *json.Decoder
	lines lineIndex
	count int
}

func (p *jsonParser) errAt(off int64, msg string) error {
	return &Error{Line: p.lines.line(off - 1), Msg: msg}
}

func (p *jsonParser) value(depth int) (*node, error) {
	tok, err := p.dec.Token()
	if err != nil {
		return nil, err
	}
	return p.fromToken(tok, depth)
}

func (p *jsonParser) fromToken(tok json.Token, depth int) (*node, error) {
	off := p.dec.InputOffset()
	line := p.lines.line(off - 1)
	if p.count++; p.count > maxNodes {
		return nil, p.errAt(off, "document too large")
	}
	switch t := tok.(type) {
	case json.Delim:
		if depth >= maxDepth {
			return nil, p.errAt(off, "document nested too deeply")
		}
		if t == '[' {
			n := &node{kind: listNode, line: line}
			for p.dec.More() {
				it, err := p.value(depth + 1)
				if err != nil {
					return nil, err
				}
				n.items = append(n.items, it)
			}
			_, err := p.dec.Token() // ']'
			return n, err
		}
		n := &node{kind: mapNode, line: line}
		for p.dec.More() {
			kt, err := p.dec.Token()
			if err != nil {
				return nil, err
			}
			k, err := p.fromToken(kt, depth+1)
			if err != nil {
				return nil, err
			}
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			if err := addKey(n, k, v); err != nil {
				return nil, err
			}
		}
		_, err := p.dec.Token() // '}'
		return n, err
	case string:
		return &node{kind: scalarNode, str: t, line: line}, nil
	case json.Number:
		return &node{kind: scalarNode, str: t.String(), line: line}, nil
	case bool:
		return &node{kind: scalarNode, str: strconv.FormatBool(t), line: line}, nil
	case nil:
		return &node{kind: nullNode, line: line}, nil
	}
	return nil, p.errAt(off, fmt.Sprintf("invalid JSON: unexpected token %v", tok))
}

func addKey(m, k, v *node) error {
	first := -1
	if m.index != nil {
		if i, ok := m.index[k.str]; ok {
			first = i
		}
	} else {
		for i, old := range m.keys {
			if old.str == k.str {
				first = i
				break
			}
		}
	}
	if first >= 0 {
		return &Error{Line: k.line, Msg: fmt.Sprintf("duplicate key %q (first at line %d)", k.str, m.keys[first].line)}
	}
	if m.index == nil && len(m.keys) >= 16 {
		m.index = make(map[string]int, 2*len(m.keys))
		for i, old := range m.keys {
			m.index[old.str] = i
		}
	}
	if m.index != nil {
		m.index[k.str] = len(m.keys)
	}
	m.keys = append(m.keys, k)
	m.vals = append(m.vals, v)
	return nil
}

func parseYAML(name string, data []byte) (*node, *Error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		line := 0
		if rest, ok := strings.CutPrefix(msg, "line "); ok {
			if num, after, ok := strings.Cut(rest, ": "); ok {
				if l, err := strconv.Atoi(num); err == nil {
					line, msg = l, after
				}
			}
		}
		return nil, &Error{File: name, Line: line, Msg: "invalid YAML: " + msg}
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, &Error{File: name, Line: 1, Msg: "empty document"}
	}
	c := yamlConverter{}
	n, err := c.convert(doc.Content[0], 0)
	if err != nil {
		err.File = name
		return nil, err
	}
	return n, nil
}

type yamlConverter struct{ count int }

func (c *yamlConverter) convert(y *yaml.Node, depth int) (*node, *Error) {
	if c.count++; c.count > maxNodes {
		return nil, &Error{Line: y.Line, Msg: "document too large"}
	}
	if depth >= maxDepth {
		return nil, &Error{Line: y.Line, Msg: "document nested too deeply"}
	}
	switch y.Kind {
	case yaml.AliasNode:
		return c.convert(y.Alias, depth+1)
	case yaml.ScalarNode:
		if y.Tag == "!!null" {
			return &node{kind: nullNode, line: y.Line}, nil
		}
		return &node{kind: scalarNode, str: y.Value, line: y.Line}, nil
	case yaml.SequenceNode:
		n := &node{kind: listNode, line: y.Line}
		for _, it := range y.Content {
			v, err := c.convert(it, depth+1)
			if err != nil {
				return nil, err
			}
			n.items = append(n.items, v)
		}
		return n, nil
	case yaml.MappingNode:
		n := &node{kind: mapNode, line: y.Line}
		for i := 0; i+1 < len(y.Content); i += 2 {
			k, err := c.convert(y.Content[i], depth+1)
			if err != nil {
				return nil, err
			}
			if k.kind != scalarNode {
				return nil, &Error{Line: k.line, Msg: "mapping key must be a string"}
			}
			v, err := c.convert(y.Content[i+1], depth+1)
			if err != nil {
				return nil, err
			}
			if err := addKey(n, k, v); err != nil {
				return nil, err.(*Error)
			}
		}
		return n, nil
	}
	return nil, &Error{Line: y.Line, Msg: "unsupported YAML node"}
}

// lineIndex maps byte offsets to 1-based line numbers.
type lineIndex []int // offsets of '\n'

func newLineIndex(data []byte) lineIndex {
	var idx lineIndex
	for i, c := range data {
		if c == '\n' {
			idx = append(idx, i)
		}
	}
	return idx
}

func (l lineIndex) line(off int64) int {
	if off < 0 {
		off = 0
	}
	return sort.SearchInts(l, int(off)) + 1
}

// strings returns the node as a list of strings: a scalar or a list of scalars
// (AWS accepts both forms for Action, Resource and condition values).
func (n *node) strings() ([]string, bool) {
	switch n.kind {
	case scalarNode:
		return []string{n.str}, true
	case listNode:
		out := make([]string, 0, len(n.items))
		for _, it := range n.items {
			if it.kind != scalarNode {
				return nil, false
			}
			out = append(out, it.str)
		}
		return out, true
	}
	return nil, false
}
