package main

// Steps the end-to-end tests of a bridgeGW share: connecting a subscribed
// sensor, and starting the daemon with its stop and log tail on cleanup.

import (
	"context"
	"os"
	"os/exec"
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

// runDaemon starts `edgegw run -c conf` and returns its process (to signal),
// a channel closed when it exits, and its output (stdout and stderr). On cleanup it sends SIGTERM (an error if the daemon takes more than
// 15 s to stop) and, when the test failed, logs the daemon's whole output.
func runDaemon(t testing.TB, conf string) (p *os.Process, exited <-chan struct{}, log *gatewaytest.Buffer) {
	t.Helper()
	log = new(gatewaytest.Buffer)
	cmd := exec.Command(gatewaytest.Edgegw(t), "run", "-c", conf)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		if !gatewaytest.Terminate(cmd.Process, done, 15*time.Second) {
			t.Errorf("edgegw run did not stop within 15s of SIGTERM")
		}
		if t.Failed() {
			t.Logf("edgegw log:\n%s", log.String())
		}
	})
	return cmd.Process, done, log
}
