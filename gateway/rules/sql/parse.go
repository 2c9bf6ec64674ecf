package sql

import (
	"strings"

	"github.com/edgegw/edgegw/gateway/internal/jsonq"
)

// The parser compiles as it parses: every expression becomes a closure over
// its operands (an EvalFn), so evaluating a rule walks no syntax tree and
// looks nothing up by name. Constant sub-expressions are evaluated once here.

type EvalFn func(c *Ctx) Value

type expr struct {
	pos   Pos
	eval  EvalFn
	konst bool     // eval always returns val
	val   Value    // the constant value
	path  []string // a plain field path (a, a.b.c), read straight from the payload
	name  string   // the output key when the expression has no AS
	star  bool     // `*`
}

func constExpr(p Pos, v Value) *expr {
	return &expr{pos: p, konst: true, val: v, eval: func(*Ctx) Value { return v }}
}

type parser struct {
	toks  []token
	i     int
	depth int
	// vars are the SET variables in scope, by name, with their slot in
	// Ctx.vars; lenient accepts any variable (a template of a rule whose
	// SQL did not compile, so as not to report the same problem twice).
	vars    map[string]int
	lenient bool
}

const maxNesting = 64

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) peekN(n int) token {
	if p.i+n < len(p.toks) {
		return p.toks[p.i+n]
	}
	return p.toks[len(p.toks)-1]
}

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.Kind != tEOF {
		p.i++
	}
	return t
}

func (p *parser) expectPunct(s, what string) (token, error) {
	t := p.next()
	if !t.Is(s) {
		return t, errAt(t.Pos, "expected '%s' %s, found %s", s, what, t.Describe())
	}
	return t, nil
}

func (p *parser) expectKw(k, what string) error {
	t := p.next()
	if !t.Kw(k) {
		return errAt(t.Pos, "expected %s %s, found %s", strings.ToUpper(k), what, t.Describe())
	}
	return nil
}

// reserved words cannot be field names or aliases.
var reserved = map[string]bool{
	"select": true, "from": true, "where": true, "as": true, "and": true, "or": true, "not": true,
	"case": true, "when": true, "then": true, "else": true, "end": true, "true": true, "false": true,
	"null": true,
}

func isReserved(t token) bool { return t.Kind == tIdent && reserved[strings.ToLower(t.Text)] }

// Statement is one compiled SELECT: the top-level rule query or a nested one.
type Statement struct {
	pos     Pos
	sets    []EvalFn       // SET @a = ..., @b = ...: evaluated in order, before WHERE
	vars    map[string]int // the variables' slots
	value   bool           // SELECT VALUE
	items   []selItem
	hasStar bool
	filter  *topicFilter // FROM of the top-level statement
	from    *expr        // FROM of a nested statement
	where   *expr
}

type selItem struct {
	star bool
	e    *expr
	name string
	key  []byte // `"name":`, ready to append
}

func (p *parser) parseStatement(nested bool) (*Statement, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxNesting {
		return nil, errAt(p.peek().Pos, "statement nests deeper than %d levels", maxNesting)
	}
	var sets []EvalFn
	if !nested && p.peek().Kw("set") {
		var err error
		if sets, err = p.parseSet(); err != nil {
			return nil, err
		}
	}
	t := p.next()
	if !t.Kw("select") {
		if t.Kw("set") {
			return nil, errAt(t.Pos, "SET is allowed once, before the top-level SELECT")
		}
		return nil, errAt(t.Pos, "expected SELECT, found %s: a rule is `[SET @v = ...] SELECT ... FROM 'topic/filter' [WHERE ...]`", t.Describe())
	}
	st := &Statement{pos: t.Pos, sets: sets, vars: p.vars}
	if err := p.parseSelectList(st); err != nil {
		return nil, err
	}
	if err := p.parseFrom(st, nested); err != nil {
		return nil, err
	}
	if p.peek().Kw("where") {
		p.next()
		e, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		st.where = e
	}
	return st, nil
}

