package sql

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"math"
	mrand "math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/edgegw/edgegw/gateway/rules/sql/internal/jsonscan"
	"github.com/edgegw/edgegw/gateway/rules/sql/internal/md2"
)

// The built-in functions of AWS IoT SQL version 2016-03-23, as the reference
// documents them (https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-functions.html).
// A function that needs an AWS service is listed with the reason it is refused.

type funcSpec struct {
	min, max int  // argument counts; max < 0 is any number
	pure     bool // the result depends only on the arguments (folded when they are constant)
	fn       func(c *Ctx, args []Value) Value
	// check runs at compile time on the argument expressions (literal
	// schemes, regular expressions, patterns).
	check func(name token, args []*expr) error
	// cloud is why the function cannot run at the edge; set for refused functions.
	cloud string
}

var funcs map[string]*funcSpec

// init fills the function table: one line per AWS IoT SQL function,
// grouped as the reference groups them. It is a table, not logic, and stays
// one function over 80 lines so that the whole list reads (and diffs) in one
// place against the reference's list.
func init() {
	funcs = map[string]*funcSpec{
		"abs":   {min: 1, max: 1, pure: true, fn: fnAbs},
		"acos":  math1(math.Acos),
		"asin":  math1(math.Asin),
		"atan":  math1(math.Atan),
		"atan2": {min: 2, max: 2, pure: true, fn: fnAtan2},
		"cos":   math1(math.Cos),
		"cosh":  math1(math.Cosh),
		"exp":   math1(math.Exp),
		"ln":    math1(math.Log),
		"log":   math1(math.Log10),
		"sin":   math1(math.Sin),
		"sinh":  math1(math.Sinh),
		"sqrt":  math1(math.Sqrt),
		"tan":   math1(math.Tan),
		"tanh":  math1(math.Tanh),
		"power": {min: 2, max: 2, pure: true, fn: fnPower},
		"ceil":  {min: 1, max: 1, pure: true, fn: roundFn(math.Ceil)},
		"floor": {min: 1, max: 1, pure: true, fn: roundFn(math.Floor)},
		"round": {min: 1, max: 1, pure: true, fn: roundFn(math.Round)},
		"sign":  {min: 1, max: 1, pure: true, fn: fnSign},
		"trunc": {min: 2, max: 2, pure: true, fn: fnTrunc},
		"mod":   {min: 2, max: 2, pure: true, fn: func(_ *Ctx, a []Value) Value { return opMod(a[0], a[1]) }},
		"remainder": {min: 2, max: 2, pure: true,
			fn: func(_ *Ctx, a []Value) Value { return opMod(a[0], a[1]) }},
		"bitand": bit2(func(x, y int64) int64 { return x & y }),
		"bitor":  bit2(func(x, y int64) int64 { return x | y }),
		"bitxor": bit2(func(x, y int64) int64 { return x ^ y }),
		"bitnot": {min: 1, max: 1, pure: true, fn: fnBitnot},
		"nanvl":  {min: 2, max: 2, pure: true, fn: fnNanvl},

		"chr":         {min: 1, max: 1, pure: true, fn: fnChr},
		"concat":      {min: 0, max: -1, pure: true, fn: fnConcat},
		"endswith":    {min: 2, max: 2, pure: true, fn: str2(strings.HasSuffix)},
		"startswith":  {min: 2, max: 2, pure: true, fn: str2(strings.HasPrefix)},
		"indexof":     {min: 2, max: 2, pure: true, fn: fnIndexof},
		"length":      {min: 1, max: 1, pure: true, fn: fnLength},
		"numbytes":    {min: 1, max: 1, pure: true, fn: fnNumbytes},
		"lower":       {min: 1, max: 1, pure: true, fn: str1(strings.ToLower)},
		"upper":       {min: 1, max: 1, pure: true, fn: str1(strings.ToUpper)},
		"ltrim":       {min: 1, max: 1, pure: true, fn: str1(func(s string) string { return strings.TrimLeft(s, " \t") })},
		"rtrim":       {min: 1, max: 1, pure: true, fn: str1(func(s string) string { return strings.TrimRight(s, " \t") })},
		"trim":        {min: 1, max: 1, pure: true, fn: str1(javaTrim)},
		"lpad":        {min: 2, max: 2, pure: true, fn: padFn(true)},
		"rpad":        {min: 2, max: 2, pure: true, fn: padFn(false)},
		"replace":     {min: 3, max: 3, pure: true, fn: fnReplace},
		"substring":   {min: 2, max: 3, pure: true, fn: fnSubstring},
		"get":         {min: 2, max: 2, pure: true, fn: func(_ *Ctx, a []Value) Value { return getValue(a[0], a[1]) }},
		"isnull":      {min: 1, max: 1, pure: true, fn: func(_ *Ctx, a []Value) Value { return boolV(a[0].k == Null) }},
		"isundefined": {min: 1, max: 1, pure: true, fn: func(_ *Ctx, a []Value) Value { return boolV(a[0].k == Undefined) }},
		"get_or_default": {min: 2, max: 2, pure: true, fn: func(_ *Ctx, a []Value) Value {
			if a[0].k == Undefined || a[0].k == Null {
				return a[1]
			}
			return a[0]
		}},
		"transform": {min: 3, max: 3, pure: true, fn: fnTransform},

		"regexp_matches": {min: 2, max: 2, pure: true, fn: fnRegexpMatches, check: checkRegexArg},
		"regexp_replace": {min: 3, max: 3, pure: true, fn: fnRegexpReplace, check: checkRegexArg},
		"regexp_substr":  {min: 2, max: 2, pure: true, fn: fnRegexpSubstr, check: checkRegexArg},

		"encode": {min: 2, max: 2, pure: true, fn: fnEncode, check: checkScheme},
		"decode": {min: 2, max: 6, pure: true, fn: fnDecode, check: checkScheme},
		"md2":    hashFn(md2.New),
		"md5":    hashFn(md5.New),
		"sha1":   hashFn(sha1.New),
		"sha224": hashFn(sha256.New224),
		"sha256": hashFn(sha256.New),
		"sha384": hashFn(sha512.New384),
		"sha512": hashFn(sha512.New),

		"parse_time":    {min: 2, max: 3, pure: true, fn: fnParseTime, check: checkTimePattern(0, true)},
		"time_to_epoch": {min: 2, max: 2, pure: true, fn: fnTimeToEpoch, check: checkTimePattern(1, false)},

		"topic":               {min: 0, max: 1, fn: fnTopic},
		"clientid":            {fn: fnClientID},
		"principal":           {fn: func(c *Ctx, _ []Value) Value { return optStr(c.m.Principal) }},
		"sourceip":            {fn: func(c *Ctx, _ []Value) Value { return optStr(c.m.SourceIP) }},
		"traceid":             {fn: func(c *Ctx, _ []Value) Value { return optStr(c.m.TraceID) }},
		"timestamp":           {fn: func(c *Ctx, _ []Value) Value { return intV(c.now().UnixMilli()) }},
		"sql_version":         {pure: true, fn: func(*Ctx, []Value) Value { return strV(Version) }},
		"newuuid":             {fn: fnNewUUID},
		"rand":                {fn: func(*Ctx, []Value) Value { return Value{k: Decimal, f: mrand.Float64()} }},
		"get_mqtt_property":   {min: 1, max: 1, fn: fnMQTTProperty},
		"get_user_properties": {min: 0, max: 1, fn: fnUserProperties},

		"aws_lambda":              {cloud: "it calls an AWS Lambda function"},
		"get_dynamodb":            {cloud: "it reads an Amazon DynamoDB table"},
		"get_secret":              {cloud: "it reads AWS Secrets Manager"},
		"get_thing_shadow":        {cloud: "it reads a shadow from the AWS IoT Device Shadow service"},
		"get_registry_data":       {cloud: "it reads the AWS IoT thing registry in the cloud"},
		"machinelearning_predict": {cloud: "it calls Amazon Machine Learning"},
		"accountid":               {cloud: "it returns the AWS account that owns the rule, and an edge rule has none"},
	}
}

