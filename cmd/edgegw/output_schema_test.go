package main

import (
	"bytes"
	"context"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// allJSONKeys lists every key of t, nested objects included.
func allJSONKeys(t reflect.Type, seen map[reflect.Type]bool) []string {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t == timeType || seen[t] {
		return nil
	}
	seen[t] = true
	var keys []string
	for _, f := range jsonFields(t) {
		keys = append(keys, f.name)
		keys = append(keys, allJSONKeys(f.typ, seen)...)
	}
	return keys
}

// TestJSONSchemaInHelp: every command that takes -o json documents its
// document in its help (and so its man page): every key of the Go type it
// prints appears there. For the generated sections this checks they are
// attached; for the sections written by hand (check, policy test, rule
// test) it catches a key added to the type and not to the help.
func TestJSONSchemaInHelp(t *testing.T) {
	a := &app{ctx: context.Background(), stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
	root := a.rootCmd()

	// Every command with -o table|json has a schema, and every schema a command.
	var withOutput []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if f := c.Flags().Lookup("output"); f != nil && f.DefValue == "table" {
			withOutput = append(withOutput, strings.TrimPrefix(c.CommandPath(), "edgegw "))
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	sort.Strings(withOutput)
	for _, p := range withOutput {
		if _, ok := jsonSchemas[p]; !ok {
			t.Errorf("edgegw %s takes -o json but has no entry in jsonSchemas (output_schema.go): add the type it prints", p)
		}
	}
	for p := range jsonSchemas {
		if !slices.Contains(withOutput, p) {
			t.Errorf("jsonSchemas names %q: got no command with -o table|json of that path; want one (or drop the entry)", p)
		}
	}

	// 'edgegw help' names every command that takes -o json.
	for p := range jsonSchemas {
		words := strings.Fields(p)
		if !strings.Contains(root.Long, words[len(words)-1]) {
			t.Errorf("'edgegw help' does not name %q among the commands with -o json", p)
		}
	}

	for p, s := range jsonSchemas {
		t.Run(p, func(t *testing.T) {
			c, _, err := root.Find(strings.Fields(p))
			if err != nil || c.CommandPath() != "edgegw "+p {
				t.Fatalf("edgegw %s: not a command (%v)", p, err)
			}
			if !s.byHand && !strings.Contains(c.Long, schemaHeading) {
				t.Errorf("help of edgegw %s: no %q section", p, schemaHeading)
			}
			if s.asIs {
				return
			}
			keys := allJSONKeys(reflect.TypeOf(s.v), map[reflect.Type]bool{})
			if len(keys) == 0 {
				t.Fatalf("type %T: no JSON keys found", s.v)
			}
			for _, k := range keys {
				re := regexp.MustCompile(`(?m)^\s+` + regexp.QuoteMeta(k) + `\s`) // a generated line
				if s.byHand {
					re = regexp.MustCompile(`"` + regexp.QuoteMeta(k) + `"`)
				}
				if !re.MatchString(c.Long) {
					t.Errorf("help of edgegw %s: key %q of %T: got none; want it documented", p, k, s.v)
				}
			}
		})
	}
}

// TestSchemaSection pins the generated form on a small type: types, units,
// optional keys, lists and repeated object types.
func TestSchemaSection(t *testing.T) {
	type inner struct {
		Name string `json:"name"`
	}
	type doc struct {
		AgeSeconds float64           `json:"age_seconds"`
		Size       int64             `json:"size_bytes"`
		Note       string            `json:"note,omitempty"`
		Items      []inner           `json:"items"`
		Also       *inner            `json:"also,omitempty"`
		Payload    []byte            `json:"payload"`
		Counts     map[string]uint64 `json:"counts"`
		skipped    int
		Ignored    int `json:"-"`
	}
	_ = doc{}.skipped
	got := schemaSection(jsonSchema{v: doc{}}) + "\n"
	for _, want := range []string{
		"  age_seconds  number, seconds\n",
		"  size_bytes   integer, bytes\n",
		"  note         string, optional\n",
		"  items        list of objects ([] when empty)\n    name",
		"  also         object, optional, same keys as items\n",
		"  payload      base64 string\n",
		"  counts       object of integer by name ({} when empty)\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("section lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "Ignored") || strings.Contains(got, "skipped") {
		t.Errorf("section lists a key encoding/json leaves out:\n%s", got)
	}
}