// parseSelectList reads [VALUE] item, item... into st: SELECT VALUE takes
// one expression, and no two items may have the same output key.
func (p *parser) parseSelectList(st *Statement) error {
	if p.peek().Kw("value") && !p.peekN(1).Kw("from") && !p.peekN(1).Is(",") && !p.peekN(1).Kw("as") {
		p.next()
		st.value = true
	}
	for {
		it, err := p.parseSelectItem(st.value)
		if err != nil {
			return err
		}
		if it.star {
			st.hasStar = true
		}
		st.items = append(st.items, it)
		if !p.peek().Is(",") {
			break
		}
		p.next()
	}
	if st.value && len(st.items) != 1 {
		return errAt(st.pos, "SELECT VALUE takes exactly one expression, found %d", len(st.items))
	}
	seen := map[string]bool{}
	for _, it := range st.items {
		if it.star || st.value {
			continue
		}
		if seen[it.name] {
			return errAt(it.e.pos, "the output key %q appears twice: give one of them another name with AS", it.name)
		}
		seen[it.name] = true
	}
	return nil
}

// parseFrom reads FROM: a topic filter in quotes for the top-level
// statement, an expression (an array field) for a nested one.
func (p *parser) parseFrom(st *Statement, nested bool) error {
	ft := p.next()
	if !ft.Kw("from") {
		return errAt(ft.Pos, "expected FROM or ',' after the SELECT list, found %s", ft.Describe())
	}
	if nested {
		e, err := p.parseExpr()
		if err != nil {
			return err
		}
		st.from = e
	} else {
		tt := p.next()
		if tt.Kind != tString {
			return errAt(tt.Pos, "FROM takes a topic filter in single quotes, like FROM 'building/+/temp'; found %s", tt.Describe())
		}
		f, err := parseTopicFilter(tt.Text)
		if err != nil {
			return errAt(tt.Pos, "FROM topic filter %q: %v", tt.Text, err)
		}
		st.filter = f
	}
	return nil
}

// parseSet reads SET @a = expr [, @b = expr]: each variable once, usable by
// the ones after it, by SELECT, WHERE, nested SELECTs and action templates.
func (p *parser) parseSet() ([]EvalFn, error) {
	p.next() // SET
	p.vars = map[string]int{}
	var sets []EvalFn
	for {
		vt := p.next()
		if vt.Kind != tVar {
			return nil, errAt(vt.Pos, "expected a variable like @name after SET, found %s", vt.Describe())
		}
		if _, dup := p.vars[vt.Text]; dup {
			return nil, errAt(vt.Pos, "@%s is set twice: variables are assigned once", vt.Text)
		}
		if _, err := p.expectPunct("=", "after the variable"); err != nil {
			return nil, err
		}
		e, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		p.vars[vt.Text] = len(sets)
		sets = append(sets, e.eval)
		if !p.peek().Is(",") {
			return sets, nil
		}
		p.next()
	}
}

func (p *parser) parseSelectItem(value bool) (selItem, error) {
	t := p.peek()
	if t.Is("*") && (p.peekN(1).Is(",") || p.peekN(1).Kw("from")) {
		p.next()
		if value {
			return selItem{star: true, e: starExpr(t.Pos)}, nil
		}
		return selItem{star: true}, nil
	}
	e, err := p.parseExpr()
	if err != nil {
		return selItem{}, err
	}
	it := selItem{e: e, name: e.name}
	if p.peek().Kw("as") {
		p.next()
		nt := p.next()
		if nt.Kind == tString {
			it.name = nt.Text
		} else if nt.Kind == tIdent && !isReserved(nt) {
			it.name = nt.Text
		} else {
			return selItem{}, errAt(nt.Pos, "expected a name after AS, found %s", nt.Describe())
		}
		if p.peek().Is(".") {
			return selItem{}, errAt(p.peek().Pos, "AS takes one name, not a path: write AS %s_%s or build the object with {'%s': ...}", it.name, p.peekN(1).Text, it.name)
		}
	} else if !value && it.name == "" {
		return selItem{}, errAt(e.pos, "this expression has no output name: add AS name after it")
	}
	it.key = jsonq.AppendQuoted(nil, it.name)
	it.key = append(it.key, ':')
	return it, nil
}

