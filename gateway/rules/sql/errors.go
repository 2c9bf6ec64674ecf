package sql

import (
	"errors"
	"fmt"
)

// Sentinels a caller can branch on with errors.Is.
var (
	// ErrCloudFunction: the SQL calls a function that needs an AWS service
	// (aws_lambda, get_dynamodb, get_secret, ...). It is refused at compile time.
	ErrCloudFunction = errors.New("function needs an AWS cloud service")
	// ErrUnknownFunction: the SQL calls a function AWS IoT SQL does not have.
	ErrUnknownFunction = errors.New("unknown function")
	// ErrSyntax: the statement does not parse.
	ErrSyntax = errors.New("syntax error")
	// ErrNotObject: `SELECT *, x` on a payload that is not a JSON object (AWS
	// adds fields only to an empty payload or a JSON object).
	ErrNotObject = errors.New("payload is not a JSON object")
)

// SQLError is a problem in one SQL statement, at a position in it.
type SQLError struct {
	Pos Pos
	Msg string
	Err error // a sentinel above, or nil
}

func (e *SQLError) Error() string { return fmt.Sprintf("%s: %s", e.Pos, e.Msg) }

// Unwrap lets errors.Is find the sentinel.
func (e *SQLError) Unwrap() error {
	if e.Err != nil {
		return e.Err
	}
	return ErrSyntax
}

func errAt(p Pos, format string, args ...any) *SQLError {
	return &SQLError{Pos: p, Msg: fmt.Sprintf(format, args...)}
}