func compileCall(name token, lname string, args []*expr) (*expr, error) {
	spec, ok := funcs[lname]
	if !ok {
		return nil, &SQLError{Pos: name.Pos, Err: ErrUnknownFunction,
			Msg: fmt.Sprintf("unknown function %s(): AWS IoT SQL (2016-03-23) has no such function; see the Functions page of the AWS IoT SQL reference", name.Text)}
	}
	if spec.cloud != "" {
		return nil, &SQLError{Pos: name.Pos, Err: ErrCloudFunction,
			Msg: fmt.Sprintf("function %s() is not available at the edge: %s, which the gateway cannot reach offline; do this in an AWS IoT Core rule after the message is forwarded", name.Text, spec.cloud)}
	}
	if len(args) < spec.min || (spec.max >= 0 && len(args) > spec.max) {
		want := strconv.Itoa(spec.min)
		switch {
		case spec.max < 0:
			want = "at least " + want
		case spec.max != spec.min:
			want = fmt.Sprintf("%d to %d", spec.min, spec.max)
		}
		return nil, errAt(name.Pos, "%s() takes %s arguments, found %d", name.Text, want, len(args))
	}
	if spec.check != nil {
		if err := spec.check(name, args); err != nil {
			return nil, err
		}
	}
	fns := make([]EvalFn, len(args))
	allConst := true
	for i, a := range args {
		fns[i] = a.eval
		allConst = allConst && a.konst
	}
	fn := spec.fn
	// encode(*, ...) encodes the raw payload, JSON or not.
	if lname == "encode" && args[0].star {
		sf := args[1].eval
		return &expr{pos: name.Pos, eval: func(c *Ctx) Value {
			return encodeBytes(c.rawStar(), sf(c))
		}}, nil
	}
	if spec.pure && allConst {
		vals := make([]Value, len(args))
		for i, a := range args {
			vals[i] = a.val
		}
		return constExpr(name.Pos, fn(nil, vals)), nil
	}
	switch len(fns) {
	case 0:
		return &expr{pos: name.Pos, eval: func(c *Ctx) Value { return fn(c, nil) }}, nil
	case 1:
		f0 := fns[0]
		return &expr{pos: name.Pos, eval: func(c *Ctx) Value {
			base := len(c.stack)
			c.stack = append(c.stack, f0(c))
			v := fn(c, c.stack[base:])
			c.stack = c.stack[:base]
			return v
		}}, nil
	}
	return &expr{pos: name.Pos, eval: func(c *Ctx) Value {
		base := len(c.stack)
		for _, f := range fns {
			v := f(c)
			c.stack = append(c.stack, v)
		}
		v := fn(c, c.stack[base:])
		c.stack = c.stack[:base]
		return v
	}}, nil
}

