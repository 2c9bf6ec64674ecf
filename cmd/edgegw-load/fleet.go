package main

// The fleet: one goroutine per simulated device that connects over mTLS,
// subscribes as its role allows, publishes telemetry QoS 1 at its rate and
// reconnects whenever its session ends (a gateway restart, a storm).

import (
	"context"
	"crypto/tls"
	"errors"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Fleet runs devices against one gateway address.
type Fleet struct {
	Site    *Site
	Addr    string
	Version string // "3", "5" or "mixed"
	Ledger  *Ledger
	// Upstream, when set, also records every telemetry message: its
	// deliveries are counted by the cloud subscriber behind the bridge.
	Upstream *Ledger
	Cmds     *Ledger // commands, keyed by (target device, seq)
	// Interval between telemetry messages of one device; 0 = no telemetry.
	Interval time.Duration
	Payload  int // bytes
	// Renew, when set, has every device renew its certificate over MQTT once during the
	// run (renew.go).
	Renew *Renewer
	// Misdelivered counts commands a device received that were not its own.
	Misdelivered atomic.Int64

	connected  atomic.Int64
	handshakes atomic.Int64 // failed TLS handshakes (or dials)
	refused    atomic.Int64 // CONNACK refused
	timeouts   atomic.Int64 // PUBACK not within the publish timeout
	paused     atomic.Bool
	devs       []*dev
	wg         sync.WaitGroup
}

type dev struct {
	Device
	version byte
	tls     *tls.Config
	cl      atomic.Pointer[Client]
	seq     atomic.Uint64
	burst   atomic.Int64 // messages to send back to back at the next chance
	ready   atomic.Bool  // subscribed and publishing
	gen     atomic.Int64 // sessions so far
	renewal *devRenewal  // with Fleet.Renew: this device's renewal (renew.go)
}

func (f *Fleet) versionOf(i int) byte {
	switch f.Version {
	case "3", "3.1.1", "4":
		return 4
	case "5":
		return 5
	}
	if i%2 == 0 {
		return 5
	}
	return 4
}

// Connected is the number of devices with a session now.
func (f *Fleet) Connected() int64 { return f.connected.Load() }

// Ready is the number of devices connected and subscribed.
func (f *Fleet) Ready() int {
	n := 0
	for _, d := range f.devs {
		if d.ready.Load() {
			n++
		}
	}
	return n
}

// FailedHandshakes, RefusedConnects, PublishTimeouts are running totals.
func (f *Fleet) FailedHandshakes() int64 { return f.handshakes.Load() }
func (f *Fleet) RefusedConnects() int64  { return f.refused.Load() }
func (f *Fleet) PublishTimeouts() int64  { return f.timeouts.Load() }

// Pause stops (true) or resumes telemetry.
func (f *Fleet) Pause(p bool) { f.paused.Store(p) }

// Start launches one runner per device (all at once: the gateway sees
// len(devices) simultaneous handshakes).
func (f *Fleet) Start(ctx context.Context, devices []Device) error {
	for i, d := range devices {
		tc, err := f.Site.TLSConfig(d.Name)
		if err != nil {
			return err
		}
		nd := &dev{Device: d, version: f.versionOf(i), tls: tc}
		if f.Renew != nil {
			if nd.renewal, err = f.Renew.plan(d, tc); err != nil {
				return err
			}
		}
		f.devs = append(f.devs, nd)
	}
	for _, d := range f.devs {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.run(ctx, d)
		}()
	}
	return nil
}

// Wait waits for every runner to end (after ctx ends).
func (f *Fleet) Wait() { f.wg.Wait() }

// Burst asks every device to send n messages back to back.
func (f *Fleet) Burst(n int) {
	for _, d := range f.devs {
		d.burst.Add(int64(n))
	}
}

// DropAll closes every session without DISCONNECT (a power cut on the LAN).
func (f *Fleet) DropAll() {
	for _, d := range f.devs {
		if c := d.cl.Load(); c != nil {
			c.Drop()
		}
	}
}

// dialError classifies a failed connect.
type dialError struct {
	stage string // "dial", "handshake", "connack", "mqtt"
	err   error
}

func (e *dialError) Error() string { return e.stage + ": " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// Dial opens one mTLS MQTT session as clientID with thing's certificate.
func Dial(ctx context.Context, addr string, tc *tls.Config, o ClientOptions) (*Client, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var nd net.Dialer
	raw, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &dialError{"dial", err}
	}
	tconn := tls.Client(raw, tc)
	if err := tconn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, &dialError{"handshake", err}
	}
	c, err := Connect(ctx, tconn, o)
	if err != nil {
		tconn.Close()
		var ce *ConnackError
		if errors.As(err, &ce) {
			return nil, &dialError{"connack", err}
		}
		// TLS 1.3: a refused client certificate surfaces on the first read.
		return nil, &dialError{"handshake", err}
	}
	return c, nil
}

// DialPlain opens one MQTT session over plain TCP (the loopback upstream).
func DialPlain(ctx context.Context, addr string, o ClientOptions) (*Client, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var nd net.Dialer
	raw, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &dialError{"dial", err}
	}
	c, err := Connect(ctx, raw, o)
	if err != nil {
		raw.Close()
		return nil, &dialError{"mqtt", err}
	}
	return c, nil
}

