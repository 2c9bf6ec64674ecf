package listen

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
)

// countingConn counts the reads that reach the connection.
type countingConn struct {
	net.Conn
	reads int
}

func (c *countingConn) Read(p []byte) (int, error) {
	c.reads++
	return c.Conn.Read(p)
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

// TestReadAheadKeepsError: an error returned with data (here a fake one)
// comes after that data, not before or instead of it.
func TestReadAheadKeepsError(t *testing.T) {
	boom := errors.New("boom")
	ra := &readAhead{Conn: &onceConn{data: []byte("0123456789"), err: boom}}
	p := make([]byte, 4)
	var got []byte
	for range 3 {
		n, err := ra.Read(p)
		got = append(got, p[:n]...)
		if err != nil && len(got) < 10 {
			t.Fatalf("error %v after %q; want it after all 10 bytes", err, got)
		}
		if len(got) == 10 && !errors.Is(err, boom) {
			t.Fatalf("last read's error %v; want %v", err, boom)
		}
	}
	if string(got) != "0123456789" {
		t.Fatalf("read %q", got)
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
