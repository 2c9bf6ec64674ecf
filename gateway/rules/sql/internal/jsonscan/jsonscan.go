// Package jsonscan reads a JSON document on its raw bytes, without
// building it: Valid checks one document (as encoding/json would, UTF-8
// included), Reader.Skip moves past one value checking its syntax, Str and
// KeyEquals read strings and keys (allocating only a result with escapes),
// ScanNumber a number's syntax (gateway/internal/jsonq writes JSON strings). The
// rules language (gateway/rules/sql) builds its values over it and reads a
// field of a large payload without building the payload.
//
// It is internal to gateway/rules/sql and a leaf: the standard library
// only.
package jsonscan

import (
	"unicode/utf16"
	"unicode/utf8"
)

const maxDepth = 256 // deeper documents are treated as not JSON

// Reader reads the JSON document B from Pos; its methods move Pos past
// what they read.
type Reader struct {
	B   []byte
	Pos int
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// WS moves past white space.
func (r *Reader) WS() {
	for r.Pos < len(r.B) && isSpace(r.B[r.Pos]) {
		r.Pos++
	}
}

// Valid reports whether b is exactly one JSON value (with surrounding space).
func Valid(b []byte) bool {
	r := Reader{B: b}
	r.WS()
	if !r.Skip(0) {
		return false
	}
	r.WS()
	return r.Pos == len(b)
}

// skipList moves past an object or array whose opening bracket is at pos,
// checking its syntax: elem moves past one member or element (after space),
// and end is the closing bracket.
func (r *Reader) skipList(end byte, elem func() bool) bool {
	r.Pos++
	r.WS()
	if r.Pos < len(r.B) && r.B[r.Pos] == end {
		r.Pos++
		return true
	}
	for {
		r.WS()
		if !elem() {
			return false
		}
		r.WS()
		if r.Pos >= len(r.B) {
			return false
		}
		if r.B[r.Pos] == end {
			r.Pos++
			return true
		}
		if r.B[r.Pos] != ',' {
			return false
		}
		r.Pos++
	}
}

// Skip moves past one value, checking its syntax; depth is its nesting.
func (r *Reader) Skip(depth int) bool {
	if depth > maxDepth || r.Pos >= len(r.B) {
		return false
	}
	switch c := r.B[r.Pos]; {
	case c == '{':
		return r.skipList('}', func() bool {
			if !r.skipString() {
				return false
			}
			r.WS()
			if r.Pos >= len(r.B) || r.B[r.Pos] != ':' {
				return false
			}
			r.Pos++
			r.WS()
			return r.Skip(depth + 1)
		})
	case c == '[':
		return r.skipList(']', func() bool { return r.Skip(depth + 1) })
	case c == '"':
		return r.skipString()
	case c == 't':
		return r.word("true")
	case c == 'f':
		return r.word("false")
	case c == 'n':
		return r.word("null")
	default:
		_, ok := r.ScanNumber()
		return ok
	}
}

// word moves past the literal w (true, false, null) if it is there.
func (r *Reader) word(w string) bool {
	if len(r.B)-r.Pos < len(w) || string(r.B[r.Pos:r.Pos+len(w)]) != w {
		return false
	}
	r.Pos += len(w)
	return true
}

// skipString moves past a string, checking escapes and UTF-8.
func (r *Reader) skipString() bool {
	if r.Pos >= len(r.B) || r.B[r.Pos] != '"' {
		return false
	}
	r.Pos++
	for r.Pos < len(r.B) {
		c := r.B[r.Pos]
		switch {
		case c == '"':
			r.Pos++
			return true
		case c == '\\':
			if r.Pos+1 >= len(r.B) {
				return false
			}
			switch r.B[r.Pos+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				r.Pos += 2
			case 'u':
				if r.Pos+6 > len(r.B) {
					return false
				}
				for _, h := range r.B[r.Pos+2 : r.Pos+6] {
					if hexVal(h) < 0 {
						return false
					}
				}
				r.Pos += 6
			default:
				return false
			}
		case c < 0x20:
			return false
		case c < utf8.RuneSelf:
			r.Pos++
		default:
			ru, n := utf8.DecodeRune(r.B[r.Pos:])
			if ru == utf8.RuneError && n == 1 {
				return false
			}
			r.Pos += n
		}
	}
	return false
}

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// digits moves i past the decimal digits there; some reports that there
// was at least one.
func (r *Reader) digits(i int) (end int, some bool) {
	start := i
	for i < len(r.B) && r.B[i] >= '0' && r.B[i] <= '9' {
		i++
	}
	return i, i > start
}

// ScanNumber checks the syntax of the number at r.Pos and moves past it;
// integer reports that it has no fraction and no exponent.
func (r *Reader) ScanNumber() (integer, ok bool) {
	i := r.Pos
	if i < len(r.B) && r.B[i] == '-' {
		i++
	}
	if i >= len(r.B) {
		return false, false
	}
	if r.B[i] == '0' {
		i++
	} else if r.B[i] >= '1' && r.B[i] <= '9' {
		i, _ = r.digits(i)
	} else {
		return false, false
	}
	integer = true
	var some bool
	if i < len(r.B) && r.B[i] == '.' {
		if i, some = r.digits(i + 1); !some {
			return false, false
		}
		integer = false
	}
	if i < len(r.B) && (r.B[i] == 'e' || r.B[i] == 'E') {
		i++
		if i < len(r.B) && (r.B[i] == '+' || r.B[i] == '-') {
			i++
		}
		if i, some = r.digits(i); !some {
			return false, false
		}
		integer = false
	}
	r.Pos = i
	return integer, true
}

// Str reads a string value, decoding escapes; it allocates only the result.
func (r *Reader) Str() (string, bool) {
	r.Pos++ // opening quote
	start := r.Pos
	for r.Pos < len(r.B) {
		c := r.B[r.Pos]
		if c == '"' {
			s := string(r.B[start:r.Pos])
			r.Pos++
			return s, true
		}
		if c == '\\' {
			break
		}
		r.Pos++
	}
	buf := make([]byte, 0, r.Pos-start+16)
	buf = append(buf, r.B[start:r.Pos]...)
	for r.Pos < len(r.B) {
		c := r.B[r.Pos]
		switch c {
		case '"':
			r.Pos++
			return string(buf), true
		case '\\':
			if r.Pos+1 >= len(r.B) {
				return "", false
			}
			e := r.B[r.Pos+1]
			r.Pos += 2
			switch e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				ru, ok := r.hex4()
				if !ok {
					return "", false
				}
				if utf16.IsSurrogate(ru) {
					ru2 := utf8.RuneError
					if r.Pos+1 < len(r.B) && r.B[r.Pos] == '\\' && r.B[r.Pos+1] == 'u' {
						save := r.Pos
						r.Pos += 2
						if lo, ok := r.hex4(); ok {
							ru2 = utf16.DecodeRune(ru, lo)
						}
						if ru2 == utf8.RuneError {
							r.Pos = save
						}
					}
					ru = ru2
				}
				buf = utf8.AppendRune(buf, ru)
			default:
				return "", false
			}
		default:
			buf = append(buf, c)
			r.Pos++
		}
	}
	return "", false
}

func (r *Reader) hex4() (rune, bool) {
	if r.Pos+4 > len(r.B) {
		return 0, false
	}
	var ru rune
	for _, h := range r.B[r.Pos : r.Pos+4] {
		v := hexVal(h)
		if v < 0 {
			return 0, false
		}
		ru = ru<<4 | rune(v)
	}
	r.Pos += 4
	return ru, true
}

// KeyEquals compares the string at r.Pos (a key, still quoted) with key
// without allocating when the key has no escapes, and moves past it.
func (r *Reader) KeyEquals(key string) bool {
	start := r.Pos + 1
	i := start
	for i < len(r.B) && r.B[i] != '"' && r.B[i] != '\\' {
		i++
	}
	if i < len(r.B) && r.B[i] == '"' {
		r.Pos = i + 1
		return string(r.B[start:i]) == key
	}
	s, _ := r.Str()
	return s == key
}
