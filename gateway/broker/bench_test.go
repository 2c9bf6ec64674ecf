package broker

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
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
// PUBLISH costs the broker from the TLS read to the PUBACK write, without
// the store's commit. pubs MQTT 3.1.1 publishers over mTLS (as the
// third-party harness's paho sensors: each PUBLISH its own write and TLS
// record, at most sensorWindow unacknowledged, 100-byte payloads) run in a
// child process (this test binary, see TestMain and runSensorLoad), so
// cpu-µs/msg, the benchmark process's CPU time (getrusage) per message, is
// the broker's alone. Every message is bound for one outbound route whose
// queue is groupCommit: it takes submissions and completes them in batches
// after a 1 ms "fsync" (a sleep: no store CPU). -cpuprofile shows the
// broker's profile per message.
func BenchmarkSensorPublish(b *testing.B) {
	for _, pubs := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("pubs=%d", pubs), func(b *testing.B) { benchSensorPublish(b, pubs) })
	}
}

const (
	sensorWindow  = 50
	sensorLoadEnv = "EDGEGW_BROKER_SENSOR_LOAD" // set: this process is runSensorLoad's child
)

// sensorLoad is what the child process is told (JSON in sensorLoadEnv).
type sensorLoad struct {
	Addr     string
	CA       string   // CA certificate file
	Things   []string // one publisher each, client ID = thing name
	Certs    []string // their certificate and key files, in pairs
	PerThing []int    // messages each publishes
}

func benchSensorPublish(b *testing.B, pubs int) {
	e := newEnv(b, nil)
	gc := newGroupCommit(b, time.Millisecond)
	e.b.SetOutbound(gc, routeFunc(func(string, byte) []string { return []string{"up"} }))
	load := sensorLoad{Addr: e.addr, CA: e.pki.CAFile}
	for i := range pubs {
		thing := fmt.Sprintf("load-%d", i)
		c := e.pki.Issue(b, thing)
		load.Things = append(load.Things, thing)
		load.Certs = append(load.Certs, c.CertFile, c.KeyFile)
		load.PerThing = append(load.PerThing, b.N/pubs+min(1, max(0, b.N%pubs-i)))
	}
	spec, err := json.Marshal(load)
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), sensorLoadEnv+"="+string(spec))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	out := bufio.NewReader(stdout)
	if line, err := out.ReadString('\n'); line != "connected\n" {
		b.Fatalf("publishers: got %q, %v; want connected", line, err)
	}
	var cpu0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &cpu0)
	b.ResetTimer()
	start := time.Now()
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		b.Fatal(err)
	}
	if line, err := out.ReadString('\n'); line != "done\n" {
		b.Fatalf("publishers: got %q, %v; want done", line, err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	var cpu1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &cpu1)
	cpu := time.Duration(syscall.TimevalToNsec(cpu1.Utime) + syscall.TimevalToNsec(cpu1.Stime) -
		syscall.TimevalToNsec(cpu0.Utime) - syscall.TimevalToNsec(cpu0.Stime))
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(b.N), "cpu-µs/msg")
	if got := gc.done.Load(); got != int64(b.N) {
		b.Fatalf("%d messages committed; want %d", got, b.N)
	}
}

// TestMain runs the tests, or, in BenchmarkSensorPublish's child process,
// the publishers.
func TestMain(m *testing.M) {
	if spec := os.Getenv(sensorLoadEnv); spec != "" {
		if err := runSensorLoad(spec); err != nil {
			fmt.Fprintln(os.Stderr, "publishers:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runSensorLoad connects the publishers, says "connected", waits for "go"
// on stdin, publishes, and says "done" once every PUBACK is in.
func runSensorLoad(spec string) error {
	var load sensorLoad
	if err := json.Unmarshal([]byte(spec), &load); err != nil {
		return err
	}
	caPEM, err := os.ReadFile(load.CA)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	conns := make([]*bufio.ReadWriter, len(load.Things))
	raws := make([]net.Conn, len(load.Things))
	for i, thing := range load.Things {
		cert, err := tls.LoadX509KeyPair(load.Certs[2*i], load.Certs[2*i+1])
		if err != nil {
			return err
		}
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", load.Addr,
			&tls.Config{RootCAs: pool, ServerName: "localhost", Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		if err != nil {
			return err
		}
		defer c.Close()
		rw := bufio.NewReadWriter(bufio.NewReader(c), bufio.NewWriter(c))
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		connect := pkt(0x10, str("MQTT"), []byte{4, 0x02, 0, 30}, str(thing))
		if _, err := c.Write(connect); err != nil {
			return err
		}
		var ack [4]byte
		if _, err := io.ReadFull(rw, ack[:]); err != nil || ack != [4]byte{0x20, 2, 0, 0} {
			return fmt.Errorf("%s: CONNACK % x, %v", thing, ack, err)
		}
		conns[i], raws[i] = rw, c
	}
	fmt.Println("connected")
	if line, err := bufio.NewReader(os.Stdin).ReadString('\n'); line != "go\n" {
		return fmt.Errorf("got %q, %v; want go", line, err)
	}
	payload := bytes.Repeat([]byte{'x'}, 100)
	errs := make(chan error, 2*len(conns))
	var wg sync.WaitGroup
	for i, conn := range raws {
		n, r := load.PerThing[i], conns[i].Reader
		topic := "sensors/" + load.Things[i] + "/t"
		window := make(chan struct{}, sensorWindow)
		wg.Add(2)
		go func() { // PUBACKs free the window
			defer wg.Done()
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
		go func() { // one write per PUBLISH, as paho does
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
	close(errs)
	for err := range errs {
		return err
	}
	fmt.Println("done")
	return nil
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
