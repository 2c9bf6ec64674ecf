package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// ackEdge is the publishers' ceiling: an in-process mTLS MQTT endpoint that
// answers CONNECT and acknowledges every QoS 1 PUBLISH, storing and
// forwarding nothing. It is not an edge anyone would run: it shows how fast
// the benchmark's mosquitto_pub publishers can go at all on this machine, so
// the e2e ratios can be read against it.
//
// Its PUBACKs go out every ackTick, all that arrived meanwhile in one write,
// as a group commit releases them. That pace is the publisher's best case:
// mosquitto_pub's network thread also writes every PUBLISH, and each wake-up
// for a few PUBACKs costs it more than the PUBACKs. Measured here with one
// publisher: about 50k msg/s at 15-17 µs of its CPU per message when every
// read was acknowledged at once, 70-79k msg/s at 9-11 µs with PUBACKs every
// 250 µs, 500 µs, 1 ms or 2 ms alike.
//
// With a forwarder (startFwdEdge) it is the forwarding ceiling: every QoS 1
// PUBLISH also goes to the upstream, as the bench's routes send it, before
// its PUBACK is owed. Nothing is stored, so it shows what an edge that
// costs nothing but the forwarding could reach against the same upstream and
// counter: the room left for an edge's own work.
type ackEdge struct {
	ln    net.Listener
	pki   *gatewaytest.PKI
	fwd   *forwarder // nil: acknowledge only
	acked atomic.Int64
	wg    sync.WaitGroup
}

func (e *ackEdge) name() string {
	if e.fwd != nil {
		return "fwd-only"
	}
	return "ack-only"
}
func (e *ackEdge) addr() string                                    { return e.ln.Addr().String() }
func (e *ackEdge) site() *gatewaytest.PKI                          { return e.pki }
func (e *ackEdge) pid() int                                        { return 0 }
func (e *ackEdge) cert(b *testing.B, s string) *gatewaytest.Client { return e.pki.Issue(b, s) }
func (e *ackEdge) stop() {
	e.ln.Close()
	if e.fwd != nil {
		e.fwd.close() // a connection waiting for a window slot gives up
	}
	e.wg.Wait()
}

func startAckEdge(b *testing.B, pki *gatewaytest.PKI) *ackEdge {
	return startEdge(b, pki, nil)
}

// startFwdEdge is startAckEdge forwarding to up (see ackEdge).
func startFwdEdge(b *testing.B, pki *gatewaytest.PKI, up *gatewaytest.Upstream) *ackEdge {
	return startEdge(b, pki, dialForwarder(b, up))
}

func startEdge(b *testing.B, pki *gatewaytest.PKI, fwd *forwarder) *ackEdge {
	cert, err := tls.LoadX509KeyPair(pki.ServerCert, pki.ServerKey)
	if err != nil {
		b.Fatal(err)
	}
	caPEM, err := os.ReadFile(pki.CAFile)
	if err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert},
		ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12})
	if err != nil {
		b.Fatal(err)
	}
	e := &ackEdge{ln: ln, pki: pki, fwd: fwd}
	e.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.wg.Go(func() { e.serve(c) })
		}
	})
	b.Cleanup(e.stop)
	return e
}

// ackTick is how often the ack-only edge writes the PUBACKs it owes.
const ackTick = time.Millisecond

// serve reads MQTT 3.1.1 packets until DISCONNECT or an error; a second
// goroutine writes the PUBACKs every ackTick.
func (e *ackEdge) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Minute))
	var (
		mu   sync.Mutex
		owed []byte     // encoded, not written yet
		wmu  sync.Mutex // one write() at a time: PUBACKs stay in order
	)
	owe := func(b ...byte) {
		mu.Lock()
		owed = append(owed, b...)
		mu.Unlock()
	}
	write := func() error {
		wmu.Lock()
		defer wmu.Unlock()
		if e.fwd != nil {
			if err := e.fwd.flush(); err != nil {
				return err
			}
		}
		mu.Lock()
		out := owed
		owed = nil
		mu.Unlock()
		if len(out) == 0 {
			return nil
		}
		_, err := c.Write(out)
		return err
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(ackTick)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if write() != nil {
					c.Close() // the reader's next read fails
					return
				}
			}
		}
	})
	defer wg.Wait()
	defer close(done)
	r := bufio.NewReaderSize(c, 64<<10)
	var body []byte
	for {
		h, err := r.ReadByte()
		if err != nil {
			return
		}
		n, mul := 0, 1
		for i := 0; ; i++ {
			x, err := r.ReadByte()
			if err != nil || i == 4 {
				return
			}
			n += int(x&127) * mul
			mul *= 128
			if x < 128 {
				break
			}
		}
		if cap(body) < n {
			body = make([]byte, n)
		}
		body = body[:n]
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		switch h >> 4 {
		case 1: // CONNECT: answered at once
			if _, err := c.Write([]byte{0x20, 2, 0, 0}); err != nil {
				return
			}
		case 3: // PUBLISH
			if qos := h >> 1 & 3; qos == 1 && n >= 2 {
				tl := int(body[0])<<8 | int(body[1])
				if n < tl+4 {
					return
				}
				if e.fwd != nil {
					if e.fwd.publish(body[2:2+tl], body[4+tl:]) != nil {
						return // no PUBACK for what was not forwarded
					}
				}
				owe(0x40, 2, body[2+tl], body[3+tl])
			}
			e.acked.Add(1)
		case 12: // PINGREQ
			owe(0xd0, 0)
		case 14: // DISCONNECT
			_ = write()
			return
		}
	}
}

