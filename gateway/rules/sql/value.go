package sql

import (
	"math"
	"strconv"
	"strings"
)

// Kind is the type of a SQL value, as the AWS IoT SQL reference names them.
type Kind uint8

// The kinds of the AWS IoT SQL type system. Undefined is the zero value: a
// missing field, a failed conversion, a function given the wrong arguments.
// Binary is the raw payload of a message that is not JSON (what `*` means there).
const (
	Undefined Kind = iota
	Null
	Boolean
	Int
	Decimal
	String
	Array
	Object
	Binary
)

var kindNames = [...]string{"Undefined", "Null", "Boolean", "Int", "Decimal", "String", "Array", "Object", "Binary"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Value is one SQL value. It is small and passed by value; arrays and objects
// share their elements (values are never mutated after they are built).
type Value struct {
	k Kind
	i int64   // Int; Boolean (0/1)
	f float64 // Decimal
	s string  // String; Binary (the raw bytes)
	c *composite
}

// composite holds an Array (vals) or an Object (keys and vals, in insertion order).
type composite struct {
	keys []string
	vals []Value
}

var (
	undef     = Value{}
	nullValue = Value{k: Null}
	trueValue = Value{k: Boolean, i: 1}
	falseVal  = Value{k: Boolean}
)

// Kind reports the value's type.
func (v Value) Kind() Kind { return v.k }

func boolV(b bool) Value {
	if b {
		return trueValue
	}
	return falseVal
}

func intV(i int64) Value    { return Value{k: Int, i: i} }
func strV(s string) Value   { return Value{k: String, s: s} }
func arrV(vs []Value) Value { return Value{k: Array, c: &composite{vals: vs}} }

// decV makes a Decimal. With SQL version 2016-03-23 a whole number such as 10.0
// is processed as the Int 10 (iot-sql-data-types), so whole values within the
// Int range become Int here, once, for every producer.
//
// A double has no room for what AWS's 34-digit Decimal holds beyond ±1.8E308:
// an overflow (or a NaN) is Undefined, never a wrong number.
func decV(f float64) Value {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return undef
	}
	if f == math.Trunc(f) && f >= -9.2e18 && f <= 9.2e18 {
		return Value{k: Int, i: int64(f)}
	}
	return Value{k: Decimal, f: f}
}

func (v Value) boolean() bool { return v.i != 0 }

func (v Value) num() float64 {
	if v.k == Int {
		return float64(v.i)
	}
	return v.f
}

func (v Value) isNum() bool { return v.k == Int || v.k == Decimal }

// member returns the value of key in an Object, Undefined when absent.
func (v Value) member(key string) Value {
	if v.k != Object {
		return undef
	}
	ks := v.c.keys
	for i := len(ks) - 1; i >= 0; i-- {
		if ks[i] == key {
			return v.c.vals[i]
		}
	}
	return undef
}

// index returns the element at i of an Array, Undefined out of bounds.
func (v Value) index(i int64) Value {
	if v.k != Array || i < 0 || i >= int64(len(v.c.vals)) {
		return undef
	}
	return v.c.vals[i]
}

