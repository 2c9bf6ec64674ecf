package bridge

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
)

// cloud is the cloud-side test client: it subscribes upstream (persistent
// session, so it survives the broker's restarts) and counts what arrived,
// keyed by the gateway's seq user property.
type cloud struct {
	t  testing.TB
	id cloudIdentity

	cmu sync.Mutex
	cli *paho.Client // current connection, nil while down

	mu       sync.Mutex
	count    map[uint64]int      // seq -> arrivals
	topic    map[uint64]string   // seq -> upstream topic
	device   map[uint64]string   // seq -> device property
	order    map[string][]uint64 // device -> seqs in arrival order
	total    int
	noSeq    int
	redeliv  int // arrivals with DUP set: the broker resending to this subscriber, not the bridge
	arrivals chan struct{}

	// sessionLost lists reconnects (after the first connection) on which the
	// upstream had no session for us: whatever was published while the
	// subscription was missing went nowhere, and the test must not blame the
	// bridge for it.
	sessionLost []time.Time
}

// cloudIdentity is how the cloud-side client reaches the upstream and reads
// the gateway's (device, seq) from a message.
type cloudIdentity struct {
	dial     func(ctx context.Context) (net.Conn, error)
	user     string // MQTT user name and password; "" for certificate identity
	password []byte
	// parse returns the device and seq a message carries and the topic
	// without any envelope levels; ok false when it carries none.
	parse func(p *paho.Publish) (dev string, seq uint64, topic string, ok bool)
}

// userPropsParse reads the MQTT 5 user properties device and seq.
func userPropsParse(p *paho.Publish) (string, uint64, string, bool) {
	if p.Properties == nil {
		return "", 0, p.Topic, false
	}
	seq, err := strconv.ParseUint(p.Properties.User.Get("seq"), 10, 64)
	return p.Properties.User.Get("device"), seq, p.Topic, err == nil
}

// startCloud connects a paho client as cloudCN with a persistent session,
// subscribes filter at QoS 1 and reconnects by itself (bounded by the test's
// lifetime) after the broker restarts.
func startCloud(t testing.TB, m *mosquitto, filter string) *cloud {
	t.Helper()
	return startCloudAs(t, cloudIdentity{
		dial: func(ctx context.Context) (net.Conn, error) {
			d := tls.Dialer{Config: m.tlsFor(cloudCN)}
			return d.DialContext(ctx, "tcp", m.url().Host)
		},
		parse: userPropsParse,
	}, filter)
}

// startCloudAs is startCloud with another identity and envelope.
func startCloudAs(t testing.TB, id cloudIdentity, filter string) *cloud {
	t.Helper()
	c := &cloud{t: t, id: id, count: map[uint64]int{}, topic: map[uint64]string{}, device: map[uint64]string{},
		order: map[string][]uint64{}, arrivals: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	up := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		first := true
		for ctx.Err() == nil {
			err := c.connectOnce(ctx, filter, first, up)
			if first && err != nil {
				up <- err
				return
			}
			first = false
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	select {
	case err := <-up:
		if err != nil {
			cancel()
			t.Fatalf("cloud client: %v", err)
		}
	case <-time.After(15 * time.Second):
		cancel()
		t.Fatalf("cloud client: no connection within 15s")
	}
	t.Cleanup(func() {
		cancel()
		c.cmu.Lock()
		if c.cli != nil {
			_ = c.cli.Disconnect(&paho.Disconnect{})
		}
		c.cmu.Unlock()
		<-done
	})
	return c
}

// connectOnce connects, subscribes when the session is new, and returns
// when the connection ends; on the first call it reports on up once it is up.
func (c *cloud) connectOnce(ctx context.Context, filter string, first bool, up chan<- error) error {
	dctx, cf := context.WithTimeout(ctx, 5*time.Second)
	defer cf()
	nc, err := c.id.dial(dctx)
	if err != nil {
		return err
	}
	cli := paho.NewClient(paho.ClientConfig{
		ClientID: cloudCN,
		Conn:     packets.NewThreadSafeConn(nc),
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			c.record(pr.Packet)
			return true, nil
		}},
	})
	expiry := uint32(3600)
	// Clean Start 0 from the very first connection (each test has a fresh
	// broker, so there is nothing stale to clean): Mosquitto 2.0.11 saves a
	// session in its persistence file on SIGTERM only if the connection that
	// holds it was made with Clean Start 0, session expiry or not. With Clean
	// Start 1 first, the first restart dropped our subscription and the
	// messages queued for it, and everything the bridge published until we
	// resubscribed got PUBACK 0x10 and went nowhere (the flapping test's
	// intermittent "loss").
	ca, err := cli.Connect(dctx, &paho.Connect{ClientID: cloudCN, KeepAlive: 60, CleanStart: false,
		Username: c.id.user, UsernameFlag: c.id.user != "", Password: c.id.password, PasswordFlag: c.id.password != nil,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}})
	if err != nil {
		nc.Close()
		return fmt.Errorf("connect: %w", err)
	}
	if !ca.SessionPresent {
		if !first {
			c.mu.Lock()
			c.sessionLost = append(c.sessionLost, time.Now())
			c.mu.Unlock()
		}
		if _, err := cli.Subscribe(dctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}}); err != nil {
			_ = cli.Disconnect(&paho.Disconnect{})
			return fmt.Errorf("subscribe %q: %w", filter, err)
		}
	}
	c.cmu.Lock()
	c.cli = cli
	c.cmu.Unlock()
	if first {
		up <- nil
	}
	select {
	case <-cli.Done():
	case <-ctx.Done():
	}
	c.clear(cli)
	return nil
}

