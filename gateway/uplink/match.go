package uplink

import (
	"context"
	"fmt"

	"github.com/edgegw/edgegw/bridge"
	"github.com/edgegw/edgegw/gateway/broker"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/store"
)

// Compile-time fit of the pieces.
var (
	_ broker.Enqueuer     = (*store.Queue)(nil)
	_ bridge.Queue        = (*store.Queue)(nil)
	_ bridge.Publisher    = (*broker.LocalPublisher)(nil)
	_ broker.RouteMatcher = (*routeMatcher)(nil)
)

// routeMatcher answers the broker's OnPublish: which out routes, of every
// bridge, queue this publication. It matches with the routes each bridge
// compiled (bridge.Routes), so a route is compiled once, and adds what only
// the config knows (queue_qos0). It is immutable; a reload installs a new
// one.
type routeMatcher struct {
	rs   []*bridge.Routes     // one per bridge
	info map[string]matchInfo // out route name -> its answer
}

type matchInfo struct {
	names []string // []string{name}: returned as is, so one match costs no allocation
	qos0  bool     // queue_qos0
}

// newRouteMatcher matches with rs, compiled from routes (Bridge.Routes after
// bridge.New or SetRoutes).
func newRouteMatcher(rs *bridge.Routes, routes []config.Route) *routeMatcher {
	return newBridgesMatcher([]*bridge.Routes{rs}, routes)
}

// newBridgesMatcher matches with the routes of several bridges; routes are
// all of them, as configured (route names are unique across bridges).
func newBridgesMatcher(rs []*bridge.Routes, routes []config.Route) *routeMatcher {
	m := &routeMatcher{rs: rs, info: make(map[string]matchInfo, len(routes))}
	for _, r := range routes {
		if r.Direction == config.DirectionOut || r.Direction == config.DirectionBoth {
			n := r.ID()
			m.info[n] = matchInfo{names: []string{n}, qos0: r.QueueQoS0}
		}
	}
	return m
}

// OutboundRoutes implements RouteMatcher. The caller must not modify the
// result. Zero allocations unless more than one route matches.
func (m *routeMatcher) OutboundRoutes(topic string, qos byte) []string {
	var buf [4]bridge.Route
	matched := buf[:0]
	for _, rs := range m.rs {
		matched = rs.MatchOut(matched, topic)
	}
	var first []string
	var all []string
	for i := range matched {
		mi := m.info[matched[i].Name]
		if mi.names == nil || qos == 0 && !mi.qos0 {
			// (no names: a route of the gateway's own, e.g. shadow sync,
			// that takes no local publications)
			continue
		}
		switch {
		case first == nil:
			first = mi.names
		case all == nil:
			all = append(append(make([]string, 0, len(matched)), first...), mi.names[0])
		default:
			all = append(all, mi.names[0])
		}
	}
	if all != nil {
		return all
	}
	return first
}

// queueMux is the broker's Enqueuer when several bridges run: the route a
// message was matched to (store.Message.Route) names the queue of its
// bridge. The broker submits once per matching route, so a message of routes
// in two bridges is written to both queues, and its PUBACK waits for both
// commits. It is immutable; a reload installs a new one.
type queueMux map[string]*store.Queue // route name -> its bridge's queue

var (
	_ broker.Enqueuer  = queueMux(nil)
	_ broker.Submitter = queueMux(nil)
)

func (m queueMux) queue(route string) (*store.Queue, error) {
	q := m[route]
	if q == nil {
		return nil, fmt.Errorf("route %q belongs to no running bridge", route)
	}
	return q, nil
}

// Enqueue implements broker.Enqueuer.
func (m queueMux) Enqueue(ctx context.Context, msg store.Message) (uint64, error) {
	q, err := m.queue(msg.Route)
	if err != nil {
		return 0, err
	}
	return q.Enqueue(ctx, msg)
}

// Submit implements broker.Submitter (pipelined PUBACKs).
func (m queueMux) Submit(ctx context.Context, msg store.Message) (broker.Waiter, error) {
	q, err := m.queue(msg.Route)
	if err != nil {
		return nil, err
	}
	t, err := q.Submit(ctx, msg)
	if err != nil {
		return nil, err
	}
	return t, nil
}
