package sql

// What the rules engine (gateway/rules) uses of the language: a compiled
// statement and its FROM filter, the evaluation context of one message,
// the ${...} expressions of substitution templates, and the few values it
// builds itself (the error action's message).

// Compile parses and compiles one statement (a rule's SQL); the error is a
// *SQLError with the line:column in the statement.
func Compile(src string) (*Statement, error) { return compileSQL(src) }

// Match reports whether topic matches the statement's FROM filter.
func (st *Statement) Match(topic string) bool { return st.filter.match(topic) }

// Filter is the statement's FROM filter as written.
func (st *Statement) Filter() string { return st.filter.raw }

// Vars are the slots of the statement's SET variables (nil without SET),
// for the templates that may use them.
func (st *Statement) Vars() map[string]int { return st.vars }

// Run evaluates the statement on c's message: the output payload, and
// whether the message matched (WHERE).
func (st *Statement) Run(c *Ctx) (out []byte, matched bool, err error) { return st.run(c) }

// SetVars evaluates only the SET variables, for an error action's template.
func (st *Statement) SetVars(c *Ctx) { st.setVars(c) }

// NewCtx takes an evaluation context for m from the pool; Release returns it.
func NewCtx(m *Message) *Ctx { return newCtx(m) }

// Release returns c to the pool; c must not be used after.
func (c *Ctx) Release() { c.release() }

// Message is the message c evaluates.
func (c *Ctx) Message() *Message { return c.m }

// CompileTemplateExpr compiles the expression inside a template's ${...}.
// vars are the statement's SET variables; lenient accepts any variable (a
// template checked before its statement compiled).
func CompileTemplateExpr(src string, vars map[string]int, lenient bool) (EvalFn, error) {
	e, err := compileTemplateExpr(src, vars, lenient)
	if err != nil {
		return nil, err
	}
	return e.eval, nil
}

// ValidTopicName reports whether t can be published to: not empty, no
// wildcard (+ #) and no NUL.
func ValidTopicName(t string) bool { return validTopicName(t) }

// StringValue is the String s.
func StringValue(s string) Value { return strV(s) }

// OptString is the String s, or Undefined when s is empty.
func OptString(s string) Value { return optStr(s) }

// ArrayValue is the Array of vs.
func ArrayValue(vs []Value) Value { return arrV(vs) }

// ObjectValue is the Object of key, value pairs (string, Value), in order;
// a repeated key replaces the earlier value.
func ObjectValue(kv ...any) Value {
	o := &composite{}
	for i := 0; i < len(kv); i += 2 {
		o.set(kv[i].(string), kv[i+1].(Value))
	}
	return Value{k: Object, c: o}
}

// ToString converts v as AWS IoT SQL converts a value to a String (an
// Array or Object to its JSON); false for Undefined and Null.
func ToString(v Value) (string, bool) { return toString(v) }

// AppendJSON appends v as JSON to b.
func AppendJSON(b []byte, v Value) []byte { return appendJSON(b, v) }