func optStr(s string) Value {
	if s == "" {
		return undef
	}
	return strV(s)
}

// --- math ---

func math1(f func(float64) float64) *funcSpec {
	return &funcSpec{min: 1, max: 1, pure: true, fn: func(_ *Ctx, a []Value) Value {
		x, ok := floatArg(a[0])
		if !ok {
			return undef
		}
		r := f(x)
		if math.IsNaN(r) || math.IsInf(r, 0) {
			return undef // "Imaginary results are returned as Undefined"
		}
		return decV(r)
	}}
}

func fnAbs(_ *Ctx, a []Value) Value {
	n, ok := numberArg(a[0])
	if !ok {
		return undef
	}
	if n.k == Int {
		if n.i < 0 {
			return opNeg(n)
		}
		return n
	}
	return decV(math.Abs(n.f))
}

func fnAtan2(_ *Ctx, a []Value) Value {
	y, ok1 := floatArg(a[0])
	x, ok2 := floatArg(a[1])
	if !ok1 || !ok2 {
		return undef
	}
	return decV(math.Atan2(y, x))
}

func fnPower(_ *Ctx, a []Value) Value {
	x, ok1 := floatArg(a[0])
	y, ok2 := floatArg(a[1])
	if !ok1 || !ok2 {
		return undef
	}
	r := math.Pow(x, y)
	if math.IsNaN(r) || math.IsInf(r, 0) {
		return undef
	}
	return decV(r)
}

