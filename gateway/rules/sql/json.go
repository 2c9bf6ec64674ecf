package sql

import (
	"math"
	"strconv"

	"github.com/edgegw/edgegw/gateway/internal/jsonq"
	"github.com/edgegw/edgegw/gateway/rules/sql/internal/jsonscan"
)

// The payload is JSON or it is not; nothing in between. The reader
// (internal/jsonscan) works on the raw bytes: Skip validates without
// building anything; here lookupPath walks a path of keys and builds only
// the value found, and parse builds a whole Value. A rule that reads two
// fields of a large payload builds two values, not the payload.

// readNumber reads a JSON number into an Int (no fraction or exponent and within
// the int64 range) or a Decimal (whole Decimals become Int, see decV).
func readNumber(r *jsonscan.Reader) (Value, bool) {
	start := r.Pos
	integer, ok := r.ScanNumber()
	if !ok {
		return undef, false
	}
	text := r.B[start:r.Pos]
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

// parse builds the value at r.Pos. The input has been validated.
func parse(r *jsonscan.Reader) Value {
	r.WS()
	switch c := r.B[r.Pos]; {
	case c == '{':
		r.Pos++
		obj := &composite{}
		for {
			r.WS()
			if r.B[r.Pos] == '}' {
				r.Pos++
				return Value{k: Object, c: obj}
			}
			if r.B[r.Pos] == ',' {
				r.Pos++
				r.WS()
			}
			k, _ := r.Str()
			r.WS()
			r.Pos++ // ':'
			v := parse(r)
			obj.set(k, v)
		}
	case c == '[':
		r.Pos++
		var vals []Value
		for {
			r.WS()
			if r.B[r.Pos] == ']' {
				r.Pos++
				if vals == nil {
					vals = []Value{}
				}
				return Value{k: Array, c: &composite{vals: vals}}
			}
			if r.B[r.Pos] == ',' {
				r.Pos++
			}
			vals = append(vals, parse(r))
		}
	case c == '"':
		s, _ := r.Str()
		return strV(s)
	case c == 't':
		r.Pos += 4
		return trueValue
	case c == 'f':
		r.Pos += 5
		return falseVal
	case c == 'n':
		r.Pos += 4
		return nullValue
	default:
		v, _ := readNumber(r)
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
	r := jsonscan.Reader{B: b}
	return parse(&r)
}

// lookupPath walks keys from the top of a validated document and builds only
// the value found; Undefined when a step is missing or not an object.
func lookupPath(b []byte, path []string) Value {
	r := jsonscan.Reader{B: b}
	for _, key := range path {
		r.WS()
		if r.Pos >= len(r.B) || r.B[r.Pos] != '{' {
			return undef
		}
		r.Pos++
		found := -1
		for {
			r.WS()
			if r.B[r.Pos] == '}' {
				break
			}
			if r.B[r.Pos] == ',' {
				r.Pos++
				r.WS()
			}
			match := r.KeyEquals(key)
			r.WS()
			r.Pos++ // ':'
			r.WS()
			if match {
				found = r.Pos // the last repeated key wins, so keep scanning
			}
			r.Skip(0)
		}
		if found < 0 {
			return undef
		}
		r.Pos = found
	}
	return parse(&r)
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
		return jsonq.AppendQuoted(b, v.s)
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
			b = jsonq.AppendQuoted(b, v.c.keys[i])
			b = append(b, ':')
			b = appendJSON(b, e)
			n++
		}
		return append(b, '}')
	}
	return b
}
