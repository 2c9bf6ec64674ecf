package listen

import (
	"net"
	"sync"
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
// The buffer is borrowed from a pool for as long as it holds unread bytes
// and given back once drained, so an idle connection (nearly all of them,
// nearly always) holds none: the pool is shared by every connection. A
// connection whose reading is held back (the broker's back-pressure on a
// publisher whose pipeline is full) keeps its buffer until it is read
// again: at most readAheadSize per connection, bytes that would otherwise
// wait in the kernel's socket buffer.
// Only the goroutine reading the connection calls Read (tls.Conn holds its
// read lock; before the handshake, the handshake's goroutine).
type readAhead struct {
	net.Conn
	buf  *[]byte // borrowed from readAheadPool; nil when nothing is held
	r, w int     // (*buf)[r:w] is read, not yet handed out
	err  error   // the error of the read that filled buf, for when it is drained
}

// readAheadSize is a window of 64 small PUBLISHes as TLS records, and
// crypto/tls's largest record.
const readAheadSize = 16 << 10

var readAheadPool = sync.Pool{New: func() any {
	b := make([]byte, readAheadSize)
	return &b
}}

func (c *readAhead) Read(p []byte) (int, error) {
	if c.buf == nil {
		if len(p) >= readAheadSize {
			return c.Conn.Read(p)
		}
		bp := readAheadPool.Get().(*[]byte)
		n, err := c.Conn.Read(*bp)
		if n <= len(p) {
			copy(p, (*bp)[:n])
			readAheadPool.Put(bp)
			return n, err
		}
		c.buf, c.r, c.w, c.err = bp, 0, n, err
	}
	n := copy(p, (*c.buf)[c.r:c.w])
	c.r += n
	if c.r < c.w {
		return n, nil
	}
	err := c.err
	readAheadPool.Put(c.buf)
	c.buf, c.err = nil, nil
	return n, err
}