// Expression grammar, lowest precedence first:
//
//	expr    = and { OR and }
//	and     = not { AND not }
//	not     = NOT not | cmp
//	cmp     = sum [ (= | <> | < | <= | > | >=) sum ]
//	sum     = product { (+ | -) product }
//	product = unary { (* | / | %) unary }
//	unary   = - unary | postfix
//	postfix = primary { . name | [ expr ] }
func (p *parser) parseExpr() (*expr, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxNesting {
		return nil, errAt(p.peek().Pos, "expression nests deeper than %d levels", maxNesting)
	}
	return p.parseLevel(p.parseAnd, keywordOp("or", opOr))
}

func (p *parser) parseAnd() (*expr, error) {
	return p.parseLevel(p.parseNot, keywordOp("and", opAnd))
}

// binaryOp is a binary operator's evaluation (opAdd, opAnd, ...).
type binaryOp = func(a, b Value) Value

// parseLevel parses one left-associative level of the grammar,
// operand { OP operand }: opOf returns the operator the token is at this
// level, or nil when it is none.
func (p *parser) parseLevel(operand func() (*expr, error), opOf func(token) binaryOp) (*expr, error) {
	l, err := operand()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		op := opOf(t)
		if op == nil {
			return l, nil
		}
		p.next()
		r, err := operand()
		if err != nil {
			return nil, err
		}
		l = binary(t.Pos, l, r, op)
	}
}

// keywordOp: the keyword k (any case) is op.
func keywordOp(k string, op binaryOp) func(token) binaryOp {
	return func(t token) binaryOp {
		if t.Kw(k) {
			return op
		}
		return nil
	}
}

// punctOp: the punctuation tokens of ops.
func punctOp(ops map[string]binaryOp) func(token) binaryOp {
	return func(t token) binaryOp {
		if t.Kind == tPunct {
			return ops[t.Text]
		}
		return nil
	}
}

func (p *parser) parseNot() (*expr, error) {
	if p.peek().Kw("not") {
		t := p.next()
		p.depth++
		defer func() { p.depth-- }()
		if p.depth > maxNesting {
			return nil, errAt(t.Pos, "expression nests deeper than %d levels", maxNesting)
		}
		e, err := p.parseNot()
		if err != nil {
			return nil, err
		}
		return unary(t.Pos, e, opNot), nil
	}
	return p.parseCmp()
}

var cmpOps = map[string]func(a, b Value) Value{
	"=": opEq, "<>": opNe, "<": opLt, "<=": opLe, ">": opGt, ">=": opGe,
}

func (p *parser) parseCmp() (*expr, error) {
	l, err := p.parseSum()
	if err != nil {
		return nil, err
	}
	t := p.peek()
	if t.Kind == tPunct {
		if op, ok := cmpOps[t.Text]; ok {
			p.next()
			r, err := p.parseSum()
			if err != nil {
				return nil, err
			}
			return binary(t.Pos, l, r, op), nil
		}
	}
	return l, nil
}

var (
	sumOps     = map[string]binaryOp{"+": opAdd, "-": opSub}
	productOps = map[string]binaryOp{"*": opMul, "/": opDiv, "%": opMod}
)

func (p *parser) parseSum() (*expr, error) {
	return p.parseLevel(p.parseProduct, punctOp(sumOps))
}

func (p *parser) parseProduct() (*expr, error) {
	return p.parseLevel(p.parseUnary, punctOp(productOps))
}

func (p *parser) parseUnary() (*expr, error) {
	if t := p.peek(); t.Is("-") {
		p.next()
		p.depth++
		defer func() { p.depth-- }()
		if p.depth > maxNesting {
			return nil, errAt(t.Pos, "expression nests deeper than %d levels", maxNesting)
		}
		e, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		return unary(t.Pos, e, opNeg), nil
	}
	return p.parsePostfix()
}

