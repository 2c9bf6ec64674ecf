package main

// A minimal MQTT 3.1.1 / 5.0 client: CONNECT, PUBLISH QoS 0/1, SUBSCRIBE,
// PINGREQ, DISCONNECT. It exists so the load tool sees exactly what the
// gateway answers (CONNACK codes, PUBACK reason codes, SUBACK codes, a
// disconnect instead of a PUBACK) for thousands of sessions, without a client
// library's retries, queues or reconnects in between. QoS 2 is not needed by
// any scenario and is not implemented.

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegw/edgegw/bridge/wire"
)

// MQTT control packet types ([MQTT-2.2.1]).
const (
	pConnect     = 1
	pConnack     = 2
	pPublish     = 3
	pPuback      = 4
	pSubscribe   = 8
	pSuback      = 9
	pPingreq     = 12
	pPingresp    = 13
	pDisconnect  = 14
	maxRemaining = 268435455
)

// ErrClosed is returned for operations on a closed or broken session.
var ErrClosed = errors.New("mqtt: connection closed")

// ConnackError is a refused CONNECT (3.1.1 return code or 5.0 reason code).
type ConnackError struct{ Code byte }

func (e *ConnackError) Error() string {
	return fmt.Sprintf("mqtt: CONNACK refused, code 0x%02x", e.Code)
}

// Message is an incoming PUBLISH.
type Message struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
	Props   map[string]string // MQTT 5 user properties
}

// ClientOptions configure one session.
type ClientOptions struct {
	ClientID  string
	Version   byte // 4 (3.1.1) or 5
	Clean     bool
	Keepalive time.Duration // 0 = none
	// SessionExpiry (MQTT 5) keeps the session after disconnect.
	SessionExpiry uint32
	OnMessage     func(Message) // called on the reader goroutine
}

// Client is one MQTT session over an established connection.
type Client struct {
	opts   ClientOptions
	conn   net.Conn
	wmu    sync.Mutex
	bw     *bufio.Writer
	nextID atomic.Uint32

	mu      sync.Mutex
	pending map[uint16]chan []byte // packet id -> body of PUBACK/SUBACK
	err     error
	done    chan struct{}
}

// Connect performs the MQTT handshake on conn (already TLS-handshaken or
// plain) and starts the reader. The CONNACK must arrive before ctx ends.
func Connect(ctx context.Context, conn net.Conn, o ClientOptions) (*Client, error) {
	if o.Version != 4 && o.Version != 5 {
		return nil, fmt.Errorf("mqtt: protocol version %d: want 4 (3.1.1) or 5", o.Version)
	}
	c := &Client{opts: o, conn: conn, bw: bufio.NewWriterSize(conn, 512), pending: map[uint16]chan []byte{}, done: make(chan struct{})}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	var b []byte
	b = appendString(b, "MQTT")
	b = append(b, o.Version)
	flags := byte(0)
	if o.Clean {
		flags |= 0x02
	}
	b = append(b, flags)
	b = binary.BigEndian.AppendUint16(b, uint16(o.Keepalive/time.Second))
	if o.Version == 5 {
		var props []byte
		if o.SessionExpiry > 0 {
			props = append(props, 0x11)
			props = binary.BigEndian.AppendUint32(props, o.SessionExpiry)
		}
		b = appendVarint(b, len(props))
		b = append(b, props...)
	}
	b = appendString(b, o.ClientID)
	if err := c.write(pConnect<<4, b); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(conn, 1024)
	typ, body, err := readPacket(br)
	if err != nil {
		return nil, fmt.Errorf("mqtt: reading CONNACK: %w", err)
	}
	if typ>>4 != pConnack || len(body) < 2 {
		return nil, fmt.Errorf("mqtt: expected CONNACK, got packet type %d", typ>>4)
	}
	if body[1] != 0 {
		return nil, &ConnackError{Code: body[1]}
	}
	_ = conn.SetDeadline(time.Time{})
	go c.readLoop(br)
	if o.Keepalive > 0 {
		go c.pingLoop(o.Keepalive)
	}
	return c, nil
}

// Done is closed when the session ends.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err is why the session ended (nil while it runs).
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *Client) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
		close(c.done)
	}
	c.mu.Unlock()
	_ = c.conn.Close()
}

