package bridge

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
)

// fakeUpstream is a hand-written MQTT 5 server for what Mosquitto cannot
// show: it announces a chosen Receive Maximum and records, per connection,
// how many QoS 1 publishes were unacknowledged at once (Mosquitto 2.0.11
// does not enforce Receive Maximum for QoS 1), and which seq every PUBACK it
// sent stood for, and when. It acknowledges in reverse order (PUBACKs may
// come in any order) and plays the scripted faults of each connection.
type fakeUpstream struct {
	t       testing.TB
	ln      net.Listener
	recvMax uint16
	script  func(conn int) connScript

	mu          sync.Mutex
	conns       int
	maxOut      int                    // most unacknowledged publishes seen on one connection
	violations  []string               // protocol violations by the bridge
	pubacked    map[uint64][]time.Time // seq -> times of success PUBACKs sent for it
	stale       []uint16               // ids unacknowledged when the last connection was cut
	stalePhases int                    // connections on which stale PUBACKs were sent
	received    int
}

// connScript is what one connection does.
type connScript struct {
	ackFirst int // acknowledge only the first ackFirst publishes (-1: all) ...
	cutAfter int // ... and cut the connection once this many publishes arrived (0: never)
	// sendStale: once the window is full, send PUBACKs for the identifiers
	// left unacknowledged on the previous (cut) connection, wait, then go on.
	// A compliant server never does this; a bridge that reused those
	// identifiers would acknowledge different messages on them.
	sendStale bool
	closeAll  bool // at the cut, also stop listening (failover to the next upstream)
}

func startFakeUpstream(t testing.TB, recvMax uint16, script func(conn int) connScript) *fakeUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeUpstream{t: t, ln: ln, recvMax: recvMax, script: script, pubacked: map[uint64][]time.Time{}}
	done := make(chan struct{})
	var wg sync.WaitGroup
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns++
			n := f.conns
			f.mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); f.serve(c, f.script(n)) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done; wg.Wait() })
	return f
}

func (f *fakeUpstream) url() *url.URL { return &url.URL{Scheme: "mqtt", Host: f.ln.Addr().String()} }

func (f *fakeUpstream) violate(format string, args ...any) {
	f.mu.Lock()
	f.violations = append(f.violations, fmt.Sprintf(format, args...))
	f.mu.Unlock()
}

func (f *fakeUpstream) serve(c net.Conn, sc connScript) {
	defer c.Close()
	stop := make(chan struct{})
	defer close(stop)
	go func() { // a test must end by itself: cleanup closes the listener, this the conn
		select {
		case <-stop:
		case <-time.After(30 * time.Second):
			c.Close()
		}
	}()
	pk, err := packets.ReadPacket(c)
	if err != nil {
		return
	}
	if _, ok := pk.Content.(*packets.Connect); !ok {
		f.violate("first packet %s, not CONNECT", pk.PacketType())
		return
	}
	rm := f.recvMax
	if _, err := (&packets.Connack{SessionPresent: true, Properties: &packets.Properties{ReceiveMaximum: &rm}}).WriteTo(c); err != nil {
		return
	}
	var (
		wmu         sync.Mutex
		outstanding = map[uint16]uint64{} // id -> seq
		order       []uint16
		count       int
		staleDone   = !sc.sendStale
	)
	puback := func(id uint16) error {
		_, err := c.Write([]byte{packets.PUBACK << 4, 2, byte(id >> 8), byte(id)})
		return err
	}
	ackOne := func(id uint16) bool {
		seq := outstanding[id]
		delete(outstanding, id)
		// Recorded before the write: a bridge ack must never precede it.
		f.mu.Lock()
		f.pubacked[seq] = append(f.pubacked[seq], time.Now())
		f.mu.Unlock()
		wmu.Lock()
		err := puback(id)
		wmu.Unlock()
		return err == nil
	}
	for {
		pk, err := packets.ReadPacket(c)
		if err != nil {
			return
		}
		switch p := pk.Content.(type) {
		case *packets.Pingreq:
			wmu.Lock()
			_, _ = c.Write([]byte{packets.PINGRESP << 4, 0})
			wmu.Unlock()
			continue
		case *packets.Disconnect:
			return
		case *packets.Publish:
			if p.QoS != 1 {
				f.violate("PUBLISH QoS %d; want 1", p.QoS)
				return
			}
			if _, dup := outstanding[p.PacketID]; dup {
				f.violate("packet id %d reused while in flight", p.PacketID)
			}
			var seqProp string
			if p.Properties != nil {
				for _, u := range p.Properties.User {
					if u.Key == "seq" {
						seqProp = u.Value
					}
				}
			}
			seq, err := strconv.ParseUint(seqProp, 10, 64)
			if err != nil {
				f.violate("PUBLISH without a seq property")
			}
			outstanding[p.PacketID] = seq
			order = append(order, p.PacketID)
			count++
			f.mu.Lock()
			f.received++
			if len(outstanding) > int(f.recvMax) {
				f.violations = append(f.violations, fmt.Sprintf("%d publishes unacknowledged; Receive Maximum %d [MQTT-3.3.4-9]", len(outstanding), f.recvMax))
			}
			f.maxOut = max(f.maxOut, len(outstanding))
			f.mu.Unlock()
		default:
			f.violate("unexpected %s", pk.PacketType())
			return
		}
		if !staleDone && len(outstanding) == int(f.recvMax) {
			staleDone = true
			f.mu.Lock()
			stale := f.stale
			f.stalePhases++
			f.mu.Unlock()
			wmu.Lock()
			for _, id := range stale {
				_ = puback(id)
			}
			wmu.Unlock()
			time.Sleep(100 * time.Millisecond) // let the bridge act on them, if it would
		}
		if sc.cutAfter > 0 && count >= sc.cutAfter {
			var left []uint16
			for id := range outstanding {
				left = append(left, id)
			}
			slices.Sort(left)
			f.mu.Lock()
			f.stale = left
			f.mu.Unlock()
			if sc.closeAll {
				f.ln.Close()
			}
			return
		}
		if !staleDone {
			continue
		}
		// Acknowledge what is outstanding, newest first (out of order),
		// within this connection's script.
		if sc.ackFirst >= 0 && count > sc.ackFirst {
			continue
		}
		for i := len(order) - 1; i >= 0; i-- {
			if _, ok := outstanding[order[i]]; ok && !ackOne(order[i]) {
				return
			}
		}
		order = order[:0]
	}
}