func (f *Fleet) run(ctx context.Context, d *dev) {
	fails := 0
	for ctx.Err() == nil {
		c, err := Dial(ctx, f.Addr, d.tls, ClientOptions{
			ClientID: d.Name, Version: d.version, Clean: true, Keepalive: 60 * time.Second,
			OnMessage: func(m Message) {
				if d.renewal != nil && d.renewal.onMessage(m) {
					return
				}
				f.onCommand(d, m)
			},
		})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var de *dialError
			if errors.As(err, &de) && de.stage == "connack" {
				f.refused.Add(1)
			} else {
				f.handshakes.Add(1)
			}
			fails++
			// Jittered backoff, capped at 1 s: fast enough for the storm
			// target, spread enough not to synchronise retries.
			sleep(ctx, time.Duration(rand.Int64N(int64(min(fails, 10))*100*int64(time.Millisecond))+int64(10*time.Millisecond)))
			continue
		}
		fails = 0
		if d.renewal != nil {
			d.renewal.connected(f.Renew)
		}
		d.cl.Store(c)
		d.gen.Add(1)
		f.connected.Add(1)
		f.session(ctx, d, c)
		d.ready.Store(false)
		d.cl.Store(nil)
		f.connected.Add(-1)
		if ctx.Err() != nil {
			c.Close()
			return
		}
	}
}

func (f *Fleet) session(ctx context.Context, d *dev, c *Client) {
	if t := d.CmdTopic(); t != "" {
		sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		code, err := c.Subscribe(sctx, t, 1)
		cancel()
		if err != nil || code >= 0x80 {
			c.Drop()
			return
		}
	}
	d.ready.Store(true)
	var tick <-chan time.Time
	if f.Interval > 0 {
		// Random phase so devices do not publish in lockstep.
		first := time.NewTimer(time.Duration(rand.Int64N(int64(f.Interval))))
		defer first.Stop()
		select {
		case <-first.C:
		case <-c.Done():
			return
		case <-ctx.Done():
			return
		}
		t := time.NewTicker(f.Interval)
		defer t.Stop()
		tick = t.C
	}
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	var renewAt <-chan struct{}
	if d.renewal != nil {
		renewAt = d.renewal.timer(f.Renew)
	}
	publish := func() bool {
		if f.paused.Load() {
			return true
		}
		return f.publish(ctx, d, c)
	}
	if f.Interval > 0 && !publish() {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.Done():
			return
		case <-tick:
			if !publish() {
				return
			}
		case <-poll.C:
		case <-renewAt:
			renewAt = d.renewal.timer(f.Renew)
			if !d.renewal.due(f.Renew) {
				continue // the window opened: renewAt is now the device's moment in it
			}
			if tc := f.Renew.renew(ctx, d, c); tc != nil {
				d.tls = tc // the next session is the new certificate's
				c.Close()
				return
			}
			if c.Err() != nil {
				return
			}
			renewAt = d.renewal.timer(f.Renew) // a retry, if any are left
		}
		for d.burst.Load() > 0 && !f.paused.Load() {
			d.burst.Add(-1)
			if !f.publish(ctx, d, c) {
				return
			}
		}
	}
}

// publish sends the next telemetry message QoS 1 and records it; false
// means the session is gone.
func (f *Fleet) publish(ctx context.Context, d *dev, c *Client) bool {
	seq := d.seq.Add(1)
	now := time.Now().UnixNano()
	f.Ledger.Sent(d.Name, seq, now)
	if f.Upstream != nil {
		f.Upstream.Sent(d.Name, seq, now)
	}
	pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	code, err := c.Publish(pctx, d.Topic(), encodePayload(d.Name, seq, now, f.Payload), 1, false)
	cancel()
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			f.timeouts.Add(1)
			c.Drop()
		}
		return false
	}
	f.Ledger.Acked(d.Name, seq, code)
	if f.Upstream != nil {
		f.Upstream.Acked(d.Name, seq, code)
	}
	return true
}

func (f *Fleet) onCommand(d *dev, m Message) {
	dev, seq, _, err := decodePayload(m.Payload)
	if err != nil || dev != d.Name || m.Topic != d.CmdTopic() {
		f.Misdelivered.Add(1)
		return
	}
	if f.Cmds != nil {
		f.Cmds.Delivered(dev, seq, time.Now().UnixNano())
	}
}

// Monitor subscribes to a filter as a service thing and feeds deliveries
// into the ledger: telemetry by (device, seq); anything else is counted.
type Monitor struct {
	c        *Client
	ledger   *Ledger
	probes   *Ledger
	Received atomic.Int64
}

// StartMonitor connects thing (a service thing whose policy may subscribe
// filter) and records every delivery.
func StartMonitor(ctx context.Context, site *Site, addr, thing, filter string, ledger, probes *Ledger) (*Monitor, error) {
	tc, err := site.TLSConfig(thing)
	if err != nil {
		return nil, err
	}
	m := &Monitor{ledger: ledger, probes: probes}
	c, err := Dial(ctx, addr, tc, ClientOptions{ClientID: thing, Version: 5, Clean: true, Keepalive: 60 * time.Second,
		OnMessage: m.onMessage})
	if err != nil {
		return nil, err
	}
	code, err := c.Subscribe(ctx, filter, 1)
	if err != nil || code >= 0x80 {
		c.Close()
		if err == nil {
			err = errors.New("SUBACK refused")
		}
		return nil, err
	}
	m.c = c
	return m, nil
}

func (m *Monitor) onMessage(msg Message) {
	m.Received.Add(1)
	now := time.Now().UnixNano()
	if strings.HasSuffix(msg.Topic, "/cmd") {
		return // commands are counted by their target
	}
	dev, seq, _, err := decodePayload(msg.Payload)
	if err != nil {
		m.ledger.Delivered("?", 0, now) // counted as unknown
		return
	}
	if strings.HasPrefix(dev, "probe:") && m.probes != nil {
		m.probes.Delivered(dev, seq, now)
		return
	}
	m.ledger.Delivered(dev, seq, now)
}

// Close ends the monitor's session.
func (m *Monitor) Close() { m.c.Close() }

// Err is non-nil when the monitor's session ended.
func (m *Monitor) Err() error { return m.c.Err() }

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