// decimalPattern is the grammar AWS documents for strings that convert to
// Decimal: ^-?\d+(\.\d+)?((?i)E-?\d+)?$ (iot-sql-data-types, Conversions).
func parseDecimalString(s string) (Value, bool) {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	start := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == start {
		return undef, false
	}
	whole := true
	if i < len(s) && s[i] == '.' {
		i++
		fs := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == fs {
			return undef, false
		}
		whole = false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && s[i] == '-' {
			i++
		}
		es := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == es {
			return undef, false
		}
		whole = false
	}
	if i != len(s) {
		return undef, false
	}
	if whole {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return intV(n), true
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !math.IsInf(f, 0) {
		return undef, false
	}
	return decV(f), true
}

// toNumber converts per the "To decimal" table: Int and Decimal as they are,
// Strings matching the decimal grammar, Null stays Null, the rest Undefined.
func toNumber(v Value) Value {
	switch v.k {
	case Int, Decimal, Null:
		return v
	case String:
		if n, ok := parseDecimalString(v.s); ok {
			return n
		}
	}
	return undef
}

// numberArg is toNumber for function arguments, where Null is Undefined too.
func numberArg(v Value) (Value, bool) {
	n := toNumber(v)
	return n, n.isNum()
}

// floatArg converts an argument to a double ("Decimal arguments are rounded to
// double precision before function application").
func floatArg(v Value) (float64, bool) {
	n, ok := numberArg(v)
	if !ok {
		return 0, false
	}
	return n.num(), true
}

// intFloor converts an argument to an Int rounded down, as bitand, chr, lpad,
// substring and trunc document ("rounded down to the nearest Int").
func intFloor(v Value) (int64, bool) {
	n, ok := numberArg(v)
	if !ok {
		return 0, false
	}
	if n.k == Int {
		return n.i, true
	}
	f := math.Floor(n.f)
	if math.IsNaN(f) {
		return 0, false
	}
	if f > math.MaxInt64 {
		return math.MaxInt64, true
	}
	if f < math.MinInt64 {
		return math.MinInt64, true
	}
	return int64(f), true
}

// toInt is the standard conversion to Int (the "To int" table): a Decimal is
// rounded to the nearest Int, a String is parsed as a Decimal and truncated.
func toInt(v Value) (int64, bool) {
	var f float64
	switch v.k {
	case Int:
		return v.i, true
	case Decimal:
		f = math.Round(v.f)
	case String:
		n, ok := parseDecimalString(v.s)
		if !ok {
			return 0, false
		}
		if n.k == Int {
			return n.i, true
		}
		f = math.Trunc(n.f)
	default:
		return 0, false
	}
	if math.IsNaN(f) || f > math.MaxInt64 || f < math.MinInt64 {
		return 0, false
	}
	return int64(f), true
}

// toBool converts per the "To Boolean" table: Booleans, and the strings
// "true"/"false" in any case; everything else is Undefined.
func toBool(v Value) (bool, bool) {
	switch v.k {
	case Boolean:
		return v.boolean(), true
	case String:
		if strings.EqualFold(v.s, "true") {
			return true, true
		}
		if strings.EqualFold(v.s, "false") {
			return false, true
		}
	}
	return false, false
}

// toString converts per the "To string" table. Null and Undefined do not convert.
func toString(v Value) (string, bool) {
	switch v.k {
	case String, Binary:
		return v.s, true
	case Int:
		return strconv.FormatInt(v.i, 10), true
	case Decimal:
		return formatDecimal(v.f), true
	case Boolean:
		if v.boolean() {
			return "true", true
		}
		return "false", true
	case Array, Object:
		return string(appendJSON(nil, v)), true
	}
	return "", false
}

// formatDecimal writes a double the way JSON encoders do: plain notation for
// ordinary magnitudes, scientific notation for very large or small ones.
func formatDecimal(f float64) string {
	return string(appendDecimal(nil, f))
}

func appendDecimal(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		// JSON has no NaN or Infinity; AWS's Decimal has neither either.
		return append(b, "null"...)
	}
	abs := math.Abs(f)
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		return strconv.AppendFloat(b, f, 'E', -1, 64)
	}
	return strconv.AppendFloat(b, f, 'f', -1, 64)
}

// equal implements the = operator's table. ok is false when either side is
// Undefined (the result is then Undefined).
func equal(a, b Value) (eq, ok bool) {
	if a.k == Undefined || b.k == Undefined {
		return false, false
	}
	if a.isNum() && b.isNum() {
		if a.k == Int && b.k == Int {
			return a.i == b.i, true
		}
		return a.num() == b.num(), true
	}
	if a.k != b.k {
		return false, true
	}
	switch a.k {
	case Null:
		return true, true
	case Boolean:
		return a.i == b.i, true
	case String, Binary:
		return a.s == b.s, true
	case Array:
		if len(a.c.vals) != len(b.c.vals) {
			return false, true
		}
		for i := range a.c.vals {
			if e, ok := equal(a.c.vals[i], b.c.vals[i]); !ok || !e {
				return false, true
			}
		}
		return true, true
	case Object:
		// Keys and values equal, order unimportant.
		if len(a.c.keys) != len(b.c.keys) {
			return false, true
		}
		for i, k := range a.c.keys {
			bv := b.member(k)
			if e, ok := equal(a.c.vals[i], bv); !ok || !e {
				return false, true
			}
		}
		return true, true
	}
	return false, true
}
