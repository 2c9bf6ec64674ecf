package broker

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgegw/edgegw/store"
)

// BenchmarkLocalQoS1PubSub: one MQTT 5 publisher and one MQTT 5 subscriber
// on a plaintext loopback listener, QoS 1 both ways (the publisher keeps up
// to 64 PUBLISHes unacknowledged). It measures what the broker's own read
// path costs per message (packet checks included), without TLS or a
// bridge; `make bench` has the end-to-end figures against Mosquitto.
func BenchmarkLocalQoS1PubSub(b *testing.B) {
	e := newEnv(b, nodeRedSite(b))
	addr := e.b.Addr("nodered").String()
	sub := benchConn(b, addr, "bench-sub")
	benchWrite(b, sub, subscribeRaw(5, "nodered/bench", 1))
	if pk := benchRead(b, sub); pk[0] != 0x90 {
		b.Fatalf("got % x; want a SUBACK", pk)
	}
	pub := benchConn(b, addr, "bench-pub")
	payload := make([]byte, 64)

	got := make(chan error, 1)
	go func() { // the subscriber acknowledges every delivery
		var acks []byte
		for i := 0; i < b.N; i++ {
			pk, err := benchReadErr(sub)
			if err != nil {
				got <- err
				return
			}
			if pk[0]&0xF0 != 0x30 {
				got <- errors.New("subscriber got a packet that is not a PUBLISH")
				return
			}
			tl := int(pk[2])<<8 | int(pk[3])
			acks = append(acks, 0x40, 2, pk[4+tl], pk[5+tl])
			if sub.r.Buffered() == 0 || i == b.N-1 {
				if _, err := sub.c.Write(acks); err != nil {
					got <- err
					return
				}
				acks = acks[:0]
			}
		}
		got <- nil
	}()
	window := make(chan struct{}, 64)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the publisher's PUBACKs free the window
		defer wg.Done()
		for i := 0; i < b.N; i++ {
			if _, err := benchReadErr(pub); err != nil {
				return
			}
			<-window
		}
	}()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		window <- struct{}{}
		id := uint16(i%65535 + 1)
		benchWrite(b, pub, pkt(0x32, str("nodered/bench"), []byte{byte(id >> 8), byte(id)}, props(), payload))
	}
	if err := <-got; err != nil {
		b.Fatal(err)
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

type benchClient struct {
	c net.Conn
	r *bufio.Reader
}

func benchConn(b *testing.B, addr, id string) *benchClient {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	bc := &benchClient{c: c, r: bufio.NewReaderSize(c, 64<<10)}
	benchWrite(b, bc, connectV(5, id))
	if pk := benchRead(b, bc); pk[0] != 0x20 || pk[3] != 0 {
		b.Fatalf("CONNACK % x", pk)
	}
	return bc
}

func benchWrite(b *testing.B, c *benchClient, raw []byte) {
	_ = c.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.c.Write(raw); err != nil {
		b.Fatal(err)
	}
}

func benchRead(b *testing.B, c *benchClient) []byte {
	pk, err := benchReadErr(c)
	if err != nil {
		b.Fatal(err)
	}
	return pk
}

// benchReadErr reads one packet (fixed header included) within 10 s.
func benchReadErr(c *benchClient) ([]byte, error) {
	_ = c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	first, err := c.r.ReadByte()
	if err != nil {
		return nil, err
	}
	out := []byte{first}
	n, mult := 0, 1
	for range 4 {
		d, err := c.r.ReadByte()
		if err != nil {
			return nil, err
		}
		out = append(out, d)
		n += int(d&0x7f) * mult
		mult *= 128
		if d&0x80 == 0 {
			break
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return nil, err
	}
	return append(out, body...), nil
}

// BenchmarkSensorPublish: the sensor side of the daemon, what one QoS 1
// PUBLISH costs from the TLS read to the PUBACK write, without the store's
// commit. pubs MQTT 3.1.1 publishers over mTLS (as the third-party harness's
// paho sensors: each PUBLISH its own write and TLS record, at most
// sensorWindow unacknowledged), 100-byte payloads, every message bound for
// one outbound route whose queue is groupCommit: it takes submissions and
// completes them in batches after a 1 ms "fsync" (a sleep: no store CPU).
// cpu-µs/msg is the process's CPU time (getrusage) per message, the
// publishers' side included; compare runs of the same code base, and use
// -cpuprofile to see the broker's share.
func BenchmarkSensorPublish(b *testing.B) {
	for _, pubs := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("pubs=%d", pubs), func(b *testing.B) { benchSensorPublish(b, pubs) })
	}
}

