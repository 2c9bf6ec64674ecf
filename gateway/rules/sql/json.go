package sql

import (
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// The payload is JSON or it is not; nothing in between. This file holds a small
// JSON reader that works on the raw bytes: skip (validate without building
// anything), lookup (walk a path of keys and build only the value found) and
// parse (build a whole Value). A rule that reads two fields of a large payload
// builds two values, not the payload.

const maxDepth = 256 // deeper documents are treated as not JSON

type jsonReader struct {
	b   []byte
	pos int
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (r *jsonReader) ws() {
	for r.pos < len(r.b) && isSpace(r.b[r.pos]) {
		r.pos++
	}
}

// validJSON reports whether b is exactly one JSON value (with surrounding space).
func validJSON(b []byte) bool {
	r := jsonReader{b: b}
	r.ws()
	if !r.skip(0) {
		return false
	}
	r.ws()
	return r.pos == len(b)
}

// skipList moves past an object or array whose opening bracket is at pos,
// checking its syntax: elem moves past one member or element (after space),
// and end is the closing bracket.
func (r *jsonReader) skipList(end byte, elem func() bool) bool {
	r.pos++
	r.ws()
	if r.pos < len(r.b) && r.b[r.pos] == end {
		r.pos++
		return true
	}
	for {
		r.ws()
		if !elem() {
			return false
		}
		r.ws()
		if r.pos >= len(r.b) {
			return false
		}
		if r.b[r.pos] == end {
			r.pos++
			return true
		}
		if r.b[r.pos] != ',' {
			return false
		}
		r.pos++
	}
}

// skip moves past one value, checking its syntax.
func (r *jsonReader) skip(depth int) bool {
	if depth > maxDepth || r.pos >= len(r.b) {
		return false
	}
	switch c := r.b[r.pos]; {
	case c == '{':
		return r.skipList('}', func() bool {
			if !r.skipString() {
				return false
			}
			r.ws()
			if r.pos >= len(r.b) || r.b[r.pos] != ':' {
				return false
			}
			r.pos++
			r.ws()
			return r.skip(depth + 1)
		})
	case c == '[':
		return r.skipList(']', func() bool { return r.skip(depth + 1) })
	case c == '"':
		return r.skipString()
	case c == 't':
		return r.word("true")
	case c == 'f':
		return r.word("false")
	case c == 'n':
		return r.word("null")
	default:
		_, ok := r.scanNumber()
		return ok
	}
}

func (r *jsonReader) word(w string) bool {
	if len(r.b)-r.pos < len(w) || string(r.b[r.pos:r.pos+len(w)]) != w {
		return false
	}
	r.pos += len(w)
	return true
}

// skipString moves past a string, checking escapes and UTF-8.
func (r *jsonReader) skipString() bool {
	if r.pos >= len(r.b) || r.b[r.pos] != '"' {
		return false
	}
	r.pos++
	for r.pos < len(r.b) {
		c := r.b[r.pos]
		switch {
		case c == '"':
			r.pos++
			return true
		case c == '\\':
			if r.pos+1 >= len(r.b) {
				return false
			}
			switch r.b[r.pos+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				r.pos += 2
			case 'u':
				if r.pos+6 > len(r.b) {
					return false
				}
				for _, h := range r.b[r.pos+2 : r.pos+6] {
					if hexVal(h) < 0 {
						return false
					}
				}
				r.pos += 6
			default:
				return false
			}
		case c < 0x20:
			return false
		case c < utf8.RuneSelf:
			r.pos++
		default:
			ru, n := utf8.DecodeRune(r.b[r.pos:])
			if ru == utf8.RuneError && n == 1 {
				return false
			}
			r.pos += n
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
func (r *jsonReader) digits(i int) (end int, some bool) {
	start := i
	for i < len(r.b) && r.b[i] >= '0' && r.b[i] <= '9' {
		i++
	}
	return i, i > start
}

// scanNumber checks the syntax of the number at r.pos and moves past it;
// integer reports that it has no fraction and no exponent.
func (r *jsonReader) scanNumber() (integer, ok bool) {
	i := r.pos
	if i < len(r.b) && r.b[i] == '-' {
		i++
	}
	if i >= len(r.b) {
		return false, false
	}
	if r.b[i] == '0' {
		i++
	} else if r.b[i] >= '1' && r.b[i] <= '9' {
		i, _ = r.digits(i)
	} else {
		return false, false
	}
	integer = true
	var some bool
	if i < len(r.b) && r.b[i] == '.' {
		if i, some = r.digits(i + 1); !some {
			return false, false
		}
		integer = false
	}
	if i < len(r.b) && (r.b[i] == 'e' || r.b[i] == 'E') {
		i++
		if i < len(r.b) && (r.b[i] == '+' || r.b[i] == '-') {
			i++
		}
		if i, some = r.digits(i); !some {
			return false, false
		}
		integer = false
	}
	r.pos = i
	return integer, true
}

// number reads a JSON number into an Int (no fraction or exponent and within
// the int64 range) or a Decimal (whole Decimals become Int, see decV).
func (r *jsonReader) number() (Value, bool) {
	start := r.pos
	integer, ok := r.scanNumber()
	if !ok {
		return undef, false
	}
	text := r.b[start:r.pos]
	if integer && len(text) <= 18 {
		var n int64
		neg := text[0] == '-'
		for _, c := range text {
			if c != '-' {
				n = n*10 + int64(c-'0')
			}
		}
		if neg {
			n = -n
		}
		return intV(n), true
	}
	f, err := strconv.ParseFloat(string(text), 64)
	if err != nil && !math.IsInf(f, 0) {
		return undef, false
	}
	if integer {
		if n, err := strconv.ParseInt(string(text), 10, 64); err == nil {
			return intV(n), true
		}
	}
	return decV(f), true
}

// str reads a string value, decoding escapes; it allocates only the result.
func (r *jsonReader) str() (string, bool) {
	r.pos++ // opening quote
	start := r.pos
	for r.pos < len(r.b) {
		c := r.b[r.pos]
		if c == '"' {
			s := string(r.b[start:r.pos])
			r.pos++
			return s, true
		}
		if c == '\\' {
			break
		}
		r.pos++
	}
	buf := make([]byte, 0, r.pos-start+16)
	buf = append(buf, r.b[start:r.pos]...)
	for r.pos < len(r.b) {
		c := r.b[r.pos]
		switch c {
		case '"':
			r.pos++
			return string(buf), true
		case '\\':
			if r.pos+1 >= len(r.b) {
				return "", false
			}
			e := r.b[r.pos+1]
			r.pos += 2
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
					if r.pos+1 < len(r.b) && r.b[r.pos] == '\\' && r.b[r.pos+1] == 'u' {
						save := r.pos
						r.pos += 2
						if lo, ok := r.hex4(); ok {
							ru2 = utf16.DecodeRune(ru, lo)
						}
						if ru2 == utf8.RuneError {
							r.pos = save
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
			r.pos++
		}
	}
	return "", false
}

func (r *jsonReader) hex4() (rune, bool) {
	if r.pos+4 > len(r.b) {
		return 0, false
	}
	var ru rune
	for _, h := range r.b[r.pos : r.pos+4] {
		v := hexVal(h)
		if v < 0 {
			return 0, false
		}
		ru = ru<<4 | rune(v)
	}
	r.pos += 4
	return ru, true
}

// keyEquals compares the string at r.pos (a key, still quoted) with key
// without allocating when the key has no escapes, and moves past it.
func (r *jsonReader) keyEquals(key string) bool {
	start := r.pos + 1
	i := start
	for i < len(r.b) && r.b[i] != '"' && r.b[i] != '\\' {
		i++
	}
	if i < len(r.b) && r.b[i] == '"' {
		r.pos = i + 1
		return string(r.b[start:i]) == key
	}
	s, _ := r.str()
	return s == key
}

// parse builds the value at r.pos. The input has been validated.
func (r *jsonReader) parse() Value {
	r.ws()
	switch c := r.b[r.pos]; {
	case c == '{':
		r.pos++
		obj := &composite{}
		for {
			r.ws()
			if r.b[r.pos] == '}' {
				r.pos++
				return Value{k: Object, c: obj}
			}
			if r.b[r.pos] == ',' {
				r.pos++
				r.ws()
			}
			k, _ := r.str()
			r.ws()
			r.pos++ // ':'
			v := r.parse()
			obj.set(k, v)
		}
	case c == '[':
		r.pos++
		var vals []Value
		for {
			r.ws()
			if r.b[r.pos] == ']' {
				r.pos++
				if vals == nil {
					vals = []Value{}
				}
				return Value{k: Array, c: &composite{vals: vals}}
			}
			if r.b[r.pos] == ',' {
				r.pos++
			}
			vals = append(vals, r.parse())
		}
	case c == '"':
		s, _ := r.str()
		return strV(s)
	case c == 't':
		r.pos += 4
		return trueValue
	case c == 'f':
		r.pos += 5
		return falseVal
	case c == 'n':
		r.pos += 4
		return nullValue
	default:
		v, _ := r.number()
		return v
	}
}

// set adds or replaces a member (a repeated key keeps its last value).
func (o *composite) set(k string, v Value) {
	for i := range o.keys {
		if o.keys[i] == k {
			o.vals[i] = v
			return
		}
	}
	o.keys = append(o.keys, k)
	o.vals = append(o.vals, v)
}

// parseJSON builds the Value of a validated document.
func parseJSON(b []byte) Value {
	r := jsonReader{b: b}
	return r.parse()
}

// lookupPath walks keys from the top of a validated document and builds only
// the value found; Undefined when a step is missing or not an object.
func lookupPath(b []byte, path []string) Value {
	r := jsonReader{b: b}
	for _, key := range path {
		r.ws()
		if r.pos >= len(r.b) || r.b[r.pos] != '{' {
			return undef
		}
		r.pos++
		found := -1
		for {
			r.ws()
			if r.b[r.pos] == '}' {
				break
			}
			if r.b[r.pos] == ',' {
				r.pos++
				r.ws()
			}
			match := r.keyEquals(key)
			r.ws()
			r.pos++ // ':'
			r.ws()
			if match {
				found = r.pos // the last repeated key wins, so keep scanning
			}
			r.skip(0)
		}
		if found < 0 {
			return undef
		}
		r.pos = found
	}
	return r.parse()
}

// appendJSON serializes v. Undefined members of objects are omitted, as AWS
// does; Undefined elsewhere writes nothing (the caller decides).
func appendJSON(b []byte, v Value) []byte {
	switch v.k {
	case Null:
		return append(b, "null"...)
	case Boolean:
		if v.boolean() {
			return append(b, "true"...)
		}
		return append(b, "false"...)
	case Int:
		return strconv.AppendInt(b, v.i, 10)
	case Decimal:
		return appendDecimal(b, v.f)
	case String, Binary:
		return appendQuoted(b, v.s)
	case Array:
		b = append(b, '[')
		n := 0
		for _, e := range v.c.vals {
			if e.k == Undefined {
				continue
			}
			if n > 0 {
				b = append(b, ',')
			}
			b = appendJSON(b, e)
			n++
		}
		return append(b, ']')
	case Object:
		b = append(b, '{')
		n := 0
		for i, e := range v.c.vals {
			if e.k == Undefined {
				continue
			}
			if n > 0 {
				b = append(b, ',')
			}
			b = appendQuoted(b, v.c.keys[i])
			b = append(b, ':')
			b = appendJSON(b, e)
			n++
		}
		return append(b, '}')
	}
	return b
}

const hexDigits = "0123456789abcdef"

func appendQuoted(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		ru, n := utf8.DecodeRuneInString(s[i:])
		if ru == utf8.RuneError && n == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += n
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
