package broker

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
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