func roundFn(f func(float64) float64) func(*Ctx, []Value) Value {
	return func(_ *Ctx, a []Value) Value {
		n, ok := numberArg(a[0])
		if !ok {
			return undef
		}
		if n.k == Int {
			return n
		}
		r := f(n.f)
		if r < -9.2e18 || r > 9.2e18 {
			return Value{k: Decimal, f: r}
		}
		return intV(int64(r))
	}
}

func fnSign(_ *Ctx, a []Value) Value {
	n, ok := numberArg(a[0])
	if !ok {
		return undef
	}
	x := n.num()
	switch {
	case x > 0:
		return intV(1)
	case x < 0:
		return intV(-1)
	}
	return intV(0)
}

// fnTrunc cuts the decimal digits of the first argument after the number of
// places given by the second (clamped to 0..34); trailing zeros go.
func fnTrunc(_ *Ctx, a []Value) Value {
	n, ok := numberArg(a[0])
	if !ok {
		return undef
	}
	if a[1].k != Int && a[1].k != Decimal {
		return undef
	}
	places, _ := intFloor(a[1])
	if n.k == Int {
		return n
	}
	places = max(0, min(places, 34))
	s := strconv.FormatFloat(n.f, 'f', -1, 64)
	if dot := strings.IndexByte(s, '.'); dot >= 0 {
		end := dot + 1 + int(places)
		if places == 0 {
			end = dot
		}
		if end < len(s) {
			s = s[:end]
		}
	}
	v, ok := parseDecimalString(strings.TrimSuffix(s, "."))
	if !ok {
		return undef
	}
	return v
}

func bit2(f func(x, y int64) int64) *funcSpec {
	return &funcSpec{min: 2, max: 2, pure: true, fn: func(_ *Ctx, a []Value) Value {
		x, ok1 := intFloor(a[0])
		y, ok2 := intFloor(a[1])
		if !ok1 || !ok2 {
			return undef
		}
		return intV(f(x, y))
	}}
}

func fnBitnot(_ *Ctx, a []Value) Value {
	x, ok := intFloor(a[0])
	if !ok {
		return undef
	}
	return intV(^x)
}

func fnNanvl(_ *Ctx, a []Value) Value {
	switch {
	case a[0].k == Undefined, a[0].k == Null, a[0].k == Decimal && math.IsNaN(a[0].f):
		return a[1]
	}
	return a[0]
}

// --- strings ---

// strArg converts to a string by the standard rules; Null and Undefined fail.
func strArg(v Value) (string, bool) { return toString(v) }

func str1(f func(string) string) func(*Ctx, []Value) Value {
	return func(_ *Ctx, a []Value) Value {
		s, ok := strArg(a[0])
		if !ok {
			return undef
		}
		return strV(f(s))
	}
}

func str2(f func(s, t string) bool) func(*Ctx, []Value) Value {
	return func(_ *Ctx, a []Value) Value {
		s, ok1 := strArg(a[0])
		t, ok2 := strArg(a[1])
		if !ok1 || !ok2 {
			return undef
		}
		return boolV(f(s, t))
	}
}

