package listen

import (
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegw/edgegw/gateway/broker/wire"
)

// Guard wraps a TCP listener with the hardening mochi lacks:
//
//   - every accepted connection gets one deadline covering the TLS handshake
//     and the MQTT CONNECT packet (handshake_timeout). mochi reads CONNECT
//     without a deadline of its own; right after the OnConnect hooks it calls
//     Client.refreshDeadline(keepalive), which replaces ours with the
//     keepalive deadline (1.5 x keepalive, or none for keepalive 0). So the
//     deadline ends exactly when CONNECT has been read; nothing needs clearing.
//   - at most maxPending connections may be between accept and CONNECT,
//     shared per source address (admission.go); an excess connection is
//     closed at once and counted.
//   - the TLS handshake runs here, concurrently per connection, so mochi's
//     listener only ever sees connections whose client certificate verified.
//
// Accept returns *Conn values; their ConnectionState gives the verified
// chain to the hook.
type Guard struct {
	inner     net.Listener
	tls       func() *tls.Config // nil: plaintext
	timeout   time.Duration
	adm       *Admission // the pending-handshake budget (admission.go)
	out       chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
	metrics   *Counters
	onFail    func(remote string, err error) // handshake failure (audit)
	maxPacket uint32                         // the Maximum Packet Size the scanners enforce
	wg        sync.WaitGroup
}

func NewGuard(inner net.Listener, tlsConf func() *tls.Config, timeout time.Duration, maxPacket uint32, adm *Admission, m *Counters, onFail func(string, error)) *Guard {
	l := &Guard{
		maxPacket: maxPacket,
		inner:     inner,
		tls:       tlsConf,
		timeout:   timeout,
		adm:       adm,
		out:       make(chan net.Conn),
		done:      make(chan struct{}),
		metrics:   m,
		onFail:    onFail,
	}
	l.wg.Add(1)
	go l.acceptLoop()
	return l
}

func (l *Guard) acceptLoop() {
	defer l.wg.Done()
	var backoff time.Duration
	for {
		c, err := l.inner.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary errors (EMFILE...): back off, bounded, like net/http.
			select {
			case <-l.done:
				return
			default:
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		gc := &Conn{Conn: c, src: sourceAddr(c), scan: wire.NewScanner(l.maxPacket)}
		gc.release = func() { l.adm.release(gc) }
		if !l.adm.admit(gc.src, gc) {
			_ = c.Close()
			continue
		}
		l.wg.Add(1)
		go l.handshake(gc)
	}
}

func (l *Guard) handshake(gc *Conn) {
	defer l.wg.Done()
	raw := gc.Conn
	deadline := time.Now().Add(l.timeout)
	_ = raw.SetDeadline(deadline)
	if l.tls != nil {
		tc := tls.Server(&readAhead{Conn: raw}, l.tls()) // readahead.go
		// The conn deadline bounds the handshake. No context deadline: its
		// interrupt would close the conn before the failure is counted, so
		// a client could see the close before the metric moved.
		err := tc.Handshake()
		if err != nil {
			l.metrics.HandshakeFailures.Add(1)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				l.metrics.HandshakeTimeouts.Add(1)
			}
			if l.onFail != nil {
				l.onFail(raw.RemoteAddr().String(), err)
			}
			_ = tc.Close()
			gc.Done()
			return
		}
		gc.Conn = tc
		gc.tls = tc
	}
	l.adm.prove(gc.src) // a handshake completed (on plaintext: nothing to complete)
	select {
	case l.out <- gc:
	case <-l.done:
		_ = gc.Close()
	}
}

// Accept returns the next connection whose TLS handshake succeeded.
func (l *Guard) Accept() (net.Conn, error) {
	select {
	case c := <-l.out:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting; connections in handshake are closed.
func (l *Guard) Close() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.done)
		err = l.inner.Close()
	})
	return err
}

