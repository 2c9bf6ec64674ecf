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
// answers CONNECT and acknowledges every QoS 1 PUBLISH at once (its
// PUBACKs batched per read), storing and forwarding nothing. It is not an
// edge anyone would run: it shows how fast the benchmark's mosquitto_pub
// publishers can go at all on this machine, so the e2e ratios can be read
// against it.
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

// serve reads MQTT 3.1.1 packets until DISCONNECT or an error.
func (e *ackEdge) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Minute))
	r := bufio.NewReaderSize(c, 64<<10)
	var out, body []byte
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
		case 1: // CONNECT
			out = append(out, 0x20, 2, 0, 0)
		case 3: // PUBLISH
			if qos := h >> 1 & 3; qos == 1 && n >= 2 {
				tl := int(body[0])<<8 | int(body[1])
				if n < tl+4 {
					return
				}
				out = append(out, 0x40, 2, body[2+tl], body[3+tl])
			}
			e.acked.Add(1)
		case 12: // PINGREQ
			out = append(out, 0xd0, 0)
		case 14: // DISCONNECT
			return
		}
		if r.Buffered() == 0 && len(out) > 0 {
			if _, err := c.Write(out); err != nil {
				return
			}
			out = out[:0]
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