// javaTrim removes leading and trailing characters up to U+0020, as Java's
// String.trim does (spaces, tabs, newlines and other control characters).
func javaTrim(s string) string {
	return strings.TrimFunc(s, func(r rune) bool { return r <= ' ' })
}

func fnChr(_ *Ctx, a []Value) Value {
	n, ok := intFloor(a[0])
	if !ok || n < 0 || n > 127 {
		return undef
	}
	return strV(string(rune(n)))
}

// fnConcat: no arguments is Undefined, one is returned as it is; with any
// Array the result is one array of all arguments (arrays spliced in); else,
// with any String, the concatenation of every argument as a string.
func fnConcat(_ *Ctx, a []Value) Value {
	switch len(a) {
	case 0:
		return undef
	case 1:
		return a[0]
	}
	anyArray, anyString := false, false
	for _, v := range a {
		anyArray = anyArray || v.k == Array
		anyString = anyString || v.k == String
	}
	if anyArray {
		var out []Value
		for _, v := range a {
			if v.k == Array {
				out = append(out, v.c.vals...)
			} else {
				out = append(out, v)
			}
		}
		return arrV(out)
	}
	if !anyString {
		return undef
	}
	var sb strings.Builder
	for _, v := range a {
		s, ok := toString(v)
		if !ok {
			return undef
		}
		sb.WriteString(s)
	}
	return strV(sb.String())
}

func fnIndexof(_ *Ctx, a []Value) Value {
	s, ok1 := strArg(a[0])
	t, ok2 := strArg(a[1])
	if !ok1 || !ok2 {
		return undef
	}
	i := strings.Index(s, t)
	if i < 0 {
		return intV(-1)
	}
	return intV(int64(utf8.RuneCountInString(s[:i])))
}

func fnLength(_ *Ctx, a []Value) Value {
	s, ok := strArg(a[0])
	if !ok {
		return undef
	}
	return intV(int64(utf8.RuneCountInString(s)))
}

func fnNumbytes(_ *Ctx, a []Value) Value {
	s, ok := strArg(a[0])
	if !ok {
		return undef
	}
	return intV(int64(len(s)))
}

func padFn(left bool) func(*Ctx, []Value) Value {
	return func(_ *Ctx, a []Value) Value {
		s, ok := strArg(a[0])
		if !ok || !(a[1].isNum() || a[1].k == String) {
			return undef
		}
		n, ok := intFloor(a[1])
		if !ok {
			return undef
		}
		n = max(0, min(n, 1000))
		pad := strings.Repeat(" ", int(n))
		if left {
			return strV(pad + s)
		}
		return strV(s + pad)
	}
}

func fnReplace(_ *Ctx, a []Value) Value {
	s, ok1 := strArg(a[0])
	old, ok2 := strArg(a[1])
	nw, ok3 := strArg(a[2])
	if !ok1 || !ok2 || !ok3 {
		return undef
	}
	return strV(strings.ReplaceAll(s, old, nw))
}

func fnSubstring(_ *Ctx, a []Value) Value {
	s, ok := strArg(a[0])
	if !ok {
		return undef
	}
	r := []rune(s)
	n := int64(len(r))
	from, ok := intFloor(a[1])
	if !ok {
		return undef
	}
	from = max(0, min(from, n))
	to := n
	if len(a) == 3 {
		t, ok := intFloor(a[2])
		if !ok {
			return undef
		}
		to = max(0, min(t, n))
		if from >= to {
			return strV("")
		}
	}
	return strV(string(r[from:to]))
}

// fnTransform implements the one documented mode, enrichArray: every object of
// the array gets the members of the object added.
func fnTransform(_ *Ctx, a []Value) Value {
	if a[0].k != String || a[0].s != "enrichArray" || a[1].k != Object || a[2].k != Array {
		return undef
	}
	out := make([]Value, 0, len(a[2].c.vals))
	for _, e := range a[2].c.vals {
		if e.k != Object {
			continue
		}
		o := &composite{keys: append([]string(nil), e.c.keys...), vals: append([]Value(nil), e.c.vals...)}
		for i, k := range a[1].c.keys {
			o.set(k, a[1].c.vals[i])
		}
		out = append(out, Value{k: Object, c: o})
	}
	return arrV(out)
}