// Wait returns once the accept loop and the handshakes it started have
// ended (after Close).
func (l *Guard) Wait() { l.wg.Wait() }

func (l *Guard) Addr() net.Addr { return l.inner.Addr() }

// Conn is a connection between accept and CONNECT. done releases its
// pending slot; the broker hook calls it once CONNECT has been read, Close
// calls it otherwise.
type Conn struct {
	net.Conn
	tls     *tls.Conn // nil on plaintext listeners
	src     netip.Addr
	release func()
	// scan judges the packets as mochi reads them (wire); only the
	// goroutine reading the connection touches it.
	scan     *wire.Scanner
	tooLarge atomic.Bool // an MQTT 5 client announced a packet over the limit
	once     sync.Once
	closed   atomic.Bool
	deadline atomic.Int64 // the last deadline passed on (Unix ns; 0: none)
	owner    atomic.Pointer[owner]
}

type owner struct{ v any }

// SetOwner attaches v, opaque to this package, to the connection (nil
// detaches it): the broker keeps its state of the client here once its
// CONNECT is accepted, where every hook call finds it with one load.
func (c *Conn) SetOwner(v any) {
	if v == nil {
		c.owner.Store(nil)
		return
	}
	c.owner.Store(&owner{v})
}

// Owner is what SetOwner attached (nil: nothing).
func (c *Conn) Owner() any {
	if o := c.owner.Load(); o != nil {
		return o.v
	}
	return nil
}

// SetDeadline passes mochi's keep-alive deadline on, coarsely. mochi sets
// it (1.5 x keepalive from now) before every packet it reads, and each call
// re-arms the connection's read and write timers: about 2% of the gateway's
// CPU under load. A deadline that only moves later by less than 1/16 of
// its distance from now (at most a second) is not passed on, so the
// connection times out at most that much before mochi's deadline. A zero
// (no deadline) or earlier deadline always is.
func (c *Conn) SetDeadline(t time.Time) error {
	if t.IsZero() {
		c.deadline.Store(0)
		return c.Conn.SetDeadline(t)
	}
	next := t.UnixNano()
	if last := c.deadline.Load(); last != 0 && next >= last {
		if slack := min(time.Until(t)/16, time.Second); time.Duration(next-last) < slack {
			return nil
		}
	}
	c.deadline.Store(next)
	return c.Conn.SetDeadline(t)
}

// Done marks the connection's CONNECT read: it is no longer pending
// (admission). Idempotent.
func (c *Conn) Done() { c.once.Do(c.release) }

// Read hands what it reads to the scanner too.
func (c *Conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.scan.Feed(p[:n])
		if c.scan.TooLarge() {
			c.tooLarge.Store(true)
		}
	}
	return n, err
}

// Verdict is the scanner's verdict on the packet mochi just decoded (nil:
// nothing wrong it can see). Called once per packet, from OnPacketRead.
func (c *Conn) Verdict() *wire.Problem { return c.scan.Next() }

// ConnectionState is that of the TLS connection (zero on plaintext).
func (c *Conn) ConnectionState() tls.ConnectionState {
	if c.tls == nil {
		return tls.ConnectionState{}
	}
	return c.tls.ConnectionState()
}

// Close closes the connection. After an MQTT 5 packet over the Maximum
// Packet Size, it first sends DISCONNECT 0x95 Packet too large: mochi's
// reader refuses the packet (ErrPacketTooLarge) and closes the connection
// without a word, so this is the first moment the packets read before it
// have been handled (their acknowledgements went out before the
// DISCONNECT), and the last one to tell the client. The write is bounded
// by a one-second deadline.
func (c *Conn) Close() error {
	c.Done()
	if c.closed.Swap(true) {
		return nil
	}
	if c.tooLarge.Load() {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = c.Conn.Write([]byte{0xE0, 0x01, wire.PacketTooLarge})
	}
	return c.Conn.Close()
}