// Close sends DISCONNECT (a clean end) and closes the connection.
func (c *Client) Close() error {
	_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_ = c.write(pDisconnect<<4, nil)
	c.fail(ErrClosed)
	return nil
}

// Drop closes the connection without DISCONNECT, like a power cut.
func (c *Client) Drop() { c.fail(ErrClosed) }

func (c *Client) write(first byte, body []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	hdr := append(make([]byte, 0, 5), first)
	hdr = appendVarint(hdr, len(body))
	if _, err := c.bw.Write(hdr); err != nil {
		return err
	}
	if _, err := c.bw.Write(body); err != nil {
		return err
	}
	return c.bw.Flush()
}

func (c *Client) id() uint16 {
	for {
		if id := uint16(c.nextID.Add(1)); id != 0 {
			return id
		}
	}
}

func (c *Client) await(id uint16) chan []byte {
	ch := make(chan []byte, 1)
	c.mu.Lock()
	c.pending[id] = ch
	c.mu.Unlock()
	return ch
}

func (c *Client) forget(id uint16) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

func (c *Client) wait(ctx context.Context, id uint16, ch chan []byte) ([]byte, error) {
	select {
	case body := <-ch:
		return body, nil
	case <-c.done:
		c.forget(id)
		return nil, c.Err()
	case <-ctx.Done():
		c.forget(id)
		return nil, ctx.Err()
	}
}

// Publish sends one PUBLISH. With QoS 1 it waits for the PUBACK and returns
// its reason code (0 success; >= 0x80 refused, MQTT 5 only). An error means
// no PUBACK came (the session ended or ctx expired): the message may or may
// not have been accepted.
func (c *Client) Publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool) (byte, error) {
	b := appendString(make([]byte, 0, len(topic)+len(payload)+8), topic)
	var id uint16
	var ch chan []byte
	if qos > 0 {
		id = c.id()
		ch = c.await(id)
		b = binary.BigEndian.AppendUint16(b, id)
	}
	if c.opts.Version == 5 {
		b = append(b, 0) // no properties
	}
	b = append(b, payload...)
	first := byte(pPublish<<4) | qos<<1
	if retain {
		first |= 1
	}
	if err := c.write(first, b); err != nil {
		c.fail(err)
		if ch != nil {
			c.forget(id)
		}
		return 0, err
	}
	if qos == 0 {
		return 0, nil
	}
	body, err := c.wait(ctx, id, ch)
	if err != nil {
		return 0, err
	}
	if len(body) >= 3 {
		return body[2], nil
	}
	return 0, nil
}

// Subscribe subscribes to one filter and returns the SUBACK code (granted
// QoS 0-2, or >= 0x80 refused).
func (c *Client) Subscribe(ctx context.Context, filter string, qos byte) (byte, error) {
	id := c.id()
	ch := c.await(id)
	b := binary.BigEndian.AppendUint16(nil, id)
	if c.opts.Version == 5 {
		b = append(b, 0)
	}
	b = appendString(b, filter)
	b = append(b, qos)
	if err := c.write(pSubscribe<<4|0x02, b); err != nil {
		c.fail(err)
		c.forget(id)
		return 0, err
	}
	body, err := c.wait(ctx, id, ch)
	if err != nil {
		return 0, err
	}
	p := 2
	if c.opts.Version == 5 {
		n, k, err := readVarint(body[p:])
		if err != nil {
			return 0, err
		}
		p += k + n
	}
	if p >= len(body) {
		return 0, errors.New("mqtt: SUBACK without return code")
	}
	return body[p], nil
}

func (c *Client) pingLoop(every time.Duration) {
	t := time.NewTicker(every / 2)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			if err := c.write(pPingreq<<4, nil); err != nil {
				c.fail(err)
				return
			}
		}
	}
}

