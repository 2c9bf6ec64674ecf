package topic

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestValidateFilter(t *testing.T) {
	tests := []struct {
		filter, wantErr string
	}{
		{"#", ""},
		{"+", ""},
		{"a/b", ""},
		{"a/#", ""},
		{"+/a/+", ""},
		{"building/#", ""},
		{"building/+/temp/+", ""},
		{"a//b", ""},
		{"/", ""},
		{"$SYS/#", ""},
		{strings.Repeat("a", MaxBytes), ""},
		{"", "must not be empty"},
		{"a/#/b", "'#' must be the last level"},
		{"#/a", "'#' must be the last level"},
		{"a#", "'#' must be a whole level (e.g. a/#, not a/b#)"},
		{"a/b#", "'#' must be a whole level (e.g. a/#, not a/b#)"},
		{"a/b+", "'+' must be a whole level (e.g. a/+/c, not a/b+/c)"},
		{"a+/b", "'+' must be a whole level (e.g. a/+/c, not a/b+/c)"},
		{"a/++", "'+' must be a whole level (e.g. a/+/c, not a/b+/c)"},
		{"a\x00b", "must not contain a NUL character"},
		{"a/\x00", "must not contain a NUL character"},
		{"a/\xff", "not valid UTF-8"},
		{strings.Repeat("a", MaxBytes+1), "longer than 65535 bytes"},
	}
	for _, tt := range tests {
		name := tt.filter
		if len(name) > 20 {
			name = name[:20]
		}
		t.Run(name, func(t *testing.T) {
			got := errText(ValidateFilter(tt.filter))
			if got != tt.wantErr {
				t.Errorf("ValidateFilter(%.20q): got %q; want %q", tt.filter, got, tt.wantErr)
			}
		})
	}
}

func TestValidateName(t *testing.T) {
	for _, tt := range []struct{ name, wantErr string }{
		{"sites/plant-7/", ""},
		{"a//b", ""},
		{"a/+/b", "wildcards '#' and '+' are not allowed in a topic name"},
		{"a/#", "wildcards '#' and '+' are not allowed in a topic name"},
		{"", "must not be empty"},
		{"a\x00", "must not contain a NUL character"},
	} {
		if got := errText(ValidateName(tt.name)); got != tt.wantErr {
			t.Errorf("ValidateName(%q): got %q; want %q", tt.name, got, tt.wantErr)
		}
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// refValid is the filter rule written the plain way, level by level, for
// the fuzz test to compare against.
func refValid(f string) bool {
	if f == "" || len(f) > MaxBytes || !utf8.ValidString(f) || strings.ContainsRune(f, 0) {
		return false
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		if strings.ContainsAny(l, "+#") && l != "+" && l != "#" {
			return false
		}
		if l == "#" && i != len(levels)-1 {
			return false
		}
	}
	return true
}

func FuzzValidateFilter(f *testing.F) {
	for _, s := range []string{"#", "+", "a/#", "a/#/b", "+/+", "a+", "", "a//b", "$SYS/#", "a\x00", "\xff/#"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidateFilter(s)
		if got, want := err == nil, refValid(s); got != want {
			t.Fatalf("ValidateFilter(%q) = %v; want valid=%v", s, err, want)
		}
		nameErr := ValidateName(s)
		if want := refValid(s) && !strings.ContainsAny(s, "+#"); (nameErr == nil) != want {
			t.Fatalf("ValidateName(%q) = %v; want valid=%v", s, nameErr, want)
		}
	})
}
