package sql

import (
	"errors"

	"github.com/edgegw/edgegw/gateway/rules/sql/lex"
)

// The lexer is gateway/rules/sql/lex; the parser reads its tokens.
type (
	// Pos is a position in a SQL statement: 1-based line and column (in runes).
	Pos   = lex.Pos
	token = lex.Token
)

const (
	tEOF    = lex.EOF
	tIdent  = lex.Ident
	tNumber = lex.Number
	tString = lex.String
	tPunct  = lex.Punct
	tVar    = lex.Var
	tBad    = lex.Bad
)

// lexAll reads the tokens of src; a lexer error is a *SQLError (a syntax
// error) at its position.
func lexAll(src string) ([]token, error) {
	toks, err := lex.All(src)
	if le := (*lex.Error)(nil); errors.As(err, &le) {
		return nil, &SQLError{Pos: le.Pos, Msg: le.Msg}
	}
	return toks, err
}
