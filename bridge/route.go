package bridge

import (
	"errors"
	"fmt"
	"strings"

	"github.com/edgegw/edgegw/bridge/topic"
)

// Direction says which way a route carries messages.
type Direction uint8

// Directions, as in Mosquitto's bridge `topic` lines.
const (
	Out  Direction = iota + 1 // local -> upstream
	In                        // upstream -> local
	Both                      // both ways
)

// String returns the config spelling: "out", "in" or "both".
func (d Direction) String() string {
	switch d {
	case Out:
		return "out"
	case In:
		return "in"
	case Both:
		return "both"
	}
	return fmt.Sprintf("Direction(%d)", uint8(d))
}

// ParseDirection accepts "out", "in" and "both".
func ParseDirection(s string) (Direction, error) {
	switch s {
	case "out":
		return Out, nil
	case "in":
		return In, nil
	case "both":
		return Both, nil
	}
	return 0, fmt.Errorf("direction %q: want out, in or both", s)
}

func (d Direction) out() bool { return d == Out || d == Both }
func (d Direction) in() bool  { return d == In || d == Both }

// Route is one bridge topic line with Mosquitto's prefix semantics:
//
//	out: a local topic matching LocalPrefix+Topic is sent upstream as
//	     RemotePrefix + (the topic with LocalPrefix stripped);
//	in:  an upstream topic matching RemotePrefix+Topic is published locally as
//	     LocalPrefix + (the topic with RemotePrefix stripped).
//
// Example: {Topic: "building/#", Direction: Out, RemotePrefix: "sites/plant-7/"}
// sends local "building/f1/temp" upstream as "sites/plant-7/building/f1/temp".
type Route struct {
	Name         string    // names the queue (store route); unique
	Topic        string    // MQTT topic filter, e.g. "building/#", "cmd/+/set"
	Direction    Direction // Out, In or Both
	QoS          byte      // 0 or 1 upstream; 2 is sent as 1
	LocalPrefix  string    // no wildcards; usually ends with '/'
	RemotePrefix string    // no wildcards; usually ends with '/'
	Priority     int       // higher drains first (the queue orders Next by it)
}

// LocalFilter is the filter local topics are matched against (out routes).
func (r Route) LocalFilter() string { return r.LocalPrefix + r.Topic }

// RemoteFilter is the filter subscribed upstream (in routes).
func (r Route) RemoteFilter() string { return r.RemotePrefix + r.Topic }

// RemoteTopic maps a local topic that matched LocalFilter to its upstream topic.
func (r Route) RemoteTopic(local string) string {
	return r.RemotePrefix + strings.TrimPrefix(local, r.LocalPrefix)
}

// LocalTopic maps an upstream topic that matched RemoteFilter to its local topic.
func (r Route) LocalTopic(remote string) string {
	return r.LocalPrefix + strings.TrimPrefix(remote, r.RemotePrefix)
}

// wireQoS is the QoS used upstream: 0 stays 0, anything else is 1 (the
// forwarder only tracks PUBACKs).
func (r Route) wireQoS() byte {
	if r.QoS == 0 {
		return 0
	}
	return 1
}

// Validate checks the filter, the prefixes and the QoS. Errors name the route
// and say what to change.
func (r Route) Validate() error {
	name := r.Name
	if name == "" {
		name = r.Topic
	}
	if err := ValidateFilter(r.Topic); err != nil {
		return fmt.Errorf("route %q: topic: %w", name, err)
	}
	if r.Direction < Out || r.Direction > Both {
		return fmt.Errorf("route %q: direction %d: want out, in or both", name, r.Direction)
	}
	if r.QoS > 2 {
		return fmt.Errorf("route %q: qos %d: want 0, 1 or 2", name, r.QoS)
	}
	for _, p := range [...]struct{ key, v string }{{"local_prefix", r.LocalPrefix}, {"remote_prefix", r.RemotePrefix}} {
		if strings.ContainsAny(p.v, "+#\x00") {
			return fmt.Errorf("route %q: %s %q: a prefix must not contain '+', '#' or NUL", name, p.key, p.v)
		}
	}
	return nil
}

// Errors from ValidateFilter.
var (
	ErrEmptyFilter = errors.New("topic filter is empty")
	ErrBadFilter   = errors.New("invalid topic filter")
)

// ValidateFilter checks an MQTT topic filter with the rule of package topic
// (topic.ValidateFilter) and wraps its reason in ErrEmptyFilter or
// ErrBadFilter, naming the filter (unless it is too long to repeat).
func ValidateFilter(f string) error {
	err := topic.ValidateFilter(f)
	switch {
	case err == nil:
		return nil
	case f == "":
		return ErrEmptyFilter
	case len(f) > topic.MaxBytes:
		return fmt.Errorf("%w: %w", ErrBadFilter, err)
	}
	return fmt.Errorf("%w %q: %w", ErrBadFilter, f, err)
}

// Match reports whether topic matches filter. Both are assumed valid (a
// filter from ValidateFilter, a topic name without wildcards). Topics starting
// with '$' do not match filters starting with a wildcard [MQTT-4.7.2-1].
// It does not allocate.
func Match(filter, topic string) bool { return match(filter, topic, true) }

