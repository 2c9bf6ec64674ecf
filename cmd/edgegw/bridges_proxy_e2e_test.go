package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// TestBridgesE2EProxy: a bridge with proxy: reaches its mqtts upstream
// through an HTTP CONNECT proxy (the proxy is asked for the upstream's
// address) and its messages arrive in order.
func TestBridgesE2EProxy(t *testing.T) {
	up := gatewaytest.NewUpstream(t, cmdUpstream)
	proxy := gatewaytest.StartConnectProxy(t, &gatewaytest.ConnectProxy{})
	cloud := startCloudSub(t, up, "sites/#")
	g := newGW(t, "bridges:\n"+bridgeYAML("behind-proxy", "plant-7-gw", up, `
      - {name: p-a, topic: "sensors/sensor-a/#", remote_prefix: "sites/plant-7/"}`)+
		fmt.Sprintf("    proxy: \"http://%s\"\n", proxy.Addr()))
	const n = 100
	sendSensorAUpstream(t, g, cloud, "upstream behind the proxy", n)
	if asked := proxy.Asked(); len(asked) == 0 || asked[0] != up.Addr {
		t.Errorf("proxy was asked for %q; want CONNECT %s", asked, up.Addr)
	}
}

// sendSensorAUpstream publishes n messages of sensor-a through g's bridge
// (QoS 1, one worker), waits until cloud has them all (bounded) and checks
// their arrival (checkArrivals); where names the path in a failure.
func sendSensorAUpstream(t *testing.T, g *bridgeGW, cloud *cloudSub, where string, n int) {
	t.Helper()
	var todo []msgID
	for i := range n {
		todo = append(todo, msgID{"sensor-a", i})
	}
	if _, failed := g.publishAll(t, todo, 1, nil); len(failed) > 0 {
		t.Fatalf("%d publishes failed", len(failed))
	}
	cloud.waitDistinct(t, n, 20*time.Second, 60*time.Second)
	checkArrivals(t, where, cloud, "sensor-a", n)
}