// publisherCeiling runs the e2e publisher sets against an ack-only edge:
// the median msg/s of benchRounds runs, for 1 and for 16 publishers.
func publisherCeiling(b *testing.B, pki *gatewaytest.PKI) (tp1, tp16 float64) {
	e := startAckEdge(b, pki)
	defer e.stop()
	for _, tc := range []struct {
		pubs, per int
		out       *float64
	}{{1, benchTP1, &tp1}, {16, benchTP16Per, &tp16}} {
		var runs []e2eRun
		for range benchRounds {
			e.acked.Store(0)
			start := time.Now()
			if err := publishN(b, e, "ceiling", "sensors", tc.pubs, tc.per, 1); err != nil {
				b.Fatal(err)
			}
			runs = append(runs, e2eRun{tp: float64(e.acked.Load()) / time.Since(start).Seconds()})
		}
		*tc.out = medianRun(runs).tp
		benchLog(e.name(), "%2d publisher(s): %.0f msg/s acknowledged (median of %d)", tc.pubs, *tc.out, benchRounds)
	}
	return tp1, tp16
}

// forwarder is the forwarding ceiling's one upstream connection: MQTT 3.1.1
// under the gateway's certificate, QoS 1 PUBLISHes to sites/plant-7/<topic>
// (the bench's route), up to fwdWindow unacknowledged. The publishers'
// connections flush it every ackTick, before their PUBACKs (and when the
// window is full): one write per tick, as edgegw's bridge writes a commit's
// messages, and no timer while no publisher is connected.
type forwarder struct {
	c     net.Conn
	mu    sync.Mutex // w, id
	w     *bufio.Writer
	id    uint16
	slots chan struct{}
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

// fwdWindow: edgegw's in-flight window in the bench (its default lowered to
// the upstream's max_inflight_messages).
const fwdWindow = 1000

func dialForwarder(b *testing.B, up *gatewaytest.Upstream) *forwarder {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", up.Addr, up.PKI.ClientTLS(up.Gateway))
	if err != nil {
		b.Fatalf("forwarder: %v", err)
	}
	connect := connect311("fwd-ceiling", 0x02, 0) // clean session, keepalive off
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	connack := make([]byte, 4)
	if _, err := c.Write(connect); err != nil {
		b.Fatalf("forwarder CONNECT: %v", err)
	}
	if _, err := io.ReadFull(c, connack); err != nil || connack[0] != 0x20 || connack[3] != 0 {
		b.Fatalf("forwarder CONNACK % x: %v", connack, err)
	}
	_ = c.SetDeadline(time.Time{})
	f := &forwarder{c: c, w: bufio.NewWriterSize(c, 64<<10), slots: make(chan struct{}, fwdWindow), done: make(chan struct{})}
	f.wg.Go(f.readAcks)
	return f
}

// readAcks frees a window slot per upstream PUBACK.
func (f *forwarder) readAcks() {
	r := bufio.NewReaderSize(f.c, 16<<10)
	var pk [4]byte
	for {
		if _, err := io.ReadFull(r, pk[:]); err != nil {
			return
		}
		if pk[0] != 0x40 || pk[1] != 2 {
			f.c.Close() // nothing else is expected on this connection
			return
		}
		<-f.slots
	}
}

func (f *forwarder) flush() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.w.Flush()
}

// publish queues one QoS 1 PUBLISH, waiting for a window slot.
func (f *forwarder) publish(topic, payload []byte) error {
	select {
	case f.slots <- struct{}{}:
	default:
		if err := f.flush(); err != nil {
			return err
		}
		select {
		case f.slots <- struct{}{}:
		case <-f.done:
			return net.ErrClosed
		}
	}
	const prefix = "sites/plant-7/"
	tl := len(prefix) + len(topic)
	// MQTT's remaining length is a uvarint.
	hdr := binary.AppendUvarint(append(make([]byte, 0, 16), 0x32), uint64(2+tl+2+len(payload)))
	hdr = append(hdr, byte(tl>>8), byte(tl))
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.id++; f.id == 0 {
		f.id = 1
	}
	f.w.Write(hdr)
	f.w.WriteString(prefix)
	f.w.Write(topic)
	f.w.Write([]byte{byte(f.id >> 8), byte(f.id)})
	_, err := f.w.Write(payload)
	return err
}

func (f *forwarder) close() {
	f.once.Do(func() {
		close(f.done)
		_ = f.flush()
		f.c.Close()
		f.wg.Wait()
	})
}
