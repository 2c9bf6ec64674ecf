package bridge

import "net"

// sockConn is the upstream's byte stream below TLS (the TCP connection, or
// the proxy's tunnel): it calls beforeRead just before every read from it.
//
// That is the moment the session's reader has handled every complete
// packet it already had: crypto/tls hands out one record per Read and reads
// the socket again only when no complete record is left in its buffer, and
// the session's bufio.Reader calls into TLS only when it has no complete
// packet left. So the PUBACKs that arrived together (in one socket read) are
// all handled before beforeRead runs, and the session frees their window
// slots there, together: the writer then refills the window with one
// buffered flush (one TLS record, one write) instead of one per PUBACK.
// Mosquitto writes every PUBACK in its own TLS record, so counting packets
// in the bufio.Reader above TLS would see them one at a time.
type sockConn struct {
	net.Conn
	// beforeRead is set before the connection's reader goroutine starts and
	// only called from it (or from the dial before it, while still nil).
	beforeRead func()
}

func (c *sockConn) Read(p []byte) (int, error) {
	if f := c.beforeRead; f != nil {
		f()
	}
	return c.Conn.Read(p)
}