// match implements Match; dollar applies the '$' rule (off after a prefix,
// where the first filter level is not the topic's first level).
func match(filter, topic string, dollar bool) bool {
	if dollar && len(topic) > 0 && topic[0] == '$' && len(filter) > 0 && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	fi, ti := 0, 0
	for {
		// Take the next level of each.
		fe := strings.IndexByte(filter[fi:], '/')
		var fl string
		if fe < 0 {
			fl = filter[fi:]
		} else {
			fl = filter[fi : fi+fe]
		}
		if fl == "#" {
			// '#' matches the parent level and any number of child levels
			// [MQTT-4.7.1-2]: "sport/#" matches "sport".
			return true
		}
		te := strings.IndexByte(topic[ti:], '/')
		var tl string
		if te < 0 {
			tl = topic[ti:]
		} else {
			tl = topic[ti : ti+te]
		}
		if fl != "+" && fl != tl {
			return false
		}
		switch {
		case fe < 0 && te < 0:
			return true
		case fe < 0:
			return false // topic has more levels
		case te < 0:
			// Topic ended; only "/#" may follow in the filter.
			return filter[fi+fe+1:] == "#"
		}
		fi += fe + 1
		ti += te + 1
	}
}

// Routes is a compiled, read-only set of routes. Build it with NewRoutes;
// swap a new one in on reload (Bridge.SetRoutes).
type Routes struct {
	all    []Route
	out    []int // indexes into all, config order
	in     []int
	byName map[string]int
}

// NewRoutes validates routes and compiles them. Names must be unique; an
// empty name becomes "<direction>:<topic>".
func NewRoutes(routes []Route) (*Routes, error) {
	rs := &Routes{all: make([]Route, len(routes)), byName: make(map[string]int, len(routes))}
	copy(rs.all, routes)
	for i := range rs.all {
		r := &rs.all[i]
		if err := r.Validate(); err != nil {
			return nil, err
		}
		if r.Name == "" {
			r.Name = r.Direction.String() + ":" + r.Topic
		}
		if _, dup := rs.byName[r.Name]; dup {
			return nil, fmt.Errorf("route %q: name used twice", r.Name)
		}
		rs.byName[r.Name] = i
		if r.Direction.out() {
			rs.out = append(rs.out, i)
		}
		if r.Direction.in() {
			rs.in = append(rs.in, i)
		}
	}
	return rs, nil
}

// All returns a copy of the routes (names filled in).
func (rs *Routes) All() []Route { return append([]Route(nil), rs.all...) }

// ByName returns the route with that name.
func (rs *Routes) ByName(name string) (Route, bool) {
	i, ok := rs.byName[name]
	if !ok {
		return Route{}, false
	}
	return rs.all[i], true
}

// MatchOut appends to dst every out/both route whose LocalFilter matches the
// local topic, in config order, and returns it. With a dst of enough capacity
// it does not allocate: this is the gateway's per-publish hot path. The
// gateway enqueues the message once per returned route (Message.Route =
// Route.Name), as Mosquitto sends a message once per matching topic line.
func (rs *Routes) MatchOut(dst []Route, topic string) []Route {
	for _, i := range rs.out {
		r := &rs.all[i]
		if matchPrefixed(r.LocalPrefix, r.Topic, topic) {
			dst = append(dst, *r)
		}
	}
	return dst
}

// FirstOut returns the first out/both route matching the local topic.
func (rs *Routes) FirstOut(topic string) (Route, bool) {
	for _, i := range rs.out {
		r := &rs.all[i]
		if matchPrefixed(r.LocalPrefix, r.Topic, topic) {
			return *r, true
		}
	}
	return Route{}, false
}

// FirstIn returns the first in/both route whose RemoteFilter matches the
// upstream topic.
func (rs *Routes) FirstIn(topic string) (Route, bool) {
	for _, i := range rs.in {
		r := &rs.all[i]
		if matchPrefixed(r.RemotePrefix, r.Topic, topic) {
			return *r, true
		}
	}
	return Route{}, false
}

// MatchOut is the uncompiled form of Routes.MatchOut, for callers holding a
// plain slice (it does not validate).
func MatchOut(routes []Route, topic string) []Route {
	var dst []Route
	for _, r := range routes {
		if r.Direction.out() && matchPrefixed(r.LocalPrefix, r.Topic, topic) {
			dst = append(dst, r)
		}
	}
	return dst
}

// matchPrefixed matches topic against prefix+filter without building the
// concatenated filter: the topic must start with prefix, and the rest must
// match filter. A prefix that ends mid-level behaves like Mosquitto's (plain
// string concatenation), since filter levels are compared after the prefix.
func matchPrefixed(prefix, filter, topic string) bool {
	if prefix == "" {
		return Match(filter, topic)
	}
	if !strings.HasPrefix(topic, prefix) {
		// "sites/plant-7/#" with prefix "sites/plant-7/" also matches the
		// parent "sites/plant-7" [MQTT-4.7.1-2]; keep that case exact.
		return filter == "#" && prefix[len(prefix)-1] == '/' && topic == prefix[:len(prefix)-1]
	}
	rest := topic[len(prefix):]
	if prefix[len(prefix)-1] != '/' {
		// Prefix ends inside a level ("dev" + "ice/#"): the first filter
		// level is partly the prefix; only exact concatenation semantics
		// work, so fall back to the full filter (rare; allocation accepted).
		return Match(prefix+filter, topic)
	}
	// The '$' rule is about the topic's first level; after a non-empty
	// prefix the filter's first level is not it.
	return match(filter, rest, false)
}