// --- regular expressions ---

// AWS evaluates regular expressions with Java's engine; the gateway uses Go's
// RE2. A literal pattern RE2 cannot compile (back-references, look-around,
// possessive quantifiers) is refused at compile time instead of becoming
// Undefined for every message.
func checkRegexArg(name token, args []*expr) error {
	pat := args[1]
	if !pat.konst {
		return nil
	}
	s, ok := toString(pat.val)
	if !ok {
		return nil
	}
	if _, err := regexp.Compile(s); err != nil {
		return errAt(pat.pos, "%s(): the regular expression %q does not compile here (%v); the gateway uses Go's RE2 syntax, which has no back-references or look-around", name.Text, s, err)
	}
	return nil
}

func regexArgs(a []Value) (string, *regexp.Regexp, bool) {
	s, ok1 := strArg(a[0])
	p, ok2 := strArg(a[1])
	if !ok1 || !ok2 {
		return "", nil, false
	}
	re, err := cachedRegexp(p)
	if err != nil {
		return "", nil, false
	}
	return s, re, true
}

func fnRegexpMatches(_ *Ctx, a []Value) Value {
	s, re, ok := regexArgs(a)
	if !ok {
		return undef
	}
	return boolV(re.MatchString(s))
}

func fnRegexpSubstr(_ *Ctx, a []Value) Value {
	s, re, ok := regexArgs(a)
	if !ok {
		return undef
	}
	loc := re.FindStringIndex(s)
	if loc == nil {
		return strV("")
	}
	return strV(s[loc[0]:loc[1]])
}

func fnRegexpReplace(_ *Ctx, a []Value) Value {
	s, re, ok := regexArgs(a)
	if !ok {
		return undef
	}
	repl, ok := strArg(a[2])
	if !ok {
		return undef
	}
	goRepl, ok := javaReplacement(repl)
	if !ok {
		return undef
	}
	return strV(re.ReplaceAllString(s, goRepl))
}

// javaReplacement turns a Java replacement string ($1, \$ for a literal $)
// into Go's template syntax (${1}, $$).
func javaReplacement(r string) (string, bool) {
	var sb strings.Builder
	for i := 0; i < len(r); i++ {
		c := r[i]
		switch {
		case c == '\\':
			if i+1 >= len(r) {
				return "", false
			}
			i++
			if r[i] == '$' {
				sb.WriteString("$$")
			} else {
				sb.WriteByte(r[i])
			}
		case c == '$':
			j := i + 1
			for j < len(r) && r[j] >= '0' && r[j] <= '9' {
				j++
			}
			if j == i+1 {
				return "", false // Java: "Illegal group reference"
			}
			sb.WriteString("${" + r[i+1:j] + "}")
			i = j - 1
		default:
			sb.WriteByte(c)
		}
	}
	return sb.String(), true
}

// --- encoding and hashes ---

func checkScheme(name token, args []*expr) error {
	s := args[1]
	if !s.konst || s.val.k != String {
		return errAt(s.pos, "%s(): the scheme must be a literal string; the gateway supports 'base64'", name.Text)
	}
	switch s.val.s {
	case "base64":
		if len(args) != 2 {
			return errAt(name.Pos, "%s(value, 'base64') takes 2 arguments, found %d", name.Text, len(args))
		}
		return nil
	case "proto":
		return &SQLError{Pos: s.pos, Err: ErrCloudFunction, Msg: fmt.Sprintf("%s(..., 'proto', ...) is not available at the edge: it reads the Protobuf descriptor from Amazon S3; decode Protobuf in an AWS IoT Core rule after forwarding", name.Text)}
	}
	return errAt(s.pos, "%s(): unknown scheme %q; the gateway supports 'base64'", name.Text, s.val.s)
}

