package sql

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

type tokKind uint8

const (
	tEOF tokKind = iota
	tIdent
	tNumber
	tString
	tPunct
	tVar // @name, a SET variable
	tBad // a character that is not part of AWS IoT SQL; the parser reports it
)

// Pos is a position in a SQL statement: 1-based line and column (in runes).
type Pos struct{ Line, Col int }

func (p Pos) String() string { return fmt.Sprintf("%d:%d", p.Line, p.Col) }

type token struct {
	kind tokKind
	text string // identifier, punctuation, number text, or decoded string
	pos  Pos
	end  int // byte offset just past the token
}

func (t token) is(p string) bool { return t.kind == tPunct && t.text == p }

// kw reports whether t is the keyword k (keywords are case-insensitive).
func (t token) kw(k string) bool { return t.kind == tIdent && strings.EqualFold(t.text, k) }

func (t token) describe() string {
	switch t.kind {
	case tEOF:
		return "the end of the statement"
	case tString:
		return fmt.Sprintf("the string %q", t.text)
	case tVar:
		return "@" + t.text
	case tBad:
		return fmt.Sprintf("%q (not part of AWS IoT SQL)", t.text)
	}
	return fmt.Sprintf("%q", t.text)
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

func lexAll(src string) ([]token, error) {
	l := &lexer{src: src, line: 1, col: 1}
	var toks []token
	for {
		t, err := l.next()
		if err != nil {
			return nil, err
		}
		toks = append(toks, t)
		if t.kind == tEOF {
			return toks, nil
		}
	}
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentPart(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

// next reads the token at l.off (tEOF at the end).
func (l *lexer) next() (token, error) {
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
		return token{kind: tEOF, pos: p, end: l.off}, nil
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
		return token{kind: tIdent, text: src(l, start), pos: p, end: l.off}, nil
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
func (l *lexer) number(p Pos) (token, error) {
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
		return token{}, &SQLError{Pos: p, Msg: fmt.Sprintf("%q is not a number or a name; a field name starts with a letter or _ (use get(obj, \"%s\") for keys that do not)", l.src[l.off:l.off+n+1], l.src[l.off:l.off+n+1])}
	}
	l.advance(n)
	return token{kind: tNumber, text: src(l, start), pos: p, end: l.off}, nil
}

// variable reads @name (a SET variable).
func (l *lexer) variable(p Pos) (token, error) {
	start := l.off
	n := 1
	for l.off+n < len(l.src) && isIdentPart(l.src[l.off+n]) {
		n++
	}
	if n == 1 || n > 65 {
		return token{}, &SQLError{Pos: p, Msg: "a variable is @ followed by 1 to 64 letters, digits or _"}
	}
	l.advance(n)
	return token{kind: tVar, text: l.src[start+1 : l.off], pos: p, end: l.off}, nil
}

// punct reads an operator or punctuation; what other SQL dialects write
// (--, !=, ==, backquotes) is an error saying the AWS IoT SQL way, and any
// other character is a tBad token for the parser to report.
func (l *lexer) punct(p Pos) (token, error) {
	c, start := l.src[l.off], l.off
	if c == '-' && l.off+1 < len(l.src) && l.src[l.off+1] == '-' {
		return token{}, &SQLError{Pos: p, Msg: "comments are not supported in AWS IoT SQL: remove the '--' comment"}
	}
	for _, op := range []string{"<>", "<=", ">=", "!=", "==", "`"} {
		if strings.HasPrefix(l.src[l.off:], op) {
			switch op {
			case "!=":
				return token{}, &SQLError{Pos: p, Msg: "'!=' is not AWS IoT SQL: write not-equal as <>"}
			case "==":
				return token{}, &SQLError{Pos: p, Msg: "'==' is not AWS IoT SQL: write equality as ="}
			case "`":
				return token{}, &SQLError{Pos: p, Msg: "backquoted names are not AWS IoT SQL: use get(obj, \"name\") for keys that are not plain names"}
			}
			l.advance(2)
			return token{kind: tPunct, text: op, pos: p, end: l.off}, nil
		}
	}
	if strings.IndexByte("*,().[]{}:=<>+-/%", c) >= 0 {
		l.advance(1)
		return token{kind: tPunct, text: src(l, start), pos: p, end: l.off}, nil
	}
	r, size := utf8.DecodeRuneInString(l.src[l.off:])
	l.advance(size)
	return token{kind: tBad, text: string(r), pos: p, end: l.off}, nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func src(l *lexer, start int) string { return l.src[start:l.off] }

// stringLit reads a string in single or double quotes. Backslash escapes the
// next character (\n, \t, \r, \\, \', \", \uXXXX); anything else is literal.
func (l *lexer) stringLit(q byte, p Pos) (token, error) {
	l.advance(1)
	var sb strings.Builder
	for l.off < len(l.src) {
		c := l.src[l.off]
		if c == q {
			l.advance(1)
			return token{kind: tString, text: sb.String(), pos: p, end: l.off}, nil
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
					var ru rune
					ok := true
					for i := 2; i < 6; i++ {
						h := hexVal(l.src[l.off+i])
						if h < 0 {
							ok = false
							break
						}
						ru = ru<<4 | rune(h)
					}
					if ok {
						sb.WriteRune(ru)
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
	return token{}, &SQLError{Pos: p, Msg: fmt.Sprintf("string starting here is not closed: add the closing %c", q)}
}
