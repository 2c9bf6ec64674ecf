package sql

import (
	"math"
	"strings"
)

// Operators, each following its table in the AWS IoT SQL reference
// (https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-operators.html).

func logical(a, b Value, f func(x, y bool) bool) Value {
	x, ok1 := toBool(a)
	y, ok2 := toBool(b)
	if !ok1 || !ok2 {
		return undef
	}
	return boolV(f(x, y))
}

func opAnd(a, b Value) Value { return logical(a, b, func(x, y bool) bool { return x && y }) }
func opOr(a, b Value) Value  { return logical(a, b, func(x, y bool) bool { return x || y }) }

func opNot(a Value) Value {
	x, ok := toBool(a)
	if !ok {
		return undef
	}
	return boolV(!x)
}

func opNeg(a Value) Value {
	n := toNumber(a)
	switch n.k {
	case Int:
		if n.i == math.MinInt64 {
			return decV(-float64(n.i))
		}
		return intV(-n.i)
	case Decimal:
		return decV(-n.f)
	}
	return undef
}

// compareNums converts both sides to numbers (Int, Decimal, or Strings in the
// decimal grammar) and compares them; ok is false for any other operand.
func compareNums(a, b Value) (int, bool) {
	if !(a.isNum() || a.k == String) || !(b.isNum() || b.k == String) {
		return 0, false
	}
	x, y := toNumber(a), toNumber(b)
	if !x.isNum() || !y.isNum() {
		return 0, false
	}
	if x.k == Int && y.k == Int {
		switch {
		case x.i < y.i:
			return -1, true
		case x.i > y.i:
			return 1, true
		}
		return 0, true
	}
	xf, yf := x.num(), y.num()
	switch {
	case xf < yf:
		return -1, true
	case xf > yf:
		return 1, true
	case xf == yf:
		return 0, true
	}
	return 0, false // NaN
}

func cmpOp(a, b Value, f func(int) bool) Value {
	c, ok := compareNums(a, b)
	if !ok {
		return undef
	}
	return boolV(f(c))
}

func opLt(a, b Value) Value { return cmpOp(a, b, func(c int) bool { return c < 0 }) }
func opLe(a, b Value) Value { return cmpOp(a, b, func(c int) bool { return c <= 0 }) }
func opGt(a, b Value) Value { return cmpOp(a, b, func(c int) bool { return c > 0 }) }
func opGe(a, b Value) Value { return cmpOp(a, b, func(c int) bool { return c >= 0 }) }

func opEq(a, b Value) Value {
	eq, ok := equal(a, b)
	if !ok {
		return undef
	}
	return boolV(eq)
}

func opNe(a, b Value) Value {
	eq, ok := equal(a, b)
	if !ok {
		return undef
	}
	return boolV(!eq)
}

// opAdd: a String on either side concatenates (the other side converted to a
// string); Int + Int is Int; Int/Decimal mixes are Decimal; all else Undefined.
func opAdd(a, b Value) Value {
	if a.k == String || b.k == String {
		x, ok1 := toString(a)
		y, ok2 := toString(b)
		if !ok1 || !ok2 {
			return undef
		}
		return strV(x + y)
	}
	if a.k == Int && b.k == Int {
		s := a.i + b.i
		if (s > a.i) == (b.i > 0) {
			return intV(s)
		}
		return decV(float64(a.i) + float64(b.i))
	}
	if a.isNum() && b.isNum() {
		return decV(a.num() + b.num())
	}
	return undef
}

// arith applies -, *, / or %: Int with Int stays Int; otherwise both sides
// (Strings converted) are Decimal. A string operand makes the result Decimal.
func arith(a, b Value, op byte) Value {
	if !(a.isNum() || a.k == String) || !(b.isNum() || b.k == String) {
		return undef
	}
	x, y := toNumber(a), toNumber(b)
	if !x.isNum() || !y.isNum() {
		return undef
	}
	if a.k == Int && b.k == Int {
		if v, ok := intArith(a.i, b.i, op); ok {
			return v
		}
		if op == '/' || op == '%' {
			if b.i == 0 {
				return undef
			}
		}
	}
	xf, yf := x.num(), y.num()
	switch op {
	case '-':
		return decV(xf - yf)
	case '*':
		return decV(xf * yf)
	case '/':
		if yf == 0 {
			return undef
		}
		return decV(xf / yf)
	case '%':
		if yf == 0 {
			return undef
		}
		return decV(math.Mod(xf, yf))
	}
	return undef
}

// intArith is exact Int arithmetic; ok is false on overflow or division by zero.
func intArith(x, y int64, op byte) (Value, bool) {
	switch op {
	case '-':
		d := x - y
		if (d < x) == (y > 0) {
			return intV(d), true
		}
	case '*':
		if x == 0 || y == 0 {
			return intV(0), true
		}
		p := x * y
		if p/y == x && !(x == -1 && y == math.MinInt64) && !(y == -1 && x == math.MinInt64) {
			return intV(p), true
		}
	case '/':
		if y != 0 && !(x == math.MinInt64 && y == -1) {
			return intV(x / y), true // truncates toward zero, as Java does
		}
	case '%':
		if y != 0 {
			if y == -1 {
				return intV(0), true
			}
			return intV(x % y), true // the sign of the dividend, as Java does
		}
	}
	return undef, false
}

func opSub(a, b Value) Value { return arith(a, b, '-') }
func opMul(a, b Value) Value { return arith(a, b, '*') }
func opDiv(a, b Value) Value { return arith(a, b, '/') }
func opMod(a, b Value) Value { return arith(a, b, '%') }

// castTo follows the cast() tables, which add Boolean <-> number to the
// standard conversions.
func castTo(v Value, k Kind) Value {
	switch k {
	case String:
		if v.k == Null {
			return undef
		}
		s, ok := toString(v)
		if !ok {
			return undef
		}
		return strV(s)
	case Int:
		switch v.k {
		case Boolean:
			return intV(v.i)
		case Int:
			return v
		case Decimal, String:
			n, ok := intFloor(v)
			if !ok {
				return undef
			}
			return intV(n)
		}
		return undef
	case Decimal:
		switch v.k {
		case Boolean:
			return decV(float64(v.i))
		case Int, Decimal:
			return v
		case String:
			n, ok := parseDecimalString(v.s)
			if !ok {
				return undef
			}
			return n
		}
		return undef
	case Boolean:
		switch v.k {
		case Int:
			return boolV(v.i != 0)
		case Decimal:
			return boolV(v.f != 0)
		case Boolean:
			return v
		case String:
			if strings.EqualFold(v.s, "true") {
				return trueValue
			}
			if strings.EqualFold(v.s, "false") {
				return falseVal
			}
		}
		return undef
	}
	return undef
}

// getValue is get(collection, key) and a[key]: Arrays and Strings by an index
// converted to Int by the standard conversion, Objects by a String key with no
// conversion.
func getValue(coll, key Value) Value {
	switch coll.k {
	case Array:
		i, ok := toInt(key)
		if !ok {
			return undef
		}
		return coll.index(i)
	case String:
		i, ok := toInt(key)
		if !ok {
			return undef
		}
		r := []rune(coll.s)
		if i < 0 || i >= int64(len(r)) {
			return undef
		}
		return strV(string(r[i]))
	case Object:
		if key.k != String {
			return undef
		}
		return coll.member(key.s)
	}
	return undef
}
