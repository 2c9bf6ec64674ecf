package bridge

import (
	"context"
	"crypto/tls"
	"fmt"
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
	t testing.TB

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
}

// startCloud connects a paho client as cloudCN with a persistent session,
// subscribes filter at QoS 1 and reconnects by itself (bounded by the test's
// lifetime) after the broker restarts.
func startCloud(t testing.TB, m *mosquitto, filter string) *cloud {
	t.Helper()
	c := &cloud{t: t, count: map[uint64]int{}, topic: map[uint64]string{}, device: map[uint64]string{},
		order: map[string][]uint64{}, arrivals: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	up := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		first := true
		for ctx.Err() == nil {
			err := c.connectOnce(ctx, m, filter, first, up)
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
func (c *cloud) connectOnce(ctx context.Context, m *mosquitto, filter string, first bool, up chan<- error) error {
	dctx, cf := context.WithTimeout(ctx, 5*time.Second)
	defer cf()
	d := tls.Dialer{Config: m.tlsFor(cloudCN)}
	nc, err := d.DialContext(dctx, "tcp", m.url().Host)
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
	ca, err := cli.Connect(dctx, &paho.Connect{ClientID: cloudCN, KeepAlive: 60, CleanStart: first,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}})
	if err != nil {
		nc.Close()
		return fmt.Errorf("connect: %w", err)
	}
	if !ca.SessionPresent {
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
	var dev, seqs string
	if p.Properties != nil {
		dev = p.Properties.User.Get("device")
		seqs = p.Properties.User.Get("seq")
	}
	seq, err := strconv.ParseUint(seqs, 10, 64)
	c.mu.Lock()
	c.total++
	if p.Duplicate() {
		c.redeliv++
	}
	if err != nil {
		c.noSeq++
	} else {
		c.count[seq]++
		c.topic[seq] = p.Topic
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
