package shadow

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/edgegw/edgegw/gateway/internal/jsonq"
)

// A JSON value as decoded with json.Decoder.UseNumber: nil, bool, json.Number,
// string, []any or map[string]any. Numbers stay json.Number so that a value is
// stored and echoed exactly as the device sent it.

// decodeObject parses data as one JSON object. It returns ok false when data is
// not valid JSON, has trailing content, or is not an object.
func decodeObject(data []byte) (map[string]any, bool) {
	// json.Valid rejects trailing content that a Decoder would leave unread.
	if !json.Valid(data) {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}
	m, ok := v.(map[string]any)
	return m, ok
}

// encode marshals a JSON value compactly, with map keys sorted (so that every
// response is byte-for-byte reproducible) and without HTML escaping (a "<" in a
// value comes back as "<", not "\u003c"). It handles the types decodeObject
// produces plus int, int64 and uint64, without reflection: this is the hot path
// of every shadow request.
func encode(v any) []byte { return appendJSON(make([]byte, 0, 256), v) }

func appendJSON(b []byte, v any) []byte {
	switch t := v.(type) {
	case nil:
		return append(b, "null"...)
	case bool:
		if t {
			return append(b, "true"...)
		}
		return append(b, "false"...)
	case string:
		return jsonq.AppendQuoted(b, t)
	case json.Number:
		return append(b, t...)
	case int:
		return strconv.AppendInt(b, int64(t), 10)
	case int64:
		return strconv.AppendInt(b, t, 10)
	case uint64:
		return strconv.AppendUint(b, t, 10)
	case []any:
		b = append(b, '[')
		for i, e := range t {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSON(b, e)
		}
		return append(b, ']')
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonq.AppendQuoted(b, k)
			b = append(b, ':')
			b = appendJSON(b, t[k])
		}
		return append(b, '}')
	}
	// Every value here comes from decodeObject or from this package.
	panic(fmt.Sprintf("shadow: encoding a %T as JSON", v))
}

// depth is the nesting depth of v: 0 for a scalar, 1 + the deepest child for an
// object or array (an empty one counts 1).
func depth(v any) int {
	d := 0
	switch t := v.(type) {
	case map[string]any:
		for _, c := range t {
			d = max(d, depth(c))
		}
		return d + 1
	case []any:
		for _, c := range t {
			d = max(d, depth(c))
		}
		return d + 1
	}
	return 0
}

// hasNullInArray reports whether any array inside v has a null element
// ("Arrays can't have null values", device-shadow-document).
func hasNullInArray(v any) bool {
	switch t := v.(type) {
	case map[string]any:
		for _, c := range t {
			if hasNullInArray(c) {
				return true
			}
		}
	case []any:
		for _, c := range t {
			if c == nil || hasNullInArray(c) {
				return true
			}
		}
	}
	return false
}

// equal is deep JSON equality; numbers are equal when their literals are, or
// when both parse to the same float64 (1 and 1.0).
func equal(a, b any) bool {
	switch x := a.(type) {
	case nil:
		return b == nil
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case string:
		y, ok := b.(string)
		return ok && x == y
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		if x == y {
			return true
		}
		fx, err1 := strconv.ParseFloat(string(x), 64)
		fy, err2 := strconv.ParseFloat(string(y), 64)
		return err1 == nil && err2 == nil && fx == fy
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equal(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !equal(xv, yv) {
				return false
			}
		}
		return true
	}
	return false
}

// clone deep-copies a decoded JSON value.
func clone(v any) any {
	switch t := v.(type) {
	case map[string]any:
		return cloneMap(t)
	case []any:
		c := make([]any, len(t))
		for i, e := range t {
			c[i] = clone(e)
		}
		return c
	}
	return v
}

func cloneMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	c := make(map[string]any, len(m))
	for k, v := range m {
		c[k] = clone(v)
	}
	return c
}

