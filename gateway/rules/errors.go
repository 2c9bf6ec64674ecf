package rules

import (
	"errors"
	"fmt"

	"github.com/edgegw/edgegw/gateway/rules/sql"
)

// The language's errors and sentinels (gateway/rules/sql), under the names
// the callers of the engine use.
type (
	// SQLError is a problem in one SQL statement, at a position in it.
	SQLError = sql.SQLError
	// Pos is a line:column in a statement.
	Pos = sql.Pos
)

// Sentinels a caller can branch on with errors.Is.
var (
	ErrCloudFunction   = sql.ErrCloudFunction
	ErrUnknownFunction = sql.ErrUnknownFunction
	ErrSyntax          = sql.ErrSyntax
	ErrNotObject       = sql.ErrNotObject
	// ErrActionTarget: an action's topic template produced a topic that cannot
	// be published to (empty, or with + or #).
	ErrActionTarget = errors.New("invalid action target")
)

// RuleError is a problem in one rule of a rule set: which rule (index in the
// list and name), which field (sql, actions[1].republish.topic, ...), what.
type RuleError struct {
	Index int
	Name  string
	Field string
	Err   error
}

func (e *RuleError) Error() string {
	where := fmt.Sprintf("rules[%d]", e.Index)
	if e.Name != "" {
		where += fmt.Sprintf(" %q", e.Name)
	}
	if e.Field != "" {
		where += " " + e.Field
	}
	return where + ": " + e.Err.Error()
}

func (e *RuleError) Unwrap() error { return e.Err }