func encodeBytes(b string, scheme Value) Value {
	if scheme.k != String || scheme.s != "base64" {
		return undef
	}
	return strV(base64.StdEncoding.EncodeToString([]byte(b)))
}

func fnEncode(_ *Ctx, a []Value) Value {
	s, ok := toString(a[0])
	if !ok {
		return undef
	}
	return encodeBytes(s, a[1])
}

// fnDecode decodes base64; a decoded JSON document becomes an addressable
// value, anything else a String; undecodable input is Null.
func fnDecode(_ *Ctx, a []Value) Value {
	if a[1].k != String || a[1].s != "base64" {
		return undef
	}
	s, ok := toString(a[0])
	if !ok {
		return undef
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nullValue
	}
	if jsonscan.Valid(b) {
		return parseJSON(b)
	}
	return strV(string(b))
}

func hashFn(newHash func() hash.Hash) *funcSpec {
	return &funcSpec{min: 1, max: 1, pure: true, fn: func(_ *Ctx, a []Value) Value {
		s, ok := toString(a[0])
		if !ok {
			return undef
		}
		h := newHash()
		h.Write([]byte(s))
		return strV(hex.EncodeToString(h.Sum(nil)))
	}}
}

// --- message functions ---

// fnTopic returns the whole topic, or its n-th level counted from 1.
func fnTopic(c *Ctx, a []Value) Value {
	t := c.m.Topic
	if len(a) == 0 {
		return strV(t)
	}
	n, ok := intFloor(a[0])
	if !ok || n < 1 {
		return undef
	}
	for i := int64(1); ; i++ {
		j := strings.IndexByte(t, '/')
		if i == n {
			if j < 0 {
				return strV(t)
			}
			return strV(t[:j])
		}
		if j < 0 {
			return undef
		}
		t = t[j+1:]
	}
}

func fnClientID(c *Ctx, _ []Value) Value {
	if c.m.ClientID == "" {
		return strV("n/a") // "or n/a if the message wasn't sent over MQTT"
	}
	return strV(c.m.ClientID)
}

func fnNewUUID(*Ctx, []Value) Value {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return strV(h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:])
}

// fnMQTTProperty reads one MQTT 5 PUBLISH property by the names AWS uses:
// content_type, format_indicator, response_topic, correlation_data (base64).
func fnMQTTProperty(c *Ctx, a []Value) Value {
	if a[0].k != String || !c.m.MQTT5 {
		return undef
	}
	switch a[0].s {
	case "content_type":
		return optStr(c.m.ContentType)
	case "format_indicator":
		if c.m.PayloadUTF8 {
			return strV("UTF8_DATA")
		}
		return strV("UNSPECIFIED_BYTES")
	case "response_topic":
		return optStr(c.m.ResponseTopic)
	case "correlation_data":
		if c.m.CorrelationData == nil {
			return undef
		}
		return strV(base64.StdEncoding.EncodeToString(c.m.CorrelationData))
	}
	return undef
}

// fnUserProperties returns the values of one user property as an Array (MQTT 5
// allows a key more than once), or with no key every property as an Array of
// one-member objects, in the order they were sent.
func fnUserProperties(c *Ctx, a []Value) Value {
	props := c.m.UserProperties
	if len(a) == 0 {
		if len(props) == 0 {
			return undef
		}
		out := make([]Value, len(props))
		for i, p := range props {
			out[i] = Value{k: Object, c: &composite{keys: []string{p.Key}, vals: []Value{strV(p.Value)}}}
		}
		return arrV(out)
	}
	key, ok := toString(a[0])
	if !ok {
		return undef
	}
	var out []Value
	for _, p := range props {
		if p.Key == key {
			out = append(out, strV(p.Value))
		}
	}
	if out == nil {
		return undef
	}
	return arrV(out)
}
