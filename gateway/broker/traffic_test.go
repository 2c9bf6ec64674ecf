package broker

import (
	"testing"
)

// TestTrafficCounts: the message counters by listener and QoS count what
// was read and what mochi wrote, by the hook (traffic.go): PUBLISHes read
// from sensor-a on "lan" at QoS 0 and 1 (a refused one, DUP on QoS 0, is
// not counted), and their deliveries to the monitor; the plaintext
// listener saw nothing.
func TestTrafficCounts(t *testing.T) {
	e := newEnv(t, nil)
	mon, err := e.connectV5(t, e.pki.Issue(t, "monitor"), "monitor")
	if err != nil {
		t.Fatal(err)
	}
	mon.Subscribe(t, "sensors/#", 1)
	a, err := e.connectV5(t, e.pki.Issue(t, "sensor-a"), "sensor-a")
	if err != nil {
		t.Fatal(err)
	}
	for _, qos := range []byte{1, 0, 1} {
		if _, err := a.Publish(t, "sensors/sensor-a/t", qos, false, "12345"); err != nil {
			t.Fatal(err)
		}
		mon.ExpectOnly(t, "sensors/sensor-a/t")
	}
	b := e.rawConnect(t, "sensor-b", 4)
	if _, err := b.conn.Write(pkt(0x38, str("sensors/sensor-b/t"), []byte("x"))); err != nil { // QoS 0 with DUP: refused [MQTT-3.3.1-2]
		t.Fatal(err)
	}
	if _, err := b.read(t); err == nil {
		t.Fatal("a QoS 0 PUBLISH with DUP set was answered; want the connection closed")
	}
	want := map[string][3]TrafficSample{
		"lan": {
			{Listener: "lan", QoS: 0, Received: 1, ReceivedBytes: 5, Sent: 1, SentBytes: 5},
			{Listener: "lan", QoS: 1, Received: 2, ReceivedBytes: 10, Sent: 2, SentBytes: 10},
			{Listener: "lan", QoS: 2},
		},
		"local": {{Listener: "local"}, {Listener: "local", QoS: 1}, {Listener: "local", QoS: 2}},
	}
	got := e.b.Traffic().Snapshot()
	if len(got) != 6 {
		t.Fatalf("got %d samples; want 6 (2 listeners x 3 QoS): %+v", len(got), got)
	}
	for _, s := range got {
		if w := want[s.Listener][s.QoS]; s != w {
			t.Errorf("got %+v; want %+v", s, w)
		}
	}
}
