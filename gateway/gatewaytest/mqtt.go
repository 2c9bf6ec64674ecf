package gatewaytest

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	pahopackets "github.com/eclipse/paho.golang/packets"

	"github.com/eclipse/paho.golang/paho"
)

// V5 is a paho (MQTT 5) client with its received messages, for tests that
// talk to the gateway's broker.
type V5 struct {
	C    *paho.Client
	Ack  *paho.Connack      // the CONNACK (may carry a refusal)
	Msgs chan *paho.Publish // messages received
	Gone chan struct{}      // closed when the server disconnects or the connection fails
}

// ConnectV5 sends an MQTT 5 CONNECT (clean start) over conn and returns the
// client; the connection is closed when the test ends.
func ConnectV5(t testing.TB, conn net.Conn, clientID string) (*V5, error) {
	cl := &V5{Msgs: make(chan *paho.Publish, 100000), Gone: make(chan struct{})}
	var once sync.Once
	cl.C = paho.NewClient(paho.ClientConfig{
		// paho writes a packet in several Writes and serializes them only
		// on a sync.Locker conn: without it a PUBACK can land inside a
		// SUBSCRIBE and the broker rightly reads a malformed packet.
		Conn: pahopackets.NewThreadSafeConn(conn),
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			cl.Msgs <- pr.Packet
			return true, nil
		}},
		OnClientError:      func(error) { once.Do(func() { close(cl.Gone) }) },
		OnServerDisconnect: func(*paho.Disconnect) { once.Do(func() { close(cl.Gone) }) },
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := cl.C.Connect(ctx, &paho.Connect{ClientID: clientID, KeepAlive: 30, CleanStart: true})
	cl.Ack = ack
	if err != nil {
		conn.Close()
		return cl, err
	}
	t.Cleanup(func() { _ = cl.C.Disconnect(&paho.Disconnect{}); conn.Close() })
	return cl, nil
}

// Subscribe subscribes to one filter and returns its reason code.
func (c *V5) Subscribe(t testing.TB, filter string, qos byte) byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sa, err := c.C.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: qos}}})
	if sa == nil {
		t.Fatalf("subscribe %q: %v", filter, err)
	}
	return sa.Reasons[0]
}

// Publish publishes and returns the PUBACK reason code (0 for QoS 0).
func (c *V5) Publish(t testing.TB, topic string, qos byte, retain bool, payload string) (byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := c.C.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Retain: retain, Payload: []byte(payload)})
	if r != nil {
		return r.ReasonCode, err
	}
	return 0, err
}

// ExpectOnly waits for a message on topic and fails if another arrives first.
func (c *V5) ExpectOnly(t testing.TB, topic string) *paho.Publish {
	t.Helper()
	select {
	case m := <-c.Msgs:
		if m.Topic != topic {
			t.Fatalf("received %q (payload %q); want only %q", m.Topic, m.Payload, topic)
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatalf("no message on %q within 10s", topic)
	}
	return nil
}
