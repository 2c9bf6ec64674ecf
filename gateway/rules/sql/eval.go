package sql

import (
	"sync"
	"time"

	"github.com/edgegw/edgegw/gateway/rules/sql/internal/jsonscan"
)

// Version is the one AWS IoT SQL version the gateway implements.
const Version = "2016-03-23"

// UserProperty is one MQTT 5 user property (a key may repeat).
type UserProperty struct{ Key, Value string }

// Message is what a rule sees of one PUBLISH: the topic and payload and what
// AWS IoT exposes through functions (clientid(), principal(), timestamp(), ...).
type Message struct {
	Topic    string
	Payload  []byte
	ClientID string
	// Principal is what principal() returns; for a certificate it is the
	// certificate's SHA-256 thumbprint in hex, as AWS IoT returns it.
	Principal string
	Thing     string // the registry thing of the publisher (not visible to SQL)
	SourceIP  string
	TraceID   string
	// Timestamp is when the gateway received the message (timestamp()); the
	// zero time means now.
	Timestamp time.Time
	// QoS and Retain are the incoming flags, for the caller's use; no AWS IoT
	// SQL function reads them.
	QoS    byte
	Retain bool

	// MQTT 5 PUBLISH properties; get_mqtt_property() and get_user_properties()
	// are Undefined for an MQTT 3.1.1 message (MQTT5 false).
	MQTT5           bool
	ContentType     string
	ResponseTopic   string
	CorrelationData []byte
	PayloadUTF8     bool // payload format indicator 1
	UserProperties  []UserProperty
}

// Ctx is the state of one evaluation: the message, what is known of its
// payload, and scratch space reused between messages through a pool.
type Ctx struct {
	m     *Message
	scope *Value // the current element inside a nested SELECT; nil at the top

	jsonChecked bool
	isJSON      bool
	rootParsed  bool
	root        Value

	vars  []Value // the SET variables of this message
	stack []Value
	out   []byte
}

var ctxPool = sync.Pool{New: func() any { return &Ctx{stack: make([]Value, 0, 16), out: make([]byte, 0, 256)} }}

func newCtx(m *Message) *Ctx {
	c := ctxPool.Get().(*Ctx)
	c.m = m
	return c
}

func (c *Ctx) release() {
	clear(c.vars)
	c.vars = c.vars[:0]
	clear(c.stack[:cap(c.stack)])
	c.stack = c.stack[:0]
	c.out = c.out[:0]
	c.m, c.scope = nil, nil
	c.jsonChecked, c.isJSON, c.rootParsed = false, false, false
	c.root = undef
	if cap(c.out) > 64<<10 {
		c.out = make([]byte, 0, 256)
	}
	ctxPool.Put(c)
}

func (c *Ctx) now() time.Time {
	if c.m.Timestamp.IsZero() {
		return time.Now()
	}
	return c.m.Timestamp
}

func (c *Ctx) payloadIsJSON() bool {
	if !c.jsonChecked {
		c.jsonChecked = true
		c.isJSON = jsonscan.Valid(c.m.Payload)
	}
	return c.isJSON
}

// payloadPath reads a field path from the payload: Undefined when the payload
// is not JSON. The whole payload is parsed only if `*` asked for it already.
func (c *Ctx) payloadPath(path []string) Value {
	if !c.payloadIsJSON() {
		return undef
	}
	if c.rootParsed {
		v := c.root
		for _, k := range path {
			v = v.member(k)
		}
		return v
	}
	return lookupPath(c.m.Payload, path)
}

// star is `*` as a value: the current element in a nested SELECT, else the
// payload as JSON, else the raw payload (Binary).
func (c *Ctx) star() Value {
	if c.scope != nil {
		return *c.scope
	}
	if !c.rootParsed {
		c.rootParsed = true
		if c.payloadIsJSON() {
			c.root = parseJSON(c.m.Payload)
		} else {
			c.root = Value{k: Binary, s: string(c.m.Payload)}
		}
	}
	return c.root
}

// rawStar is the payload bytes as encode(*, ...) sees them.
func (c *Ctx) rawStar() string {
	if c.scope != nil {
		s, _ := toString(*c.scope)
		return s
	}
	return string(c.m.Payload)
}

func isTrue(v Value) bool {
	b, ok := toBool(v)
	return ok && b
}

// run evaluates a top-level statement on the message held by c. matched is
// false when WHERE is not true; out is the outgoing payload, written into
// c.out (the caller copies it) or aliasing the incoming payload for SELECT *.
func (st *Statement) run(c *Ctx) (out []byte, matched bool, err error) {
	st.setVars(c)
	if st.where != nil && !isTrue(st.where.eval(c)) {
		return nil, false, nil
	}
	if st.value {
		v := st.items[0].e.eval(c)
		switch v.k {
		case Undefined:
			return c.out[:0], true, nil // Undefined serialized by itself is empty
		case Binary:
			return c.m.Payload, true, nil
		}
		c.out = appendJSON(c.out[:0], v)
		return c.out, true, nil
	}
	if st.hasStar && len(st.items) == 1 {
		return c.m.Payload, true, nil // SELECT * passes the payload through, JSON or not
	}
	if st.hasStar {
		obj, err := st.starObject(c)
		if err != nil {
			return nil, true, err
		}
		c.out = appendJSON(c.out[:0], obj)
		return c.out, true, nil
	}
	b := append(c.out[:0], '{')
	n := 0
	for i := range st.items {
		it := &st.items[i]
		v := it.e.eval(c)
		if v.k == Undefined {
			continue // a missing field is omitted from the output
		}
		if n > 0 {
			b = append(b, ',')
		}
		b = append(b, it.key...)
		b = appendJSON(b, v)
		n++
	}
	c.out = append(b, '}')
	return c.out, true, nil
}

// setVars evaluates the SET clause, in order, into c.vars.
func (st *Statement) setVars(c *Ctx) {
	c.vars = c.vars[:0]
	for _, set := range st.sets {
		c.vars = append(c.vars, set(c))
	}
}

// starObject builds the output of SELECT *, more: the payload's members, then
// the other items (a repeated key takes the later value).
func (st *Statement) starObject(c *Ctx) (Value, error) {
	o := &composite{}
	for i := range st.items {
		it := &st.items[i]
		if it.star {
			s := c.star()
			switch {
			case s.k == Object:
				o.keys = append(o.keys, s.c.keys...)
				o.vals = append(o.vals, s.c.vals...)
			case c.scope == nil && len(c.m.Payload) == 0:
				// An empty payload gets the new fields (binary-payloads).
			default:
				return undef, ErrNotObject
			}
			continue
		}
		if v := it.e.eval(c); v.k != Undefined {
			o.set(it.name, v)
		}
	}
	return Value{k: Object, c: o}, nil
}

// nestedEval runs a nested SELECT: over every element of an Array FROM (the
// results collected in an Array), or once over an Object FROM.
func (st *Statement) nestedEval(c *Ctx) Value {
	src := st.from.eval(c)
	saved := c.scope
	defer func() { c.scope = saved }()
	one := func(e Value) Value {
		c.scope = &e
		if st.where != nil && !isTrue(st.where.eval(c)) {
			return undef
		}
		if st.value {
			return st.items[0].e.eval(c)
		}
		v, err := st.starObject(c)
		if err != nil {
			return undef
		}
		return v
	}
	switch src.k {
	case Array:
		out := make([]Value, 0, len(src.c.vals))
		for _, e := range src.c.vals {
			if v := one(e); v.k != Undefined {
				out = append(out, v)
			}
		}
		return arrV(out)
	case Object:
		return one(src)
	}
	return undef
}
