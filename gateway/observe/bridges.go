package observe

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Several bridges. Each bridge has its own queue (route names are unique
// across bridges, so the per-route series stay as they are); the upstream
// series without a label (edgegw_upstream_connected, ...) sum or combine
// every bridge (connected: all of them), and the edgegw_bridge_* series
// carry the bridge's name in the label bridge. edgegw_route_bridge_info
// says which bridge a route belongs to, for joins:
//
//	edgegw_queue_depth * on(route) group_left(bridge) edgegw_route_bridge_info

// BridgeSource is one running bridge and its queue.
type BridgeSource struct {
	Name   string
	Queue  Queue
	Bridge Bridge

	Renewer IdentityRenewer // nil without tls.renew (identity.go)
}

var (
	descBridgeConnected  = desc("bridge_connected", "1 while the bridge's upstream MQTT session is up.", "bridge")
	descBridgeReconnects = desc("bridge_reconnects_total", "Upstream connections of the bridge after the first.", "bridge")
	descBridgeSent       = desc("bridge_sent_total", "PUBLISH packets the bridge wrote upstream (resends included).", "bridge")
	descBridgeAcked      = desc("bridge_acked_total", "Messages the bridge's upstream acknowledged.", "bridge")
	descBridgeResent     = desc("bridge_resent_total", "Messages sent again after a lost connection (the bound on duplicates).", "bridge")
	descBridgeInbound    = desc("bridge_inbound_messages_total", "Messages from the bridge's upstream, by result.", "bridge", "result")
	descBridgeDepth      = desc("bridge_queue_depth", "Messages in the bridge's queue, every route.", "bridge")
	descRouteBridge      = desc("route_bridge_info", "The bridge a route belongs to; always 1.", "route", "bridge")
	descRouteInbound     = desc("route_inbound_messages_total", "Messages from the upstream on the in (or both) route, by result: delivered locally, or dropped (the local publish failed).", "route", "result")
	bridgeDescs          = []*prometheus.Desc{descBridgeConnected, descBridgeReconnects, descBridgeSent, descBridgeAcked,
		descBridgeResent, descBridgeInbound, descBridgeDepth, descRouteBridge, descRouteInbound}
)

// routeInboundResults are every result edgegw_route_inbound_messages_total
// reports for an in route, so each series exists at 0 before the first
// message. (A message matching no in route has no route: it counts only in
// edgegw_inbound_messages_total{result="dropped"}.)
var routeInboundResults = []string{"delivered", "dropped"}

// setSources records what Start was given: Bridges, or (older callers)
// one Queue and Bridge. Queue and Bridge stay the first bridge's, for the
// single-upstream parts of status.
func (o *Observer) setSources(src Sources) {
	o.broker, o.queue, o.bridge, o.links = src.Broker, src.Queue, src.Bridge, src.Bridges
	if len(o.links) > 0 && o.queue == nil && o.bridge == nil {
		o.queue, o.bridge = o.links[0].Queue, o.links[0].Bridge
	}
}

// bridgeList is every bridge: Sources.Bridges, or the one Queue and Bridge.
func (o *Observer) bridgeList() []BridgeSource {
	if len(o.links) > 0 {
		return o.links
	}
	if o.queue == nil && o.bridge == nil {
		return nil
	}
	name := "default"
	if o.bridge != nil {
		if n := o.bridge.State().Name; n != "" {
			name = n
		}
	}
	return []BridgeSource{{Name: name, Queue: o.queue, Bridge: o.bridge}}
}

// bridgeQueue is the queue of the bridge named name, or nil.
func (o *Observer) bridgeQueue(name string) Queue {
	for _, l := range o.bridgeList() {
		if l.Name == name {
			return l.Queue
		}
	}
	return nil
}

// collectBridges exports the per-bridge series.
func (o *Observer) collectBridges(m sink) {
	for _, l := range o.bridgeList() {
		if b := l.Bridge; b != nil {
			st := b.State()
			m.gauge(descBridgeConnected, b2f(st.Connected), l.Name)
			m.counter(descBridgeReconnects, float64(st.Reconnects), l.Name)
			m.counter(descBridgeSent, float64(st.Sent), l.Name)
			m.counter(descBridgeAcked, float64(st.Acked), l.Name)
			m.counter(descBridgeResent, float64(st.Resent), l.Name)
			m.counter(descBridgeInbound, float64(st.InboundReceived), l.Name, "received")
			m.counter(descBridgeInbound, float64(st.InboundDelivered), l.Name, "delivered")
			m.counter(descBridgeInbound, float64(st.InboundDropped), l.Name, "dropped")
			for _, r := range st.InboundRoutes { // route names are unique across bridges
				for _, result := range routeInboundResults {
					n := r.Delivered
					if result == "dropped" {
						n = r.Dropped
					}
					m.counter(descRouteInbound, float64(n), r.Route, result)
				}
			}
		}
		if q := l.Queue; q != nil {
			qs := q.Stats()
			m.gauge(descBridgeDepth, float64(qs.Depth), l.Name)
			for _, rs := range qs.Routes {
				m.gauge(descRouteBridge, 1, rs.Name, l.Name)
			}
		}
	}
}

// BridgeStatus is one bridge in `edgegw status`.
type BridgeStatus struct {
	Name     string          `json:"name"`
	Protocol string          `json:"protocol"`
	Upstream *UpstreamStatus `json:"upstream,omitempty"`
	Queue    *QueueStatus    `json:"queue,omitempty"`
}

// bridgesStatus is every bridge's upstream and queue; with a (the admin
// socket) each route's rate since the previous status.
func (o *Observer) bridgesStatus(a *adminServer) []BridgeStatus {
	out := make([]BridgeStatus, 0, len(o.bridgeList()))
	for _, l := range o.bridgeList() {
		bs := BridgeStatus{Name: l.Name}
		if l.Bridge != nil {
			st := l.Bridge.State()
			bs.Protocol = st.Protocol
			bs.Upstream = upstreamStatus(st)
		}
		if l.Queue != nil {
			bs.Queue = queueStatus(l.Queue)
			bs.Queue.Open = queueOpenStatusOf(l.Queue) // queue_open.go
		}
		out = append(out, bs)
	}
	if a != nil { // the rates of every route at once (route names are unique)
		var all []RouteStatus
		for _, bs := range out {
			if bs.Queue != nil {
				all = append(all, bs.Queue.Routes...)
			}
		}
		rates := a.routeRates(all)
		for _, bs := range out {
			if bs.Queue != nil {
				for i := range bs.Queue.Routes {
					bs.Queue.Routes[i].Rate = rates[bs.Queue.Routes[i].Name]
				}
			}
		}
	}
	return out
}
