package broker

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	pahopackets "github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// TestQoS1AfterQoS0Flood is the bench's local step: mosquitto_pub floods a
// subscriber with QoS 0 (drops counted), then a new mosquitto_pub with the
// same client ID publishes QoS 1, which must all be acknowledged. The
// subscriber sends a Receive Maximum, so mochi would use its send quota and
// call Inflight.NextImmediate, which deadlocked against deliveries
// (disableSendQuota).
func TestQoS1AfterQoS0Flood(t *testing.T) {
	e := newEnv(t, nil)
	conn := e.dialThing(t, "monitor")
	// As the bench's subscriber: a Receive Maximum (so mochi's send quota
	// is on), a persistent session.
	mon := paho.NewClient(paho.ClientConfig{Conn: pahopackets.NewThreadSafeConn(conn),
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(paho.PublishReceived) (bool, error) { return true, nil }}})
	recvMax := uint16(65535)
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ccancel()
	if _, err := mon.Connect(cctx, &paho.Connect{ClientID: "monitor", KeepAlive: 30, CleanStart: true,
		Properties: &paho.ConnectProperties{ReceiveMaximum: &recvMax}}); err != nil {
		t.Fatal(err)
	}
	if _, err := mon.Subscribe(cctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "sensors/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	if mc, ok := e.b.srv.Clients.Get("monitor"); !ok || mc.Properties.Props.ReceiveMaximum != 0 {
		t.Fatalf("monitor: send quota still on (Receive Maximum %d); want off", mc.Properties.Props.ReceiveMaximum)
	}
	c := e.pki.Issue(t, "load-00")
	for _, step := range []struct{ qos, n int }{{0, 50000}, {1, 20000}} {
		var lines bytes.Buffer
		for i := range step.n {
			fmt.Fprintf(&lines, "x load-00 %d 0\n", i)
		}
		args := append(e.pki.MosqTLSArgs(e.addr, c), "-V", "mqttv311", "-i", "load-00", "-q", fmt.Sprint(step.qos),
			"-t", "sensors/load-00/t", "-l", "-M", "1000")
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
		cmd := exec.CommandContext(ctx, gatewaytest.Need(t, "mosquitto_pub", "mosquitto-clients"), args...)
		cmd.Stdin = &lines
		out, err := cmd.CombinedOutput()
		cancel()
		t.Logf("QoS %d: err %v out %q dropped0 %d dropped1 %d inflightdrop %d bp waits %d timeouts %d", step.qos, err, out,
			e.metrics.DroppedQoS0.Load(), e.metrics.DroppedQoS1.Load(), e.metrics.InflightDropped.Load(),
			e.metrics.BackpressureWaits.Load(), e.metrics.BackpressureTimeouts.Load())
		if err != nil {
			buf := make([]byte, 8<<20)
			buf = buf[:runtime.Stack(buf, true)]
			os.WriteFile("/tmp/st/stack.txt", buf, 0o644)
			t.Fatalf("QoS %d step stalled", step.qos)
		}
	}
}
