package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
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
type ackEdge struct {
	ln    net.Listener
	pki   *gatewaytest.PKI
	acked atomic.Int64
	wg    sync.WaitGroup
}

func (e *ackEdge) name() string                                    { return "ack-only" }
func (e *ackEdge) addr() string                                    { return e.ln.Addr().String() }
func (e *ackEdge) site() *gatewaytest.PKI                          { return e.pki }
func (e *ackEdge) pid() int                                        { return 0 }
func (e *ackEdge) cert(b *testing.B, s string) *gatewaytest.Client { return e.pki.Issue(b, s) }
func (e *ackEdge) stop()                                           { e.ln.Close(); e.wg.Wait() }

func startAckEdge(b *testing.B, pki *gatewaytest.PKI) *ackEdge {
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
	e := &ackEdge{ln: ln, pki: pki}
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
