// Package lex reads an AWS IoT SQL statement (or the expression of a
// substitution template) into tokens: names and keywords, numbers, strings
// in single or double quotes (with backslash escapes), @variables and
// punctuation. What other SQL dialects write and AWS IoT SQL does not (--
// comments, != , ==, backquoted names) is an *Error that says the AWS way.
// The parser (gateway/rules/sql) reads the tokens.
//
// It is pure and a leaf: the standard library only, nothing of this module.
package lex

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Kind is the kind of a token.
type Kind uint8

// The kinds of token.
const (
	EOF Kind = iota
	Ident
	Number
	String
	Punct
	Var // @name, a SET variable
	Bad // a character that is not part of AWS IoT SQL; the parser reports it
)

// Pos is a position in a SQL statement: 1-based line and column (in runes).
type Pos struct{ Line, Col int }

func (p Pos) String() string { return fmt.Sprintf("%d:%d", p.Line, p.Col) }

// Token is one token of a statement.
type Token struct {
	Kind Kind
	Text string // identifier, punctuation, number text, or decoded string
	Pos  Pos
	End  int // byte offset just past the token
}

// Is reports whether t is the punctuation p.
func (t Token) Is(p string) bool { return t.Kind == Punct && t.Text == p }

// Kw reports whether t is the keyword k (keywords are case-insensitive).
func (t Token) Kw(k string) bool { return t.Kind == Ident && strings.EqualFold(t.Text, k) }

// Describe names t for an error message: "the end of the statement", the
// string "x", @v, "+".
func (t Token) Describe() string {
	switch t.Kind {
	case EOF:
		return "the end of the statement"
	case String:
		return fmt.Sprintf("the string %q", t.Text)
	case Var:
		return "@" + t.Text
	case Bad:
		return fmt.Sprintf("%q (not part of AWS IoT SQL)", t.Text)
	}
	return fmt.Sprintf("%q", t.Text)
}

type lexer struct {
	src  string
	off  int
	line int
	col  int
}

func (l *lexer) pos() Pos { return Pos{l.line, l.col} }

func (l *lexer) advance(n int) {
	for i := 0; i < n && l.off < len(l.src); {
		r, size := utf8.DecodeRuneInString(l.src[l.off:])
		if r == '\n' {
			l.line++
			l.col = 1
		} else {
			l.col++
		}
		l.off += size
		i += size
	}
}

// Error is a statement that does not lex, at a position in it.
type Error struct {
	Pos Pos
	Msg string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Pos, e.Msg) }