func (c *cloud) clear(cli *paho.Client) {
	c.cmu.Lock()
	if c.cli == cli {
		c.cli = nil
	}
	c.cmu.Unlock()
}

func (c *cloud) record(p *paho.Publish) {
	dev, seq, topic, ok := c.id.parse(p)
	c.mu.Lock()
	c.total++
	if p.Duplicate() {
		c.redeliv++
	}
	if !ok {
		c.noSeq++
	} else {
		c.count[seq]++
		c.topic[seq] = topic
		c.device[seq] = dev
		c.order[dev] = append(c.order[dev], seq)
	}
	c.mu.Unlock()
	select {
	case c.arrivals <- struct{}{}:
	default:
	}
}

// waitUnique waits until n distinct seqs arrived or timeout passed; it
// returns the distinct count.
func (c *cloud) waitUnique(n int, timeout time.Duration) int {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if u := c.unique(); u >= n {
			return u
		}
		select {
		case <-deadline.C:
			return c.unique()
		case <-c.arrivals:
		case <-tick.C:
		}
	}
}

func (c *cloud) unique() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.count)
}

// report returns (distinct, duplicates the bridge caused, missing among
// want). Arrivals with DUP set are the broker redelivering to this
// subscriber after its own reconnect; they are not counted.
func (c *cloud) report(want []uint64) (distinct, dups int, missing []uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.count {
		dups += n - 1
	}
	dups = max(0, dups-c.redeliv)
	for _, s := range want {
		if c.count[s] == 0 {
			missing = append(missing, s)
		}
	}
	return len(c.count), dups, missing
}

// lostSessions returns the times of reconnects that found no session.
func (c *cloud) lostSessions() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Time(nil), c.sessionLost...)
}

func (c *cloud) publish(topic string, payload []byte) error {
	ctx, cf := context.WithTimeout(context.Background(), 5*time.Second)
	defer cf()
	c.cmu.Lock()
	cli := c.cli
	c.cmu.Unlock()
	if cli == nil {
		return fmt.Errorf("cloud publish %q: not connected", topic)
	}
	resp, err := cli.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: payload})
	if err != nil {
		return fmt.Errorf("cloud publish %q: %w", topic, err)
	}
	if resp != nil && resp.ReasonCode >= 0x80 {
		return fmt.Errorf("cloud publish %q: PUBACK 0x%02x", topic, resp.ReasonCode)
	}
	return nil
}

// TestCloudSessionSurvivesUpstreamRestart checks the harness the loss tests
// stand on: the cloud subscriber's session (subscription and the messages
// queued for it) survives Mosquitto's SIGTERM restart, so a message the
// upstream acknowledged while the subscriber was away still reaches it.
func TestCloudSessionSurvivesUpstreamRestart(t *testing.T) {
	m := startMosquitto(t, mosquittoOpts{})
	c := startCloud(t, m, "sites/#")
	q := newAckTrace(newTestQueue(t))
	b := runBridge(t, testConfig(m, telemetry), q, nil)
	first := enqueueSensors(t, q, 1, 5, time.Now)
	if got := c.waitUnique(len(first), 10*time.Second); got != len(first) {
		t.Fatalf("before the restart: got %d; want %d", got, len(first))
	}
	m.stop()
	m.start()
	more := enqueueSensors(t, q, 1, 5, time.Now)
	all := append(first, more...)
	if got := c.waitUnique(len(all), 10*time.Second); got != len(all) {
		_, _, missing := c.report(all)
		t.Fatalf("after the restart: got %d; want %d; missing %v by cause:%s", got, len(all), missing, q.explain(missing))
	}
	if ls := c.lostSessions(); len(ls) != 0 {
		t.Errorf("subscriber reconnects without a session: %v; want none", ls)
	}
	if st := b.State(); st.NoSubscribers != 0 {
		t.Errorf("PUBACK 0x10 no matching subscribers: got %d; want 0", st.NoSubscribers)
	}
}
