package enrol

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// The /cbor topics carry the same documents as the /json ones in CBOR (RFC 8949), as the
// FreeRTOS fleet-provisioning demo sends them. Only the subset those documents need is read:
// maps with text keys, text strings, integers, booleans, null and arrays, definite lengths, at
// most maxDepth deep. Anything else (byte strings, tags, floats, indefinite lengths) is refused
// as InvalidPayload. A request is converted to JSON and read by the JSON parser, so both
// formats obey the same rules; a response is the JSON document converted to CBOR.

const maxDepth = 8

var errCBOR = errors.New("not a CBOR document of the supported subset (maps, text, integers, booleans, null, arrays)")

// cborToJSON converts one CBOR data item to JSON.
func cborToJSON(data []byte) ([]byte, error) {
	v, rest, err := cborDecode(data, 0)
	if err != nil {
		return nil, err
	}
	if len(rest) > 0 {
		return nil, fmt.Errorf("%w: %d bytes after the data item", errCBOR, len(rest))
	}
	return json.Marshal(v)
}

// cborHead reads a major type and its argument.
func cborHead(b []byte) (major byte, arg uint64, rest []byte, err error) {
	if len(b) == 0 {
		return 0, 0, nil, fmt.Errorf("%w: truncated", errCBOR)
	}
	major, info := b[0]>>5, b[0]&0x1f
	b = b[1:]
	switch {
	case info < 24:
		return major, uint64(info), b, nil
	case info <= 27:
		n := 1 << (info - 24)
		if len(b) < n {
			return 0, 0, nil, fmt.Errorf("%w: truncated", errCBOR)
		}
		var v uint64
		for _, c := range b[:n] {
			v = v<<8 | uint64(c)
		}
		return major, v, b[n:], nil
	}
	return 0, 0, nil, fmt.Errorf("%w: indefinite length or reserved value", errCBOR)
}

func cborDecode(b []byte, depth int) (any, []byte, error) {
	if depth > maxDepth {
		return nil, nil, fmt.Errorf("%w: nested deeper than %d", errCBOR, maxDepth)
	}
	major, arg, b, err := cborHead(b)
	if err != nil {
		return nil, nil, err
	}
	switch major {
	case 0:
		if arg > math.MaxInt64 {
			return nil, nil, fmt.Errorf("%w: integer out of range", errCBOR)
		}
		return json.Number(strconv.FormatUint(arg, 10)), b, nil
	case 1:
		if arg > math.MaxInt64 {
			return nil, nil, fmt.Errorf("%w: integer out of range", errCBOR)
		}
		return json.Number(strconv.FormatInt(-1-int64(arg), 10)), b, nil
	case 3:
		if arg > uint64(len(b)) {
			return nil, nil, fmt.Errorf("%w: truncated text", errCBOR)
		}
		if !utf8.Valid(b[:arg]) {
			return nil, nil, fmt.Errorf("%w: text is not UTF-8", errCBOR)
		}
		return string(b[:arg]), b[arg:], nil
	case 4:
		if arg > uint64(len(b)) { // every item is at least one byte
			return nil, nil, fmt.Errorf("%w: truncated array", errCBOR)
		}
		out := make([]any, 0, arg)
		for range arg {
			var v any
			if v, b, err = cborDecode(b, depth+1); err != nil {
				return nil, nil, err
			}
			out = append(out, v)
		}
		return out, b, nil
	case 5:
		if arg > uint64(len(b))/2 {
			return nil, nil, fmt.Errorf("%w: truncated map", errCBOR)
		}
		out := make(map[string]any, arg)
		for range arg {
			var k, v any
			if k, b, err = cborDecode(b, depth+1); err != nil {
				return nil, nil, err
			}
			ks, ok := k.(string)
			if !ok {
				return nil, nil, fmt.Errorf("%w: a map key is not text", errCBOR)
			}
			if _, dup := out[ks]; dup {
				return nil, nil, fmt.Errorf("%w: map key %q twice", errCBOR, ks)
			}
			if v, b, err = cborDecode(b, depth+1); err != nil {
				return nil, nil, err
			}
			out[ks] = v
		}
		return out, b, nil
	case 7:
		switch arg {
		case 20:
			return false, b, nil
		case 21:
			return true, b, nil
		case 22:
			return nil, b, nil
		}
	}
	return nil, nil, fmt.Errorf("%w: major type %d (value %d) is not supported", errCBOR, major, arg)
}

// jsonToCBOR converts a JSON document (ours: objects, strings, integers) to CBOR with map keys
// in the deterministic order of RFC 8949 4.2.1 (shorter first, then bytewise).
func jsonToCBOR(doc []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := cborEncode(&buf, v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func cborWriteHead(buf *bytes.Buffer, major byte, arg uint64) {
	switch {
	case arg < 24:
		buf.WriteByte(major<<5 | byte(arg))
	case arg <= math.MaxUint8:
		buf.WriteByte(major<<5 | 24)
		buf.WriteByte(byte(arg))
	case arg <= math.MaxUint16:
		buf.WriteByte(major<<5 | 25)
		buf.Write(binary.BigEndian.AppendUint16(nil, uint16(arg)))
	case arg <= math.MaxUint32:
		buf.WriteByte(major<<5 | 26)
		buf.Write(binary.BigEndian.AppendUint32(nil, uint32(arg)))
	default:
		buf.WriteByte(major<<5 | 27)
		buf.Write(binary.BigEndian.AppendUint64(nil, arg))
	}
}

func cborEncode(buf *bytes.Buffer, v any) error {
	switch x := v.(type) {
	case nil:
		buf.WriteByte(0xf6)
	case bool:
		if x {
			buf.WriteByte(0xf5)
		} else {
			buf.WriteByte(0xf4)
		}
	case string:
		cborWriteHead(buf, 3, uint64(len(x)))
		buf.WriteString(x)
	case json.Number:
		n, err := strconv.ParseInt(string(x), 10, 64)
		if err != nil {
			return fmt.Errorf("CBOR: number %s is not an integer", x)
		}
		if n >= 0 {
			cborWriteHead(buf, 0, uint64(n))
		} else {
			cborWriteHead(buf, 1, uint64(-1-n))
		}
	case []any:
		cborWriteHead(buf, 4, uint64(len(x)))
		for _, e := range x {
			if err := cborEncode(buf, e); err != nil {
				return err
			}
		}
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b string) int {
			if len(a) != len(b) {
				return len(a) - len(b)
			}
			return bytes.Compare([]byte(a), []byte(b))
		})
		cborWriteHead(buf, 5, uint64(len(x)))
		for _, k := range keys {
			cborWriteHead(buf, 3, uint64(len(k)))
			buf.WriteString(k)
			if err := cborEncode(buf, x[k]); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("CBOR: cannot encode %T", v)
	}
	return nil
}
