package mosqimport

import (
	"slices"
	"strings"
	"testing"
)

func globStrings(gs []globPat) []string {
	out := make([]string, len(gs))
	for i, g := range gs {
		out[i] = g.String()
	}
	return out
}

func TestTranslate(t *testing.T) {
	tests := []struct {
		name    string
		topic   string
		pattern bool
		globs   []string
		trims   []string
		exact   bool
		dollar  bool
	}{
		{name: "literal", topic: "a/b", globs: []string{"a/b"}, exact: true},
		{name: "hash alone", topic: "#", globs: []string{"*"}, exact: true, dollar: true},
		{name: "trailing hash", topic: "a/b/#", globs: []string{"a/b", "a/b/*"}, exact: true},
		{name: "plus in the middle", topic: "a/+/c", globs: []string{"a/*/c"}, trims: []string{"a/*/*/c"}, exact: true},
		{name: "two plus", topic: "+/+/c", globs: []string{"*/*/c"}, trims: []string{"*/*/*/c", "*/*/*/c"}, exact: true, dollar: true},
		{name: "plus last", topic: "a/+", globs: []string{"a/*"}, trims: []string{"a/*/*"}, exact: true},
		{name: "plus then hash", topic: "a/+/#", globs: []string{"a/*"}, exact: true},
		{name: "plus plus hash", topic: "a/+/+/#", globs: []string{"a/*/*"}, exact: true},
		{name: "plus literal hash", topic: "+/x/#", globs: []string{"*/x", "*/x/*"}, exact: false, dollar: true},
		{name: "IAM characters are escaped", topic: "a*/b?/${x}", globs: []string{"a${*}/b${?}/${$}{x}"}, exact: true},
		{name: "dollar topic", topic: "$SYS/#", globs: []string{"$SYS", "$SYS/*"}, exact: true},
		{name: "pattern variables", topic: "d/%u/%c/x%cy", pattern: true,
			globs: []string{"d/${iot:Connection.Thing.ThingName}/${iot:ClientId}/x${iot:ClientId}y"}, exact: true},
		{name: "topic lines take %c literally", topic: "d/%c", globs: []string{"d/%c"}, exact: true},
		{name: "percent other", topic: "d/%x%", pattern: true, globs: []string{"d/%x%"}, exact: true},
		{name: "percent before a variable", topic: "d/%%c", pattern: true, globs: []string{"d/%${iot:ClientId}"}, exact: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := translate(parseLevels(tt.topic, tt.pattern))
			if got := globStrings(tr.globs); !slices.Equal(got, tt.globs) {
				t.Errorf("globs: got %q; want %q", got, tt.globs)
			}
			if got := globStrings(tr.trims); !slices.Equal(got, tt.trims) && len(got)+len(tt.trims) > 0 {
				t.Errorf("trims: got %q; want %q", got, tt.trims)
			}
			if tr.exact != tt.exact || tr.dollar != tt.dollar {
				t.Errorf("exact, dollar: got %v, %v; want %v, %v", tr.exact, tr.dollar, tt.exact, tt.dollar)
			}
		})
	}
}

// MosquittoMatch is mosquitto_topic_matches_sub (Mosquitto 2.0.11,
// lib/util_topic.c) for valid filters and topic names: '+' one level, '#'
// the rest (and the parent), and a filter and a topic match only if both or
// neither start with '$'.
//
// It is exported (in a test file) for this package's external tests
// too: the one reference copy.
func MosquittoMatch(filter, topic string) bool {
	if filter == "" || topic == "" || (filter[0] == '$') != (topic[0] == '$') {
		return false
	}
	fl, tl := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, f := range fl {
		if f == "#" {
			return true
		}
		if i >= len(tl) || (f != "+" && f != tl[i]) {
			return false
		}
	}
	return len(fl) == len(tl)
}

func TestFilterLangMatchesMosquitto(t *testing.T) {
	filters := []string{"#", "a/#", "a/+", "+/b", "a/+/c", "+/+", "a/b", "$SYS/#", "+/#", "a/+/#", "/#", "+"}
	topics := []string{"a", "a/b", "a/b/c", "a//c", "/b", "b", "$SYS/x", "$SYS", "a/", "/", "x/b", "a/b/c/d", "$x/b"}
	for _, f := range filters {
		for _, tp := range topics {
			single := lang{items: litItems(nil, tp)}
			got := anyIntersect(filterLangs(parseLevels(f, false), subst{}), []lang{single})
			if want := MosquittoMatch(f, tp); got != want {
				t.Errorf("filter %q topic %q: got %v; want %v", f, tp, got, want)
			}
		}
	}
}

func TestIntersects(t *testing.T) {
	tests := []struct {
		name   string
		glob   string // an ACL topic whose first trim is used, or "" for the glob of filter a
		filter string
		want   bool
	}{
		{name: "one-level deny misses a deeper grant elsewhere", glob: "a/+", filter: "b/#", want: false},
		{name: "one-level deny hits a deeper grant", glob: "a/+", filter: "a/b/#", want: true},
		{name: "one-level deny hits a literal grant", glob: "a/+/c", filter: "a/x/y/c", want: true},
		{name: "one-level deny misses a same-depth grant", glob: "a/+/c", filter: "a/+/c", want: false},
		{name: "variables: any thing name", glob: "d/%u/+", filter: "d/x/y/z", want: true},
		{name: "variables: thing names have no slash", glob: "d/%u/+", filter: "d/y", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := translate(parseLevels(tt.glob, true))
			if len(tr.trims) == 0 {
				t.Fatalf("%q has no trims", tt.glob)
			}
			g := globLang(tr.trims[0], subst{})
			if got := anyIntersect([]lang{g}, filterLangs(parseLevels(tt.filter, true), subst{})); got != tt.want {
				t.Errorf("trim %s vs %q: got %v; want %v", tr.trims[0], tt.filter, got, tt.want)
			}
		})
	}
}
