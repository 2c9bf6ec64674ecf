package authz

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Error is one load error, positioned in its file.
type Error struct {
	File string
	Line int // 1-based; 0 when the error concerns the whole file
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// ErrorList is every error of a load, sorted by file and line. Load returns all of
// them at once so a site engineer fixes a file in one pass.
type ErrorList []*Error

func (l ErrorList) Error() string {
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap lets errors.As find an individual *Error.
func (l ErrorList) Unwrap() []error {
	out := make([]error, len(l))
	for i, e := range l {
		out[i] = e
	}
	return out
}

func (l ErrorList) sorted() ErrorList {
	slices.SortStableFunc(l, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line))
	})
	return l
}

// errs collects errors for one file.
type errs struct {
	file string
	list ErrorList
}

func (e *errs) add(line int, format string, args ...any) {
	e.list = append(e.list, &Error{File: e.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

func (e *errs) err() error {
	if len(e.list) == 0 {
		return nil
	}
	return e.list.sorted()
}

// Sentinel reasons for a refused Bind; a *DenyError unwraps to one of them.
var (
	ErrUnknownThing  = errors.New("thing is not in the registry and no default policy applies")
	ErrThingDisabled = errors.New("thing is disabled in the registry")
	// ErrPolicyBroken: a policy attached to the thing (directly, by a group or as a
	// default policy) did not load; see LoadEach. The thing is denied, not run
	// with part of its policies.
	ErrPolicyBroken = errors.New("an attached policy did not load; denied until it is fixed")
)

// DenyError is returned by Bind when a connection must be refused before any policy
// is evaluated: the thing is unknown (and no group or default policy applies),
// disabled, or attached to a policy that did not load.
type DenyError struct {
	Thing    string
	ClientID string
	Reason   error  // ErrUnknownThing, ErrThingDisabled or ErrPolicyBroken
	Policy   string // ErrPolicyBroken: the policy that did not load
	File     string // ErrPolicyBroken: the file at fault
}

func (e *DenyError) Error() string {
	if e.Policy != "" {
		return fmt.Sprintf("authz: thing %q (client ID %q): %v: policy %q (%s)", e.Thing, e.ClientID, e.Reason, e.Policy, e.File)
	}
	return fmt.Sprintf("authz: thing %q (client ID %q): %v", e.Thing, e.ClientID, e.Reason)
}

func (e *DenyError) Unwrap() error { return e.Reason }