func (p *parser) parsePostfix() (*expr, error) {
	e, err := p.parsePrimary()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		switch {
		case t.Is("."):
			p.next()
			nt := p.next()
			if nt.Kind != tIdent {
				return nil, errAt(nt.Pos, "expected a field name after '.', found %s; for keys that are numbers or contain '-', use get(obj, \"key\")", nt.Describe())
			}
			e = member(t.Pos, e, nt.Text)
		case t.Is("["):
			p.next()
			ix, err := p.parseExpr()
			if err != nil {
				return nil, err
			}
			if _, err := p.expectPunct("]", "to close the index"); err != nil {
				return nil, err
			}
			e = indexExpr(t.Pos, e, ix)
		default:
			return e, nil
		}
	}
}

func (p *parser) parsePrimary() (*expr, error) {
	t := p.next()
	switch t.Kind {
	case tVar:
		slot, ok := p.vars[t.Text]
		if !ok {
			if p.lenient {
				return constExpr(t.Pos, undef), nil
			}
			return nil, errAt(t.Pos, "@%s is not set: define it with SET @%s = ... before SELECT (a variable is usable after its SET)", t.Text, t.Text)
		}
		return &expr{pos: t.Pos, name: t.Text, eval: func(c *Ctx) Value { return c.vars[slot] }}, nil
	case tNumber:
		v, ok := parseDecimalString(t.Text)
		if !ok {
			return nil, errAt(t.Pos, "bad number %q", t.Text)
		}
		return constExpr(t.Pos, v), nil
	case tString:
		return constExpr(t.Pos, strV(t.Text)), nil
	case tEOF:
		return nil, errAt(t.Pos, "the statement ends where an expression should be")
	case tIdent:
		switch strings.ToLower(t.Text) {
		case "true":
			return constExpr(t.Pos, trueValue), nil
		case "false":
			return constExpr(t.Pos, falseVal), nil
		case "null":
			return constExpr(t.Pos, nullValue), nil
		case "case":
			return p.parseCase(t)
		}
		if p.peek().Is("(") {
			return p.parseCall(t)
		}
		if isReserved(t) {
			return nil, errAt(t.Pos, "unexpected keyword %s where an expression should be", strings.ToUpper(t.Text))
		}
		return fieldExpr(t.Pos, t.Text), nil
	}
	switch t.Text {
	case "(":
		if p.peek().Kw("select") {
			st, err := p.parseStatement(true)
			if err != nil {
				return nil, err
			}
			if _, err := p.expectPunct(")", "to close the nested SELECT"); err != nil {
				return nil, err
			}
			return &expr{pos: t.Pos, eval: st.nestedEval}, nil
		}
		e, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		if _, err := p.expectPunct(")", "to close '('"); err != nil {
			return nil, err
		}
		// A parenthesized path is no longer a bare name: (a.b) has no output key.
		return &expr{pos: e.pos, eval: e.eval, konst: e.konst, val: e.val, path: e.path}, nil
	case "{":
		return p.parseObject(t)
	case "[":
		return p.parseArray(t)
	case "*":
		return nil, errAt(t.Pos, "'*' stands for the whole payload only as a SELECT item or a function argument, like encode(*, 'base64')")
	}
	return nil, errAt(t.Pos, "unexpected %s where an expression should be", t.Describe())
}

func (p *parser) parseObject(open token) (*expr, error) {
	var keys []string
	var vals []*expr
	if p.peek().Is("}") {
		p.next()
	} else {
		for {
			kt := p.next()
			if kt.Kind != tString {
				return nil, errAt(kt.Pos, "object keys are quoted strings, like {'name': value}; found %s", kt.Describe())
			}
			if _, err := p.expectPunct(":", "after the object key"); err != nil {
				return nil, err
			}
			v, err := p.parseExpr()
			if err != nil {
				return nil, err
			}
			keys = append(keys, kt.Text)
			vals = append(vals, v)
			sep := p.next()
			if sep.Is("}") {
				break
			}
			if !sep.Is(",") {
				return nil, errAt(sep.Pos, "expected ',' or '}' in the object, found %s", sep.Describe())
			}
		}
	}
	allConst := true
	fns := make([]EvalFn, len(vals))
	for i, v := range vals {
		fns[i] = v.eval
		allConst = allConst && v.konst
	}
	eval := func(c *Ctx) Value {
		o := &composite{keys: make([]string, 0, len(keys)), vals: make([]Value, 0, len(keys))}
		for i, f := range fns {
			o.set(keys[i], f(c))
		}
		return Value{k: Object, c: o}
	}
	if allConst {
		return constExpr(open.Pos, eval(nil)), nil
	}
	return &expr{pos: open.Pos, eval: eval}, nil
}

