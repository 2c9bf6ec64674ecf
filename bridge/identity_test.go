package bridge

import (
	"context"
	"crypto/tls"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// TestSwapIdentityLosesNothing swaps the bridge's certificate (a new key,
// issued by the upstream's CA) while 20,000 QoS 1 messages flow: the bridge
// reconnects once, under the new certificate, and every message arrives.
// A certificate from a CA the upstream does not trust is then refused, and
// the bridge comes back under the previous one.
func TestSwapIdentityLosesNothing(t *testing.T) {
	m := startMosquitto(t, mosquittoOpts{maxInflight: 1000})
	c := startCloud(t, m, "sites/#")
	q := newTestQueue(t)
	b := runBridge(t, testConfig(m, telemetry), q, nil)
	eventually(t, 10*time.Second, "bridge connected", func() bool { return b.State().Connected })

	done := make(chan []uint64, 1)
	go func() { done <- enqueueSensors(t, q, 10, 2000, time.Now) }()
	eventually(t, 30*time.Second, "some messages acknowledged", func() bool { return b.State().Acked > 1000 })

	next := m.pki.Issue(t, gatewayCN)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := b.SwapIdentity(ctx, next.TLS); err != nil {
		t.Fatalf("SwapIdentity: %v", err)
	}
	if got := b.Identity().Leaf; got == nil || !got.Equal(next.Cert) {
		t.Fatalf("Identity after the swap is not the new certificate")
	}
	seqs := <-done
	if got := c.waitUnique(len(seqs), 60*time.Second); got != len(seqs) {
		t.Fatalf("arrived upstream: %d distinct; want %d", got, len(seqs))
	}
	distinct, dups, missing := c.report(seqs)
	st := b.State()
	t.Logf("across the swap: %d distinct, %d duplicates (resent %d), reconnects %d", distinct, dups, st.Resent, st.Reconnects)
	if len(missing) != 0 {
		t.Errorf("missing %d messages", len(missing))
	}
	if st.Reconnects != 1 {
		t.Errorf("reconnects: %d; want 1 (the swap)", st.Reconnects)
	}
	if uint64(dups) > st.Resent {
		t.Errorf("duplicates %d exceed what the bridge resent (%d)", dups, st.Resent)
	}

	// An identity the upstream refuses: the swap fails, the old one is back.
	stranger := gatewaytest.NewPKI(t, "stranger").Issue(t, gatewayCN)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel2()
	err := b.SwapIdentity(ctx2, stranger.TLS)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("SwapIdentity to an untrusted certificate: %v; want a deadline error", err)
	}
	eventually(t, 10*time.Second, "connected again under the previous identity", func() bool { return b.State().Connected })
	if got := b.Identity().Leaf; got == nil || !got.Equal(next.Cert) {
		t.Errorf("Identity after the refused swap is not the previous certificate")
	}
}

// TestCallOverLiveConnection runs a request/response exchange over the
// bridge's connection against a responder on the upstream; the response
// does not reach the local broker, and the bridge's routes keep working.
func TestCallOverLiveConnection(t *testing.T) {
	up := gatewaytest.NewUpstream(t, gatewaytest.UpstreamOptions{Topics: []string{"$aws/#"}})
	m := newMosquitto(up.Mosquitto, up.PKI, up.Gateway, up.Cloud)
	var asked atomic.Int32
	startResponder(t, m, "$aws/test/request", func(p []byte) (string, []byte) {
		asked.Add(1)
		return "$aws/test/request/accepted", append([]byte("re:"), p...)
	})
	pub := newRecPublisher()
	b := runBridge(t, testConfig(m, telemetry), newTestQueue(t), pub)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	eventually(t, 10*time.Second, "bridge connected", func() bool { return b.State().Connected })
	topic, payload, err := b.Call(ctx, "$aws/test/request", []byte("hello"), []string{"$aws/test/request/accepted", "$aws/test/request/rejected"})
	if err != nil {
		t.Fatalf("Call: %v", err)
	}
	if topic != "$aws/test/request/accepted" || string(payload) != "re:hello" {
		t.Fatalf("response %q %q; want $aws/test/request/accepted re:hello", topic, payload)
	}
	if n := len(pub.all()); n != 0 {
		t.Errorf("local publishes: %d; want 0 (responses are the caller's)", n)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel2()
	if _, _, err := b.Call(ctx2, "$aws/test/nobody", nil, []string{"$aws/test/nobody/accepted"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Call nobody answers: %v; want a deadline error", err)
	}
}

// startResponder connects a paho client as the cloud, subscribes topic and
// answers every request with answer's (topic, payload).
func startResponder(t *testing.T, m *mosquitto, topic string, answer func([]byte) (string, []byte)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := (&tls.Dialer{Config: m.tlsFor(cloudCN)}).DialContext(ctx, "tcp", m.url().Host)
	if err != nil {
		t.Fatal(err)
	}
	var cli *paho.Client
	cli = paho.NewClient(paho.ClientConfig{
		ClientID: "responder",
		Conn:     packets.NewThreadSafeConn(nc),
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			tp, p := answer(pr.Packet.Payload)
			go func() {
				pctx, pc := context.WithTimeout(context.Background(), 5*time.Second)
				defer pc()
				_, _ = cli.Publish(pctx, &paho.Publish{Topic: tp, QoS: 1, Payload: p})
			}()
			return true, nil
		}},
	})
	if _, err := cli.Connect(ctx, &paho.Connect{ClientID: "responder", KeepAlive: 30, CleanStart: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Disconnect(&paho.Disconnect{}) })
	if _, err := cli.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
}
