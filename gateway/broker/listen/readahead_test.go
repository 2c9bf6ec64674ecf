package listen

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// countingConn counts the reads that reach the socket: its own Read and
// the read-ahead's, made from the readiness callback of its RawConn.
type countingConn struct {
	net.Conn
	reads int
}

func (c *countingConn) Read(p []byte) (int, error) {
	c.reads++
	return c.Conn.Read(p)
}

func (c *countingConn) SyscallConn() (syscall.RawConn, error) {
	rc, err := c.Conn.(syscall.Conn).SyscallConn()
	return countingRaw{rc, &c.reads}, err
}

type countingRaw struct {
	syscall.RawConn
	reads *int
}

func (r countingRaw) Read(f func(uintptr) bool) error {
	return r.RawConn.Read(func(fd uintptr) bool { *r.reads++; return f(fd) })
}

// TestReadAheadIdleHoldsNothing: connections waiting in Read for bytes
// that have not come hold no buffer of the pool (a gateway's sensors are
// nearly all idle nearly always), and the bytes, once written, are read
// and the buffers given back.
func TestReadAheadIdleHoldsNothing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const conns = 20
	var peers []net.Conn
	done := make(chan error, conns)
	before := readAheadHeld.Load()
	for range conns {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		peers = append(peers, c)
		raw, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		go func() {
			ra := &readAhead{Conn: raw}
			p := make([]byte, 10)
			n, err := ra.Read(p)
			if err == nil && string(p[:n]) != "hello" {
				err = fmt.Errorf("read %q, want hello", p[:n])
			}
			done <- err
		}()
	}
	time.Sleep(200 * time.Millisecond) // every reader is waiting in Read
	if held := readAheadHeld.Load() - before; held != 0 {
		t.Fatalf("%d idle connections hold %d read-ahead buffers; want none", conns, held)
	}
	for _, c := range peers {
		if _, err := c.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
	}
	for range conns {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if held := readAheadHeld.Load() - before; held != 0 {
		t.Fatalf("%d buffers held after every read was drained", held)
	}
}

// TestReadAheadDeadline: a read deadline ends a read-ahead as it ends the
// connection's own Read: a net.Error that says timeout.
func TestReadAheadDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err = (&readAhead{Conn: raw}).Read(make([]byte, 10))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v; want a timeout", err)
	}
}

// TestReadAheadStream: what a loopback TCP peer wrote in one go (200 KiB,
// a dozen read-ahead buffers) comes out of readAhead byte for byte
// through reads of many sizes, from fewer socket reads than the small
// reads would have taken (reads of at least the buffer's size go straight
// to the socket); the peer's close comes out as io.EOF after the
// last byte, and nothing is held once it is drained.
func TestReadAheadStream(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	want := make([]byte, 200<<10)
	for i := range want {
		want[i] = byte(i*7 + i>>8)
	}
	sent := make(chan error, 1)
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			sent <- err
			return
		}
		_, err = c.Write(want)
		sent <- errors.Join(err, c.Close())
	}()
	raw, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	cc := &countingConn{Conn: raw}
	ra := &readAhead{Conn: cc}
	var got bytes.Buffer
	sizes := []int{1, 5, 517, 100, 3000, 64, 700, 20 << 10}
	calls := 0
	for i := 0; ; i++ {
		p := make([]byte, sizes[i%len(sizes)])
		n, err := ra.Read(p)
		got.Write(p[:n])
		calls++
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if i > 1e5 {
			t.Fatal("no EOF after 100,000 reads")
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("read %d bytes differing from the %d written", got.Len(), len(want))
	}
	if ra.buf != nil {
		t.Fatal("a drained readAhead still holds its buffer")
	}
	t.Logf("%d socket reads for %d reads", cc.reads, calls)
	if cc.reads >= calls/2 {
		t.Fatalf("%d socket reads for %d reads; want fewer than half", cc.reads, calls)
	}
}

// TestReadAheadNotASocket: a connection that is not a socket is read in
// place: each Read returns what the connection's own Read returns, bytes
// and error together.
func TestReadAheadNotASocket(t *testing.T) {
	boom := errors.New("boom")
	ra := &readAhead{Conn: &onceConn{data: []byte("0123456789"), err: boom}}
	p := make([]byte, 4)
	n, err := ra.Read(p)
	if string(p[:n]) != "0123" || !errors.Is(err, boom) {
		t.Fatalf("first read %q, %v; want \"0123\", %v", p[:n], err, boom)
	}
	if n, err := ra.Read(p); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("second read %d bytes, %v; want 0, EOF", n, err)
	}
}

// onceConn returns data and err from its first Read, io.EOF after.
type onceConn struct {
	net.Conn
	data []byte
	err  error
	done bool
}

func (c *onceConn) Read(p []byte) (int, error) {
	if c.done {
		return 0, io.EOF
	}
	c.done = true
	return copy(p, c.data), c.err
}