func (p *parser) parseArray(open token) (*expr, error) {
	var elems []*expr
	if p.peek().Is("]") {
		p.next()
	} else {
		for {
			e, err := p.parseExpr()
			if err != nil {
				return nil, err
			}
			elems = append(elems, e)
			sep := p.next()
			if sep.Is("]") {
				break
			}
			if !sep.Is(",") {
				return nil, errAt(sep.Pos, "expected ',' or ']' in the array, found %s", sep.Describe())
			}
		}
	}
	allConst := true
	fns := make([]EvalFn, len(elems))
	for i, e := range elems {
		fns[i] = e.eval
		allConst = allConst && e.konst
	}
	eval := func(c *Ctx) Value {
		vs := make([]Value, len(fns))
		for i, f := range fns {
			vs[i] = f(c)
		}
		return arrV(vs)
	}
	if allConst {
		return constExpr(open.Pos, eval(nil)), nil
	}
	return &expr{pos: open.Pos, eval: eval}, nil
}

// parseCase reads both forms: CASE v WHEN t THEN r ... [ELSE e] END (the form
// the reference documents: v is compared to each t with =) and the searched
// form CASE WHEN cond THEN r ... [ELSE e] END.
func (p *parser) parseCase(kw token) (*expr, error) {
	var subject *expr
	if !p.peek().Kw("when") {
		s, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		subject = s
	}
	var whens, thens []EvalFn
	for p.peek().Kw("when") {
		p.next()
		w, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		if err := p.expectKw("then", "after the WHEN value"); err != nil {
			return nil, err
		}
		r, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		whens = append(whens, w.eval)
		thens = append(thens, r.eval)
	}
	if len(whens) == 0 {
		return nil, errAt(p.peek().Pos, "CASE needs at least one WHEN ... THEN ...")
	}
	elseFn := EvalFn(func(*Ctx) Value { return undef })
	if p.peek().Kw("else") {
		p.next()
		e, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		elseFn = e.eval
	}
	if err := p.expectKw("end", "to close CASE"); err != nil {
		return nil, err
	}
	if subject != nil {
		sf := subject.eval
		return &expr{pos: kw.Pos, eval: func(c *Ctx) Value {
			v := sf(c)
			if v.k == Undefined {
				return undef // "If v is Undefined, the result of the case statement is Undefined."
			}
			for i, w := range whens {
				if eq, ok := equal(v, w(c)); ok && eq {
					return thens[i](c)
				}
			}
			return elseFn(c)
		}}, nil
	}
	return &expr{pos: kw.Pos, eval: func(c *Ctx) Value {
		for i, w := range whens {
			if b, ok := toBool(w(c)); ok && b {
				return thens[i](c)
			}
		}
		return elseFn(c)
	}}, nil
}

func (p *parser) parseCall(name token) (*expr, error) {
	lname := strings.ToLower(name.Text)
	p.next() // (
	if lname == "cast" {
		return p.parseCast(name)
	}
	var args []*expr
	if p.peek().Is(")") {
		p.next()
	} else {
		for {
			var a *expr
			if t := p.peek(); t.Is("*") && (p.peekN(1).Is(",") || p.peekN(1).Is(")")) {
				p.next()
				a = starExpr(t.Pos)
			} else {
				e, err := p.parseExpr()
				if err != nil {
					return nil, err
				}
				a = e
			}
			args = append(args, a)
			sep := p.next()
			if sep.Is(")") {
				break
			}
			if !sep.Is(",") {
				return nil, errAt(sep.Pos, "expected ',' or ')' in the arguments of %s, found %s", name.Text, sep.Describe())
			}
		}
	}
	return compileCall(name, lname, args)
}