func (c *Client) readLoop(br *bufio.Reader) {
	for {
		typ, body, err := readPacket(br)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = ErrClosed
			}
			c.fail(err)
			return
		}
		switch typ >> 4 {
		case pPuback, pSuback:
			if len(body) < 2 {
				c.fail(errors.New("mqtt: short acknowledgement"))
				return
			}
			id := binary.BigEndian.Uint16(body)
			c.mu.Lock()
			ch := c.pending[id]
			delete(c.pending, id)
			c.mu.Unlock()
			if ch != nil {
				ch <- body
			}
		case pPublish:
			m, id, err := c.parsePublish(typ, body)
			if err != nil {
				c.fail(err)
				return
			}
			if c.opts.OnMessage != nil {
				c.opts.OnMessage(m)
			}
			if m.QoS > 0 {
				// [MQTT-4.3.2-4]: PUBACK after the message is handled.
				if err := c.write(pPuback<<4, binary.BigEndian.AppendUint16(nil, id)); err != nil {
					c.fail(err)
					return
				}
			}
		case pDisconnect:
			code := byte(0)
			if len(body) > 0 {
				code = body[0]
			}
			c.fail(fmt.Errorf("mqtt: server sent DISCONNECT 0x%02x", code))
			return
		case pPingresp:
		default:
			c.fail(fmt.Errorf("mqtt: unexpected packet type %d", typ>>4))
			return
		}
	}
}

func (c *Client) parsePublish(first byte, body []byte) (Message, uint16, error) {
	m := Message{QoS: (first >> 1) & 3, Retain: first&1 == 1}
	tl, p, err := readString(body, 0)
	if err != nil {
		return m, 0, err
	}
	m.Topic = tl
	var id uint16
	if m.QoS > 0 {
		if p+2 > len(body) {
			return m, 0, errors.New("mqtt: short PUBLISH")
		}
		id = binary.BigEndian.Uint16(body[p:])
		p += 2
	}
	if c.opts.Version == 5 {
		n, k, err := readVarint(body[p:])
		if err != nil {
			return m, 0, err
		}
		p += k
		if p+n > len(body) {
			return m, 0, errors.New("mqtt: short PUBLISH properties")
		}
		m.Props = userProps(body[p : p+n])
		p += n
	}
	m.Payload = body[p:]
	return m, id, nil
}

// userProps extracts User Property (0x26) pairs; other properties are skipped
// by their fixed encodings ([MQTT-2.2.2.2] table).
func userProps(b []byte) map[string]string {
	var out map[string]string
	for p := 0; p < len(b); {
		id := b[p]
		p++
		switch id {
		case 0x01: // payload format
			p++
		case 0x02: // message expiry
			p += 4
		case 0x23: // topic alias
			p += 2
		case 0x03, 0x08: // content type, response topic
			_, q, err := readString(b, p)
			if err != nil {
				return out
			}
			p = q
		case 0x09: // correlation data
			if p+2 > len(b) {
				return out
			}
			p += 2 + int(binary.BigEndian.Uint16(b[p:]))
		case 0x0B: // subscription identifier
			_, k, err := readVarint(b[p:])
			if err != nil {
				return out
			}
			p += k
		case 0x26:
			k, q, err := readString(b, p)
			if err != nil {
				return out
			}
			v, r, err := readString(b, q)
			if err != nil {
				return out
			}
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
			p = r
		default:
			return out
		}
	}
	return out
}

func readPacket(br *bufio.Reader) (byte, []byte, error) {
	first, err := br.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mult := 0, 1
	for i := 0; ; i++ {
		b, err := br.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(b&0x7f) * mult
		if b&0x80 == 0 {
			break
		}
		if i == 3 {
			return 0, nil, errors.New("mqtt: malformed remaining length")
		}
		mult *= 128
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		return 0, nil, err
	}
	return first, body, nil
}

func appendVarint(b []byte, n int) []byte {
	return wire.AppendVBI(b, min(n, maxRemaining))
}

func readVarint(b []byte) (n, size int, err error) {
	mult := 1
	for i := 0; i < 4 && i < len(b); i++ {
		n += int(b[i]&0x7f) * mult
		if b[i]&0x80 == 0 {
			return n, i + 1, nil
		}
		mult *= 128
	}
	return 0, 0, errors.New("mqtt: malformed variable byte integer")
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func readString(b []byte, p int) (string, int, error) {
	if p+2 > len(b) {
		return "", 0, errors.New("mqtt: short string")
	}
	n := int(binary.BigEndian.Uint16(b[p:]))
	p += 2
	if p+n > len(b) {
		return "", 0, errors.New("mqtt: short string")
	}
	return string(b[p : p+n]), p + n, nil
}