// All reads every token of src, the last one EOF.
func All(src string) ([]Token, error) {
	l := &lexer{src: src, line: 1, col: 1}
	var toks []Token
	for {
		t, err := l.next()
		if err != nil {
			return nil, err
		}
		toks = append(toks, t)
		if t.Kind == EOF {
			return toks, nil
		}
	}
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentPart(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

// next reads the token at l.off (EOF at the end).
func (l *lexer) next() (Token, error) {
	for l.off < len(l.src) {
		c := l.src[l.off]
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			l.advance(1)
			continue
		}
		break
	}
	p := l.pos()
	if l.off >= len(l.src) {
		return Token{Kind: EOF, Pos: p, End: l.off}, nil
	}
	c := l.src[l.off]
	start := l.off
	switch {
	case isIdentStart(c):
		n := 1
		for l.off+n < len(l.src) && isIdentPart(l.src[l.off+n]) {
			n++
		}
		l.advance(n)
		return Token{Kind: Ident, Text: src(l, start), Pos: p, End: l.off}, nil
	case c >= '0' && c <= '9':
		return l.number(p)
	case c == '\'' || c == '"':
		return l.stringLit(c, p)
	case c == '@':
		return l.variable(p)
	}
	return l.punct(p)
}

// number reads 12, 1.5, 2e-3; a name that starts with a digit is an error.
func (l *lexer) number(p Pos) (Token, error) {
	start := l.off
	n := 0
	for l.off+n < len(l.src) && l.src[l.off+n] >= '0' && l.src[l.off+n] <= '9' {
		n++
	}
	if l.off+n+1 < len(l.src) && l.src[l.off+n] == '.' && isDigit(l.src[l.off+n+1]) {
		n++
		for l.off+n < len(l.src) && isDigit(l.src[l.off+n]) {
			n++
		}
	}
	if l.off+n < len(l.src) && (l.src[l.off+n] == 'e' || l.src[l.off+n] == 'E') {
		m := n + 1
		if l.off+m < len(l.src) && (l.src[l.off+m] == '+' || l.src[l.off+m] == '-') {
			m++
		}
		if l.off+m < len(l.src) && isDigit(l.src[l.off+m]) {
			for l.off+m < len(l.src) && isDigit(l.src[l.off+m]) {
				m++
			}
			n = m
		}
	}
	if l.off+n < len(l.src) && isIdentStart(l.src[l.off+n]) {
		return Token{}, &Error{Pos: p, Msg: fmt.Sprintf("%q is not a number or a name; a field name starts with a letter or _ (use get(obj, \"%s\") for keys that do not)", l.src[l.off:l.off+n+1], l.src[l.off:l.off+n+1])}
	}
	l.advance(n)
	return Token{Kind: Number, Text: src(l, start), Pos: p, End: l.off}, nil
}

// variable reads @name (a SET variable).
func (l *lexer) variable(p Pos) (Token, error) {
	start := l.off
	n := 1
	for l.off+n < len(l.src) && isIdentPart(l.src[l.off+n]) {
		n++
	}
	if n == 1 || n > 65 {
		return Token{}, &Error{Pos: p, Msg: "a variable is @ followed by 1 to 64 letters, digits or _"}
	}
	l.advance(n)
	return Token{Kind: Var, Text: l.src[start+1 : l.off], Pos: p, End: l.off}, nil
}

// punct reads an operator or punctuation; what other SQL dialects write
// (--, !=, ==, backquotes) is an error saying the AWS IoT SQL way, and any
// other character is a Bad token for the parser to report.
func (l *lexer) punct(p Pos) (Token, error) {
	c, start := l.src[l.off], l.off
	if c == '-' && l.off+1 < len(l.src) && l.src[l.off+1] == '-' {
		return Token{}, &Error{Pos: p, Msg: "comments are not supported in AWS IoT SQL: remove the '--' comment"}
	}
	for _, op := range []string{"<>", "<=", ">=", "!=", "==", "`"} {
		if strings.HasPrefix(l.src[l.off:], op) {
			switch op {
			case "!=":
				return Token{}, &Error{Pos: p, Msg: "'!=' is not AWS IoT SQL: write not-equal as <>"}
			case "==":
				return Token{}, &Error{Pos: p, Msg: "'==' is not AWS IoT SQL: write equality as ="}
			case "`":
				return Token{}, &Error{Pos: p, Msg: "backquoted names are not AWS IoT SQL: use get(obj, \"name\") for keys that are not plain names"}
			}
			l.advance(2)
			return Token{Kind: Punct, Text: op, Pos: p, End: l.off}, nil
		}
	}
	if strings.IndexByte("*,().[]{}:=<>+-/%", c) >= 0 {
		l.advance(1)
		return Token{Kind: Punct, Text: src(l, start), Pos: p, End: l.off}, nil
	}
	r, size := utf8.DecodeRuneInString(l.src[l.off:])
	l.advance(size)
	return Token{Kind: Bad, Text: string(r), Pos: p, End: l.off}, nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func src(l *lexer, start int) string { return l.src[start:l.off] }

// stringLit reads a string in single or double quotes. Backslash escapes the
// next character (\n, \t, \r, \\, \', \", \uXXXX); anything else is literal.
func (l *lexer) stringLit(q byte, p Pos) (Token, error) {
	l.advance(1)
	var sb strings.Builder
	for l.off < len(l.src) {
		c := l.src[l.off]
		if c == q {
			l.advance(1)
			return Token{Kind: String, Text: sb.String(), Pos: p, End: l.off}, nil
		}
		if c == '\\' && l.off+1 < len(l.src) {
			e := l.src[l.off+1]
			switch e {
			case 'n':
				sb.WriteByte('\n')
			case 't':
				sb.WriteByte('\t')
			case 'r':
				sb.WriteByte('\r')
			case 'u':
				if l.off+6 <= len(l.src) {
					// Four hex digits (base 16 takes no sign, prefix or _).
					if ru, err := strconv.ParseUint(l.src[l.off+2:l.off+6], 16, 32); err == nil {
						sb.WriteRune(rune(ru))
						l.advance(6)
						continue
					}
				}
				sb.WriteByte('u')
			default:
				sb.WriteByte(e)
			}
			l.advance(2)
			continue
		}
		r, size := utf8.DecodeRuneInString(l.src[l.off:])
		sb.WriteRune(r)
		l.advance(size)
	}
	return Token{}, &Error{Pos: p, Msg: fmt.Sprintf("string starting here is not closed: add the closing %c", q)}
}