var castTypes = map[string]Kind{
	"string": String, "nvarchar": String, "text": String, "ntext": String, "varchar": String,
	"int": Int, "integer": Int, "double": Decimal, "decimal": Decimal, "bool": Boolean, "boolean": Boolean,
}

func (p *parser) parseCast(name token) (*expr, error) {
	v, err := p.parseExpr()
	if err != nil {
		return nil, err
	}
	if err := p.expectKw("as", "in cast(value AS type)"); err != nil {
		return nil, err
	}
	tt := p.next()
	k, ok := castTypes[strings.ToLower(tt.Text)]
	if tt.Kind != tIdent || !ok {
		return nil, errAt(tt.Pos, "cast to %s: the types are String, Nvarchar, Text, Ntext, Varchar, Int, Integer, Double, Decimal, Bool, Boolean", tt.Describe())
	}
	if _, err := p.expectPunct(")", "to close cast("); err != nil {
		return nil, err
	}
	vf := v.eval
	e := &expr{pos: name.Pos, eval: func(c *Ctx) Value { return castTo(vf(c), k) }}
	if v.konst {
		return constExpr(name.Pos, castTo(v.val, k)), nil
	}
	return e, nil
}

func starExpr(p Pos) *expr {
	return &expr{pos: p, star: true, eval: func(c *Ctx) Value { return c.star() }}
}

func fieldExpr(p Pos, name string) *expr {
	path := []string{name}
	return &expr{pos: p, path: path, name: name, eval: pathFn(path)}
}

func pathFn(path []string) EvalFn {
	return func(c *Ctx) Value {
		if c.scope != nil {
			v := *c.scope
			for _, k := range path {
				v = v.member(k)
			}
			return v
		}
		return c.payloadPath(path)
	}
}

func member(p Pos, base *expr, name string) *expr {
	if base.path != nil && base.name != "" {
		path := append(append([]string(nil), base.path...), name)
		return &expr{pos: base.pos, path: path, name: name, eval: pathFn(path)}
	}
	bf := base.eval
	e := &expr{pos: p, name: name, eval: func(c *Ctx) Value { return bf(c).member(name) }}
	if base.konst {
		e = constExpr(p, base.val.member(name))
		e.name = name
	}
	return e
}

// indexExpr is a[i]: the i-th element of an Array (i converted to Int, as get
// does) or, with a String index, the member of an Object.
func indexExpr(p Pos, base, ix *expr) *expr {
	bf, xf := base.eval, ix.eval
	return &expr{pos: p, eval: func(c *Ctx) Value { return getValue(bf(c), xf(c)) }}
}

func unary(p Pos, e *expr, op func(Value) Value) *expr {
	if e.konst {
		return constExpr(p, op(e.val))
	}
	f := e.eval
	return &expr{pos: p, eval: func(c *Ctx) Value { return op(f(c)) }}
}

func binary(p Pos, l, r *expr, op func(a, b Value) Value) *expr {
	if l.konst && r.konst {
		return constExpr(p, op(l.val, r.val))
	}
	lf, rf := l.eval, r.eval
	if r.konst {
		rv := r.val
		return &expr{pos: p, eval: func(c *Ctx) Value { return op(lf(c), rv) }}
	}
	return &expr{pos: p, eval: func(c *Ctx) Value { return op(lf(c), rf(c)) }}
}

// compileSQL parses and compiles one top-level statement.
func compileSQL(sql string) (*Statement, error) {
	toks, err := lexAll(sql)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	st, err := p.parseStatement(false)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.Kind != tEOF {
		return nil, errAt(t.Pos, "unexpected %s after the statement", t.Describe())
	}
	return st, nil
}

// compileTemplateExpr compiles the expression inside a ${...} template; vars
// are the rule's SET variables (nil with lenient when its SQL did not compile).
func compileTemplateExpr(src string, vars map[string]int, lenient bool) (*expr, error) {
	toks, err := lexAll(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks, vars: vars, lenient: lenient}
	e, err := p.parseExpr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.Kind != tEOF {
		return nil, errAt(t.Pos, "unexpected %s after the expression", t.Describe())
	}
	return e, nil
}