const sensorWindow = 50

func benchSensorPublish(b *testing.B, pubs int) {
	e := newEnv(b, nil)
	gc := newGroupCommit(b, time.Millisecond)
	e.b.SetOutbound(gc, routeFunc(func(string, byte) []string { return []string{"up"} }))
	conns := make([]*tls.Conn, pubs)
	for i := range conns {
		thing := fmt.Sprintf("load-%d", i)
		conn, err := e.dialTLS(b, e.pki.Issue(b, thing), nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { conn.Close() })
		rawOn(b, conn, thing, 4)
		conns[i] = conn.(*tls.Conn)
	}
	payload := bytes.Repeat([]byte{'x'}, 100)
	var cpu0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &cpu0)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 2*pubs)
	for i, conn := range conns {
		n := b.N / pubs
		if i < b.N%pubs {
			n++
		}
		topic := fmt.Sprintf("sensors/load-%d/t", i)
		window := make(chan struct{}, sensorWindow)
		wg.Add(2)
		go func() { // PUBACKs free the window
			defer wg.Done()
			r := bufio.NewReader(conn)
			for range n {
				_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
				var ack [4]byte
				if _, err := io.ReadFull(r, ack[:]); err != nil || ack[0] != 0x40 {
					errs <- fmt.Errorf("reading PUBACK: % x %v", ack, err)
					return
				}
				<-window
			}
		}()
		go func() {
			defer wg.Done()
			for j := range n {
				window <- struct{}{}
				id := uint16(j%65535 + 1)
				_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
				if _, err := conn.Write(pkt(0x32, str(topic), []byte{byte(id >> 8), byte(id)}, payload)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	var cpu1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &cpu1)
	cpu := time.Duration(syscall.TimevalToNsec(cpu1.Utime) + syscall.TimevalToNsec(cpu1.Stime) -
		syscall.TimevalToNsec(cpu0.Utime) - syscall.TimevalToNsec(cpu0.Stime))
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/msg")
	if got := gc.done.Load(); got != int64(b.N) {
		b.Fatalf("%d messages committed; want %d", got, b.N)
	}
}

// groupCommit is a Submitter standing in for the store's group commit
// without its CPU: a committer takes what was submitted, "syncs" (sleeps
// sync), and completes the batch, as store.Queue's committer does.
type groupCommit struct {
	reqs chan *gcBatch
	next *gcBatch
	mu   sync.Mutex
	done atomic.Int64
}

type gcBatch struct {
	n    int
	done chan struct{}
}

type gcTicket struct{ bt *gcBatch }

func (t gcTicket) Ready() bool {
	select {
	case <-t.bt.done:
		return true
	default:
		return false
	}
}

func (t gcTicket) Wait(ctx context.Context) (uint64, error) {
	select {
	case <-t.bt.done:
		return 1, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func newGroupCommit(b *testing.B, sync time.Duration) *groupCommit {
	g := &groupCommit{reqs: make(chan *gcBatch, 1), next: &gcBatch{done: make(chan struct{})}}
	stop := make(chan struct{})
	stopped := make(chan struct{})
	b.Cleanup(func() { close(stop); <-stopped })
	go func() {
		defer close(stopped)
		for {
			select {
			case <-stop:
				return
			case <-g.reqs:
			}
			g.mu.Lock()
			bt := g.next
			g.next = &gcBatch{done: make(chan struct{})}
			g.mu.Unlock()
			time.Sleep(sync)
			g.done.Add(int64(bt.n))
			close(bt.done)
		}
	}()
	return g
}

func (g *groupCommit) Enqueue(ctx context.Context, m store.Message) (uint64, error) {
	w, err := g.Submit(ctx, m)
	if err != nil {
		return 0, err
	}
	return w.Wait(ctx)
}

func (g *groupCommit) Submit(_ context.Context, _ store.Message) (Waiter, error) {
	g.mu.Lock()
	bt := g.next
	bt.n++
	g.mu.Unlock()
	select {
	case g.reqs <- bt:
	default: // the committer is already woken for this batch
	}
	return gcTicket{bt}, nil
}
