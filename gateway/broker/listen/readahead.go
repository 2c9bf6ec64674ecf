package listen

import (
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
)

// readAhead is the TCP connection under a TLS listener's tls.Conn, read in
// chunks of readAheadSize.
//
// crypto/tls reads the socket into its own buffer, which it grows only to
// the record it needs plus 512 bytes: a sensor's window of 50 PUBLISHes
// (about 150 bytes each as TLS records) that is waiting in the socket takes
// one read syscall per few records. Read here fetches what is waiting, up
// to readAheadSize, with one syscall and hands it to tls.Conn from memory.
//
// The buffer is borrowed from a pool only once the socket has bytes to read
// (the read is made from the netpoller's readiness callback, RawConn.Read:
// a connection waiting for its sensor holds no buffer), and given back once
// drained, so an idle connection (nearly all of them, nearly always) holds
// none: the pool is shared by every connection. A connection whose reading
// is held back (the broker's back-pressure on a publisher whose pipeline is
// full) keeps its buffer until it is read again: at most readAheadSize per
// connection, bytes that would otherwise wait in the kernel's socket buffer.
// A connection that is not a socket (tests' wrappers) is read in place,
// with no read-ahead. Only the goroutine reading the connection calls Read
// (tls.Conn holds its read lock; before the handshake, the handshake's
// goroutine).
type readAhead struct {
	net.Conn
	buf  *[]byte // borrowed from readAheadPool; nil when nothing is held
	r, w int     // (*buf)[r:w] is read, not yet handed out
}

// readAheadSize is a window of 64 small PUBLISHes as TLS records, and
// crypto/tls's largest record.
const readAheadSize = 16 << 10

var readAheadPool = sync.Pool{New: func() any {
	b := make([]byte, readAheadSize)
	return &b
}}

// readAheadHeld counts the pool's buffers out (borrow, giveBack).
var readAheadHeld atomic.Int64

func borrow() *[]byte {
	readAheadHeld.Add(1)
	return readAheadPool.Get().(*[]byte)
}

func giveBack(bp *[]byte) {
	readAheadHeld.Add(-1)
	readAheadPool.Put(bp)
}

func (c *readAhead) Read(p []byte) (int, error) {
	if c.buf == nil {
		sc, ok := c.Conn.(syscall.Conn)
		if len(p) >= readAheadSize || !ok {
			return c.Conn.Read(p)
		}
		bp, n, err := c.fill(sc)
		if bp == nil || n <= len(p) {
			if bp != nil {
				copy(p, (*bp)[:n])
				giveBack(bp)
			}
			return n, err
		}
		c.buf, c.r, c.w = bp, 0, n // fill returns bytes or an error, not both
	}
	n := copy(p, (*c.buf)[c.r:c.w])
	c.r += n
	if c.r == c.w {
		giveBack(c.buf)
		c.buf = nil
	}
	return n, nil
}

// fill reads what waits in the socket into a buffer from the pool, taken
// only when the socket is readable (an EAGAIN gives it back and waits).
// It returns the buffer with n bytes, or nil and what the connection's own
// Read would have returned with no bytes: io.EOF at the peer's close, a
// *net.OpError otherwise (a deadline's too, so tls.Conn and the broker see
// the same errors as before).
func (c *readAhead) fill(sc syscall.Conn) (bp *[]byte, n int, err error) {
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, 0, c.opError(err)
	}
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		bp = borrow()
		for {
			n, rerr = syscall.Read(int(fd), *bp)
			if rerr != syscall.EINTR {
				break
			}
		}
		if rerr == syscall.EAGAIN {
			giveBack(bp)
			bp = nil
			return false // wait until readable
		}
		return true
	})
	switch {
	case err != nil: // deadline, closed: the callback holds nothing then
		return nil, 0, c.opError(err)
	case rerr != nil:
		giveBack(bp)
		return nil, 0, c.opError(os.NewSyscallError("read", rerr))
	case n <= 0:
		giveBack(bp)
		return nil, 0, io.EOF
	}
	return bp, n, nil
}

// opError wraps err as net.Conn's Read does.
func (c *readAhead) opError(err error) error {
	return &net.OpError{Op: "read", Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
