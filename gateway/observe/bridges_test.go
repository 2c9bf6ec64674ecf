package observe

import (
	"testing"

	"github.com/edgegw/edgegw/bridge"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/store"
)

// TestBridgesMetricsAndHealth: two bridges, each with its own queue. The
// per-route series cover both queues, edgegw_bridge_* carry the bridge's
// name, the unlabelled upstream series combine them (connected only when
// all are), and health reports the upstream down while one bridge is.
func TestBridgesMetricsAndHealth(t *testing.T) {
	o := testObserver(t, &config.Config{Site: "t"})
	o.broker = &fakeBroker{listeners: 1}
	o.setSources(Sources{Broker: o.broker, Bridges: []BridgeSource{
		{Name: "aws", Queue: &fakeQueue{s: store.Stats{Depth: 4, RejectedFull: 1, Routes: []store.RouteStats{{Name: "aws-t", Depth: 4, Enqueued: 10, Acked: 6}}}},
			Bridge: &fakeBridge{s: bridge.State{Name: "aws", Connected: true, Reconnects: 1, Sent: 7, Acked: 6, InboundDelivered: 2, InboundDropped: 1,
				InboundRoutes: []bridge.RouteInbound{{Route: "aws-cmd", Delivered: 2, Dropped: 1}, {Route: "aws-cfg"}}}}},
		{Name: "scada", Queue: &fakeQueue{s: store.Stats{Depth: 9, RejectedFull: 2, Routes: []store.RouteStats{{Name: "scada-t", Depth: 9, Enqueued: 10, Acked: 1}}}},
			Bridge: &fakeBridge{s: bridge.State{Name: "scada", Connected: false, Reconnects: 3, Sent: 1, Acked: 1, InboundDelivered: 5,
				InboundRoutes: []bridge.RouteInbound{{Route: "scada-set", Delivered: 5}}}}},
	}})
	got := gather(t, o)
	for key, want := range map[string]float64{
		"edgegw_queue_depth{route=aws-t}":                                     4,
		"edgegw_queue_depth{route=scada-t}":                                   9,
		"edgegw_messages_out_total{route=scada-t}":                            1,
		"edgegw_queue_rejected_full_total":                                    3,
		"edgegw_upstream_connected":                                           0,
		"edgegw_upstream_reconnects_total":                                    4,
		"edgegw_inbound_messages_total{result=delivered}":                     7,
		"edgegw_bridge_connected{bridge=aws}":                                 1,
		"edgegw_bridge_connected{bridge=scada}":                               0,
		"edgegw_bridge_reconnects_total{bridge=scada}":                        3,
		"edgegw_bridge_sent_total{bridge=aws}":                                7,
		"edgegw_bridge_acked_total{bridge=aws}":                               6,
		"edgegw_bridge_inbound_messages_total{bridge=scada,result=delivered}": 5,
		"edgegw_bridge_queue_depth{bridge=scada}":                             9,
		"edgegw_route_bridge_info{bridge=aws,route=aws-t}":                    1,
		"edgegw_route_bridge_info{bridge=scada,route=scada-t}":                1,
		// per in route, both results, 0 before the first message
		"edgegw_route_inbound_messages_total{result=delivered,route=aws-cmd}":   2,
		"edgegw_route_inbound_messages_total{result=dropped,route=aws-cmd}":     1,
		"edgegw_route_inbound_messages_total{result=delivered,route=aws-cfg}":   0,
		"edgegw_route_inbound_messages_total{result=dropped,route=aws-cfg}":     0,
		"edgegw_route_inbound_messages_total{result=delivered,route=scada-set}": 5,
		"edgegw_route_inbound_messages_total{result=dropped,route=scada-set}":   0,
	} {
		if v, ok := got[key]; !ok {
			t.Errorf("%s missing", key)
		} else if v != want {
			t.Errorf("%s = %v; want %v", key, v, want)
		}
	}
	if h := o.health(); h.Upstream != "down" || h.Queue != "open" || h.Status != "ok" {
		t.Errorf("health %+v; want ok, queue open, upstream down (one bridge is)", h)
	}
	st := o.status(nil)
	if len(st.Bridges) != 2 || st.Bridges[1].Name != "scada" || st.Bridges[1].Upstream.Connected || st.Bridges[1].Queue.Depth != 9 {
		t.Fatalf("status bridges %+v; want aws and scada (down, depth 9)", st.Bridges)
	}
	if st.Queue == nil || st.Queue.Depth != 4 {
		t.Errorf("status queue %+v; want the first bridge's (depth 4)", st.Queue)
	}
}