// metaOf is the metadata AWS keeps for value v written at time ts: an object
// mirrors v's keys, an array has one entry per element, a scalar is
// {"timestamp": ts} (device-shadow-document, "metadata"; the array form is in the
// using-device-shadows walkthrough).
func metaOf(v any, ts json.Number) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, c := range t {
			if c != nil {
				m[k] = metaOf(c, ts)
			}
		}
		return m
	case []any:
		a := make([]any, len(t))
		for i, c := range t {
			a[i] = metaOf(c, ts)
		}
		return a
	}
	return map[string]any{"timestamp": ts}
}

// requestMeta is the metadata echoed in /update/accepted for the request's own
// section: like metaOf, except that a null (a deletion) also gets a timestamp.
func requestMeta(v any, ts json.Number) any {
	if t, ok := v.(map[string]any); ok {
		m := make(map[string]any, len(t))
		for k, c := range t {
			m[k] = requestMeta(c, ts)
		}
		return m
	}
	return metaOf(v, ts)
}

// merge applies patch to the section target and its metadata meta, in place, with
// the Device Shadow rules: null deletes a field, objects merge key by key, every
// other value (arrays included) replaces the old one whole.
func merge(target, meta, patch map[string]any, ts json.Number) {
	for k, pv := range patch {
		switch p := pv.(type) {
		case nil:
			delete(target, k)
			delete(meta, k)
		case map[string]any:
			tv, tok := target[k].(map[string]any)
			mv, mok := meta[k].(map[string]any)
			if !tok || !mok {
				tv, mv = map[string]any{}, map[string]any{}
				target[k], meta[k] = tv, mv
			}
			merge(tv, mv, p, ts)
		default:
			target[k] = clone(pv)
			meta[k] = metaOf(pv, ts)
		}
	}
}

// delta computes the fields of desired that differ from reported, as AWS does:
// a desired field missing from reported is included, nested objects recurse and
// keep the path to the root, anything else (arrays included) is compared whole.
// It returns nil when nothing differs.
func delta(desired, reported map[string]any) map[string]any {
	var d map[string]any
	for k, dv := range desired {
		rv, ok := reported[k]
		var diff any
		switch {
		case !ok:
			diff = dv
		default:
			dm, dok := dv.(map[string]any)
			rm, rok := rv.(map[string]any)
			if dok && rok {
				if sub := delta(dm, rm); sub != nil {
					diff = sub
				}
			} else if !equal(dv, rv) {
				diff = dv
			}
		}
		if diff != nil {
			if d == nil {
				d = map[string]any{}
			}
			d[k] = diff
		}
	}
	return d
}

// deltaMeta picks, for every field of the delta d, the metadata of the same field
// in desired ("its values are equal to the metadata in the desired field").
func deltaMeta(d, desiredMeta map[string]any) map[string]any {
	m := make(map[string]any, len(d))
	for k, v := range d {
		dm, isObj := v.(map[string]any)
		mm, metaObj := desiredMeta[k].(map[string]any)
		if isObj && metaObj {
			m[k] = deltaMeta(dm, mm)
			continue
		}
		if mv, ok := desiredMeta[k]; ok {
			m[k] = mv
		}
	}
	return m
}

// diff returns the patch that turns section from into section to: changed or new
// fields with their new value (objects recurse), removed fields as null. It
// returns nil when the sections are equal.
func diff(from, to map[string]any) map[string]any {
	var p map[string]any
	set := func(k string, v any) {
		if p == nil {
			p = map[string]any{}
		}
		p[k] = v
	}
	for k, tv := range to {
		fv, ok := from[k]
		if !ok {
			set(k, clone(tv))
			continue
		}
		fm, fok := fv.(map[string]any)
		tm, tok := tv.(map[string]any)
		if fok && tok {
			if sub := diff(fm, tm); sub != nil {
				set(k, sub)
			}
			continue
		}
		if !equal(fv, tv) {
			set(k, clone(tv))
		}
	}
	for k := range from {
		if _, ok := to[k]; !ok {
			set(k, nil)
		}
	}
	return p
}