// TestWindowAndPacketIDsAcrossReconnectAndFailover: upstream A announces
// Receive Maximum 5, B 13, our Inflight is 256. A's first connection
// acknowledges 3 messages and is cut with a full window unacknowledged; its
// second connection first sends PUBACKs for the identifiers left over from
// the first (a broker bug or a confused proxy), then works, then A goes away
// for good and the bridge fails over to B. Every message must be
// acknowledged to the queue only after a PUBACK for that very seq, never more
// than the server's Receive Maximum may be unacknowledged, and all arrive.
func TestWindowAndPacketIDsAcrossReconnectAndFailover(t *testing.T) {
	a := startFakeUpstream(t, 5, func(conn int) connScript {
		switch conn {
		case 1:
			return connScript{ackFirst: 3, cutAfter: 8}
		default:
			return connScript{ackFirst: -1, cutAfter: 40, sendStale: true, closeAll: true}
		}
	})
	bFake := startFakeUpstream(t, 13, func(int) connScript { return connScript{ackFirst: -1} })
	q := newAckTrace(newTestQueue(t))
	sent := enqueueSensors(t, q, 4, 50, time.Now)
	cfg := Config{
		Upstreams:      []Upstream{{URL: a.url()}, {URL: bFake.url()}},
		ClientID:       gatewayCN,
		KeepAlive:      5 * time.Second,
		ConnectTimeout: 2 * time.Second,
		BackoffMin:     20 * time.Millisecond,
		BackoffMax:     100 * time.Millisecond,
		Inflight:       256,
		UserProps:      UserProps{DeviceKey: "device", SeqKey: "seq"},
		Routes:         []Route{telemetry},
	}
	b := runBridge(t, cfg, q, nil)
	eventually(t, 20*time.Second, "every message acknowledged to the queue", func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		return len(q.acked) == len(sent)
	})
	eventually(t, 5*time.Second, "the window of upstream B", func() bool { return b.State().Window == 13 })

	for _, f := range []*fakeUpstream{a, bFake} {
		f.mu.Lock()
		if len(f.violations) > 0 {
			t.Errorf("upstream (Receive Maximum %d): %d violations, first: %v", f.recvMax, len(f.violations), f.violations[:min(3, len(f.violations))])
		}
		if f.maxOut > int(f.recvMax) || f.maxOut == 0 {
			t.Errorf("upstream (Receive Maximum %d): at most %d unacknowledged; want 1..%d", f.recvMax, f.maxOut, f.recvMax)
		}
		f.mu.Unlock()
	}
	a.mu.Lock()
	if a.stalePhases == 0 || a.conns < 2 {
		t.Errorf("upstream A: %d connections, stale PUBACKs sent on %d; want >= 2, >= 1 (the script did not run)", a.conns, a.stalePhases)
	}
	a.mu.Unlock()

	// The core promise: an ack to the queue only after a PUBACK for that
	// seq (a PUBACK for a stale identifier must match nothing).
	q.mu.Lock()
	for _, seq := range sent {
		at, ok := q.acked[seq]
		if !ok {
			t.Errorf("seq %d never acknowledged to the queue", seq)
			continue
		}
		var first time.Time
		for _, f := range []*fakeUpstream{a, bFake} {
			f.mu.Lock()
			for _, pt := range f.pubacked[seq] {
				if first.IsZero() || pt.Before(first) {
					first = pt
				}
			}
			f.mu.Unlock()
		}
		if first.IsZero() || at.Before(first) {
			t.Errorf("seq %d acknowledged to the queue at %s, before any upstream PUBACK for it (first %s): a PUBACK was attributed to the wrong message",
				seq, at.Format("15:04:05.000000"), first.Format("15:04:05.000000"))
		}
	}
	q.mu.Unlock()
	st := b.State()
	if st.UnknownPubacks == 0 {
		t.Errorf("unknown PUBACKs: got 0; want the stale ones counted and ignored")
	}
	t.Logf("sent %d, resent %d, reconnects %d, unknown PUBACKs %d, window %d", st.Sent, st.Resent, st.Reconnects, st.UnknownPubacks, st.Window)
}
