package main

// Steps the end-to-end tests of a bridgeGW share: connecting a subscribed
// sensor, and starting the daemon with its stop and log tail on cleanup.

import (
	"context"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// subscribedSensor connects name as a sensor with its own certificate and
// subscribes it to filter at QoS 1 (10 s for the SUBACK); any error fails
// the test. The caller closes it.
func (g *bridgeGW) subscribedSensor(t testing.TB, name, filter string) *sensor {
	t.Helper()
	s, err := g.sensor(t, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}}); err != nil {
		s.close()
		t.Fatal(err)
	}
	return s
}

// launch starts the daemon; on cleanup it stops it and, when the test
// failed, logs the last tailBytes of its log.
func (g *bridgeGW) launch(t testing.TB, tailBytes int) {
	t.Helper()
	t.Cleanup(func() {
		g.stop()
		if t.Failed() {
			t.Logf("edgegw log (last %d KiB):\n%s", tailBytes/1024, gatewaytest.LastBytes([]byte(g.log.String()), tailBytes))
		}
	})
	g.start()
}
