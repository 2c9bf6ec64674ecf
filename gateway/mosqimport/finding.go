package mosqimport

import (
	"cmp"
	"slices"
	"strings"
)

// Kind says what happened to a line.
type Kind uint8

// Finding kinds.
const (
	// Invalid: Mosquitto itself refuses this line (it would not start); skipped.
	Invalid Kind = iota + 1
	// NotCarried: the line has no effect in the edgegw output.
	NotCarried
	// Inexact: an ACL line imported so that edgegw grants less than Mosquitto
	// for some topics (never more); Reason names them.
	Inexact
	// Changed: carried over with a difference the site engineer must know.
	Changed
	// Note: carried over; a remark.
	Note
)

func (k Kind) String() string {
	switch k {
	case Invalid:
		return "invalid"
	case NotCarried:
		return "not carried over"
	case Inexact:
		return "not exact"
	case Changed:
		return "changed"
	case Note:
		return "note"
	}
	return "?"
}

// Finding is one report line: where, what was written there, and why it was
// not (or not exactly) carried over.
type Finding struct {
	Pos
	Kind   Kind
	Text   string // the line or option, as written (passwords never)
	Reason string
}

// String formats the finding as "file:line: kind: text: reason".
func (f Finding) String() string {
	var b strings.Builder
	b.WriteString(f.Pos.String())
	b.WriteString(": ")
	b.WriteString(f.Kind.String())
	b.WriteString(": ")
	if f.Text != "" {
		b.WriteString(f.Text)
		b.WriteString(": ")
	}
	b.WriteString(f.Reason)
	return b.String()
}

// sortFindings orders findings by file, line and kind, dropping duplicates.
func sortFindings(fs []Finding) []Finding {
	slices.SortStableFunc(fs, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Kind, b.Kind))
	})
	return slices.CompactFunc(fs, func(a, b Finding) bool { return a == b })
}
