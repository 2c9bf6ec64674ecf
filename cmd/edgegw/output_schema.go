package main

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgegw/edgegw/gateway/observe"
	"github.com/edgegw/edgegw/gateway/pki"
)

// # The documented schema of each command
//
// jsonSchemas maps a command (its path without "edgegw ") to the Go value
// it prints with -o json. addJSONSchemas appends to each such command's help
// (and so to its man page, man.go) a "JSON output (-o json)" section
// generated from the type by reflection: every key with its JSON type, its
// unit (from the key's suffix) and whether it may be left out. The section
// cannot drift from what the command prints: both come from the same type.
// Commands whose help already describes the document by hand (check, policy
// test, rule test) keep their text; TestJSONSchemaInHelp checks that every
// key of their type appears in it.
type jsonSchema struct {
	v        any  // a value of the printed type (a slice: the document is a list)
	byHand   bool // the help lists the keys itself: do not append the generated section
	asIs     bool // the document is passed through as the daemon answers it (shadow)
	asIsNote string
}

var jsonSchemas = map[string]jsonSchema{
	"version":       {v: versionJSON{}},
	"status":        {v: observe.Status{}},
	"devices":       {v: observe.DevicesList{}},
	"queue stats":   {v: queueStatsJSON{}},
	"queue peek":    {v: observe.QueuePeek{}},
	"queue purge":   {v: observe.QueueOpResult{}},
	"queue replay":  {v: observe.QueueOpResult{}},
	"pki list":      {v: []pki.Entry{}},
	"pki init":      {v: pkiInitJSON{}},
	"pki import-ca": {v: pkiInitJSON{}},
	"pki issue":     {v: pkiIssueJSON{}},
	"pki sign":      {v: pkiIssueJSON{}},
	"pki claim":     {v: pkiIssueJSON{}},
	"pki revoke":    {v: pkiRevokeJSON{}},
	"pki crl":       {v: pkiCRLJSON{}},
	"pki server":    {v: pkiServerJSON{}},
	"passwd":        {v: passwdJSON{}},
	"key info":      {v: keyInfoJSON{}},
	"key create":    {v: keyInfoJSON{}},
	"check":         {v: checkJSON{}, byHand: true},
	"policy test":   {v: policyTestJSON{}, byHand: true},
	"rule test":     {v: ruleTestJSON{}, byHand: true},
	"shadow":        {asIs: true, asIsNote: shadowJSONNote},
}

// schemaHeading starts the generated section; tests look for it.
const schemaHeading = "JSON output (-o json)"

// addJSONSchemas appends the generated schema section to the help of every
// command in jsonSchemas (rootCmd calls it once the tree is built).
func addJSONSchemas(root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if s, ok := jsonSchemas[strings.TrimPrefix(c.CommandPath(), root.Name()+" ")]; ok && !s.byHand {
			long := c.Long
			if long == "" {
				long = c.Short + "."
			}
			c.Long = strings.TrimRight(long, "\n") + "\n\n" + schemaSection(s)
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// schemaSection is the help section for s.
func schemaSection(s jsonSchema) string {
	if s.asIs {
		return schemaHeading + ": " + s.asIsNote
	}
	var b strings.Builder
	t := reflect.TypeOf(s.v)
	b.WriteString(schemaHeading + ": one document on stdout, exit status unchanged, errors on stderr\n")
	b.WriteString("(the convention: 'edgegw help'); an optional key is left out when it has no value. ")
	if t.Kind() == reflect.Slice {
		b.WriteString("A list ([] when empty) of objects:\n")
		t = t.Elem()
	} else {
		b.WriteString("An object:\n")
	}
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	schemaFields(tw, t, "  ", "", map[reflect.Type]string{})
	_ = tw.Flush()
	return strings.TrimRight(b.String(), "\n")
}

var (
	timeType      = reflect.TypeOf(time.Time{})
	rawType       = reflect.TypeOf(json.RawMessage{})
	marshalerType = reflect.TypeOf((*json.Marshaler)(nil)).Elem()
	textType      = reflect.TypeOf((*encoding.TextMarshaler)(nil)).Elem()
)

// jsonField is one key of a struct as encoding/json writes it.
type jsonField struct {
	name     string
	typ      reflect.Type
	optional bool
}

// jsonFields lists t's keys in order, embedded structs inlined.
func jsonFields(t reflect.Type) []jsonField {
	var out []jsonField
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		ft := f.Type
		if f.Anonymous && name == "" {
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				out = append(out, jsonFields(ft)...)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		optional := strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero")
		out = append(out, jsonField{name: name, typ: ft, optional: optional})
	}
	return out
}

// schemaFields writes t's keys, one a line, nested objects indented. An
// object type already listed (at the key path in seen) is named, not
// listed again.
func schemaFields(w *tabwriter.Writer, t reflect.Type, indent, path string, seen map[reflect.Type]string) {
	for _, f := range jsonFields(t) {
		desc, elem := jsonTypeName(f.typ)
		if u := unitOf(f.name); u != "" {
			desc += ", " + u
		}
		if f.optional {
			desc += ", optional"
		}
		p := f.name
		if path != "" {
			p = path + "." + f.name
		}
		if prev, ok := seen[elem]; ok && elem != nil {
			desc += ", same keys as " + prev
			elem = nil
		}
		fmt.Fprintf(w, "%s%s\t%s\n", indent, f.name, desc)
		if elem != nil && len(indent) < 10 {
			seen[elem] = p
			schemaFields(w, elem, indent+"  ", p, seen)
		}
	}
}

// jsonTypeName names t as JSON has it; elem is the struct whose keys
// follow (an object, or the objects of a list or map), nil for none.
func jsonTypeName(t reflect.Type) (name string, elem reflect.Type) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == timeType:
		return "time (RFC 3339, UTC)", nil
	case t == rawType:
		return "JSON document", nil
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8:
		return "base64 string", nil
	case t.Implements(marshalerType) || reflect.PointerTo(t).Implements(marshalerType),
		t.Implements(textType) || reflect.PointerTo(t).Implements(textType):
		return "string", nil
	}
	switch t.Kind() {
	case reflect.String:
		return "string", nil
	case reflect.Bool:
		return "boolean", nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer", nil
	case reflect.Float32, reflect.Float64:
		return "number", nil
	case reflect.Slice, reflect.Array:
		n, e := jsonTypeName(t.Elem())
		if e != nil {
			return "list of objects ([] when empty)", e
		}
		return "list of " + n + " ([] when empty)", nil
	case reflect.Map:
		n, e := jsonTypeName(t.Elem())
		if e != nil {
			return "object of objects by name ({} when empty)", e
		}
		return "object of " + n + " by name ({} when empty)", nil
	case reflect.Struct:
		return "object", t
	}
	return "any JSON value", nil
}

// unitOf is the unit a key's suffix names (the convention puts units in names).
func unitOf(key string) string {
	for _, u := range []struct{ suffix, unit string }{
		{"_msgs_per_second", "messages per second"}, {"_seconds", "seconds"}, {"_bytes", "bytes"},
		{"_days", "days"}, {"_ms", "milliseconds"},
	} {
		if strings.HasSuffix(key, u.suffix) || key == strings.TrimPrefix(u.suffix, "_") {
			return u.unit
		}
	}
	return ""
}
