package pki

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"

	"gopkg.in/yaml.v3"
)

// ThingUpdate is what issue/sign record in devices.yaml for a thing. Empty fields leave what the
// file says alone: Type replaces the type when set, Attributes set (or overwrite) those keys and
// keep the others, Policies are appended when missing. A thing not in the file is appended to
// `things:` with the given fields.
type ThingUpdate struct {
	Name       string
	Type       string
	Attributes map[string]string
	Policies   []string
}

const newRegistry = "# edgegw device registry (see `edgegw pki issue`); format version 1\nversion: 1\nthings: []\n"

// updateRegistry edits devices.yaml as a yaml.v3 node tree so comments and key order survive.
func updateRegistry(name string, data []byte, ups []ThingUpdate) ([]byte, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		data = []byte(newRegistry)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: the registry must be a YAML mapping (version, things, ...)", name)
	}
	root := doc.Content[0]
	things := mapGet(root, "things")
	if things == nil || (things.Kind == yaml.ScalarNode && things.Tag == "!!null") {
		if things == nil {
			things = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
			root.Content = append(root.Content, strNode("things"), things)
		} else {
			*things = yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: things.Line}
		}
	}
	if things.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%s:%d: things: must be a list", name, things.Line)
	}
	for _, u := range ups {
		if err := applyThingUpdate(name, things, u); err != nil {
			return nil, err
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// applyThingUpdate applies u to the things list: the entry named u.Name (added
// when missing) gets u's type, and u's attributes and policies are merged in.
func applyThingUpdate(name string, things *yaml.Node, u ThingUpdate) error {
	var item *yaml.Node
	for _, it := range things.Content {
		if n := mapGet(it, "name"); n != nil && n.Value == u.Name {
			item = it
			break
		}
	}
	if item == nil {
		things.Style = 0 // "things: []" becomes a block list
		item = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		item.Content = append(item.Content, strNode("name"), strNode(u.Name))
		things.Content = append(things.Content, item)
	}
	if item.Kind != yaml.MappingNode {
		return fmt.Errorf("%s:%d: things entry for %q must be a mapping", name, item.Line, u.Name)
	}
	if u.Type != "" {
		mapSet(item, "type", strNode(u.Type))
	}
	if len(u.Attributes) > 0 {
		setAttributes(item, u.Attributes)
	}
	if len(u.Policies) > 0 {
		addPolicies(item, u.Policies)
	}
	return nil
}

// setAttributes sets each attribute in the thing's attributes mapping (a flow
// mapping when new), in key order, values double-quoted.
func setAttributes(item *yaml.Node, attributes map[string]string) {
	attrs := mapGet(item, "attributes")
	if attrs == nil || attrs.Kind != yaml.MappingNode {
		attrs = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Style: yaml.FlowStyle}
		mapSet(item, "attributes", attrs)
	}
	keys := make([]string, 0, len(attributes))
	for k := range attributes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := strNode(attributes[k])
		v.Style = yaml.DoubleQuotedStyle
		mapSet(attrs, k, v)
	}
}

// addPolicies appends to the thing's policies list (a flow list when new) each
// policy it does not have yet.
func addPolicies(item *yaml.Node, policies []string) {
	pol := mapGet(item, "policies")
	if pol == nil || pol.Kind != yaml.SequenceNode {
		pol = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}
		mapSet(item, "policies", pol)
	}
	var have []string
	for _, p := range pol.Content {
		have = append(have, p.Value)
	}
	for _, p := range policies {
		if !slices.Contains(have, p) {
			pol.Content = append(pol.Content, strNode(p))
			have = append(have, p)
		}
	}
}

func readRegistry(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

func strNode(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

func mapGet(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func mapSet(m *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			old := m.Content[i+1]
			v.HeadComment, v.LineComment, v.FootComment = old.HeadComment, old.LineComment, old.FootComment
			m.Content[i+1] = v
			return
		}
	}
	m.Content = append(m.Content, strNode(key), v)
}
