package bridge

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/edgegw/edgegw/bridge/wire"
	"github.com/edgegw/edgegw/store"
)

const (
	maxPublishID = 65534 // publish packet IDs are 1..65534
	controlID    = 65535 // reserved for SUBSCRIBE/UNSUBSCRIBE (one at a time)
	inboundMax   = 256   // our Receive Maximum: inbound QoS 1 publishes in flight
	bufSize      = 64 << 10
)

// session is one network connection to one upstream, from CONNACK to loss.
type session struct {
	b         *Bridge
	up        Upstream
	nc        net.Conn
	br        *bufio.Reader
	keepAlive time.Duration
	server    serverLimits
	connected time.Time // wall clock at CONNACK: older messages are backlog

	wmu     sync.Mutex // guards bw, wdl and writes on nc
	bw      *bufio.Writer
	wdl     time.Time // the write deadline set on nc (armWrite)
	scratch []byte

	// The in-flight window: window slots (our Inflight, at most the
	// server's Receive Maximum [MQTT-3.3.4-9]), held of them taken by QoS 1
	// publishes written and not yet released. A PUBACK frees its slot in
	// unreleased; the reader releases them all at once just before it reads
	// the connection again (sockConn.beforeRead), so the PUBACKs that came
	// in one read let the writer send the next publishes in one write.
	// slotFree (capacity 1) wakes the writer waiting for a slot. The writer
	// takes every free slot at once, never waiting for more: see the package
	// doc on Nagle at the upstream.
	// The queue hears of those PUBACKs (Queue.Ack of acks) after the
	// writer was woken, so the store's lock, which the publishers' commits
	// also take, never holds back the window.
	window     int
	unreleased int      // reader goroutine only
	acks       []uint64 // reader goroutine only
	slotFree   chan struct{}

	mu       sync.Mutex
	held     int                // window slots taken
	inflight map[uint32]pending // by packet identifier (uint32: Go's maps have a fast path for it, not for uint16)
	nextID   uint16

	lastRead atomic.Int64 // unix nanos of the last packet read
	inbound  chan *packets.Publish
	ctrlAck  chan ctrlAnswer // SUBACK / UNSUBACK
	v311     bool            // MQTT 3.1.1 on this connection
}

// ctrlAnswer is a SUBACK (codes: one per filter) or an UNSUBACK.
type ctrlAnswer struct {
	suback bool
	codes  []byte
}

type pending struct {
	seq    uint64
	route  string
	device string
	prefix string // the upstream topic is prefix + topic (outbound.topic)
	topic  string
}

// remote is p's upstream topic as one string.
func (p pending) remote() string { return p.prefix + p.topic }

type serverLimits struct {
	receiveMax uint16
	maxQoS     byte
	retain     bool
	maxPacket  uint32
}

// dial connects to one upstream and completes CONNECT/CONNACK, all bounded
// by ConnectTimeout (paho's AttemptConnection would not be: it is handed the
// outer context, not its ConnectTimeout one).
func (b *Bridge) dial(ctx context.Context, up Upstream) (*session, error) {
	cctx, cancel := context.WithTimeout(ctx, b.cfg.ConnectTimeout)
	defer cancel()
	select {
	case <-b.id.kick: // a Reconnect asked for before this connection: it has what it wanted
	default:
	}
	_, gen := b.clientCert()
	addr := hostPort(up)
	pass, err := b.password()
	if err != nil {
		return nil, err
	}
	nc, sc, err := b.openConn(cctx, up, addr)
	if err != nil {
		return nil, err
	}
	// The CONNECT/CONNACK exchange is bounded by cctx too: its deadline is
	// the connection's, and when cctx ends early (the outer ctx cancelled) a
	// blocked read or write returns at once.
	if dl, ok := cctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(cctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	s := b.newSession(up, nc)
	sc.beforeRead = s.releaseAcked
	ca, err := s.connect(pass)
	if err != nil {
		nc.Close()
		return nil, b.connectError(ctx, cctx, up, addr, err)
	}
	if err := s.refused(ca, addr); err != nil {
		nc.Close()
		return nil, err
	}
	if !stop() {
		nc.Close()
		return nil, fmt.Errorf("connecting to %s: %w", addr, cctx.Err())
	}
	_ = nc.SetDeadline(time.Time{})

	s.applyConnack(ca.Properties)
	if err := b.checkServerQoS(s.server.maxQoS, addr); err != nil {
		nc.Close()
		return nil, err
	}
	b.established(s, gen, ca.SessionPresent)
	return s, nil
}

// openConn opens the transport to up: TCP (through the proxy if one is
// configured), then TLS for a TLS scheme. sc is the byte stream below TLS
// (nc itself without TLS), whose reads the session watches.
func (b *Bridge) openConn(ctx context.Context, up Upstream, addr string) (nc net.Conn, sc *sockConn, err error) {
	tcp, err := b.dialTCP(ctx, addr)
	if err != nil {
		return nil, nil, err
	}
	sc = &sockConn{Conn: tcp}
	if isTLSScheme(up.URL.Scheme) {
		nc, err = b.tlsHandshake(ctx, sc, up, addr)
		return nc, sc, err
	}
	return sc, sc, nil
}

// newSession is the session on nc before CONNECT: the server's limits at
// their MQTT defaults until its CONNACK says otherwise, packet identifiers
// continuing from the previous connection's.
func (b *Bridge) newSession(up Upstream, nc net.Conn) *session {
	return &session{
		b: b, up: up, nc: nc,
		br:       bufio.NewReaderSize(nc, bufSize),
		bw:       bufio.NewWriterSize(nc, bufSize),
		inflight: make(map[uint32]pending, b.cfg.Inflight),
		inbound:  make(chan *packets.Publish, inboundMax),
		ctrlAck:  make(chan ctrlAnswer, 1),
		slotFree: make(chan struct{}, 1),
		server:   serverLimits{receiveMax: 65535, maxQoS: 2, retain: true},
		nextID:   b.lastID,
		v311:     b.cfg.Protocol == MQTT311,
	}
}

// connectError says why CONNECT got no CONNACK: no answer within
// ConnectTimeout, a TLS alert that means a missing ALPN, or err as it is.
func (b *Bridge) connectError(ctx, cctx context.Context, up Upstream, addr string, err error) error {
	if cctx.Err() != nil && ctx.Err() == nil {
		return fmt.Errorf("waiting for CONNACK from %s: no answer within %v", addr, b.cfg.ConnectTimeout)
	}
	// A TLS alert from the server (crypto/tls reports it as a
	// "remote error: tls: ..." *net.OpError; its type is unexported).
	u := up.URL
	if isTLSScheme(u.Scheme) && u.Port() == "443" && len(up.ALPN) == 0 && len(b.cfg.ALPN) == 0 && strings.Contains(err.Error(), "remote error: tls:") {
		// AWS IoT Core's port 443 drops a certificate login without ALPN.
		return fmt.Errorf("%s: %w (port 443 without ALPN: AWS IoT Core needs alpn [%s]; profile aws-iot-core sets it)", addr, err, AWSALPN)
	}
	return fmt.Errorf("%s: %w", addr, err)
}

// refused is a *ConnackError when the CONNACK refuses the connection (any
// non-zero 3.1.1 return code, an MQTT 5 reason code 0x80 or above), else nil.
func (s *session) refused(ca *packets.Connack, addr string) error {
	if ca.ReasonCode == 0 || (!s.v311 && ca.ReasonCode < 0x80) {
		return nil
	}
	ce := &ConnackError{Upstream: addr, Protocol: s.b.cfg.Protocol, Code: ca.ReasonCode}
	if s.v311 {
		ce.Reason = connack311Reason(ca.ReasonCode)
	} else {
		ce.Reason = strings.TrimSpace(ca.Reason() + " " + reasonString(ca.Properties))
	}
	return ce
}

// established makes s the bridge's live connection: its window (our
// Inflight, at most the server's Receive Maximum), the state Status reports,
// and the certificate generation it connected under (gen, for SwapIdentity).
func (b *Bridge) established(s *session, gen uint64, sessionPresent bool) {
	window := min(b.cfg.Inflight, int(s.server.receiveMax))
	s.window = window
	s.connected = b.cfg.Now()
	s.lastRead.Store(time.Now().UnixNano())

	b.window.Store(int64(window))
	b.mu.Lock()
	b.upstream = s.up.URL.Redacted()
	b.connectedAt = s.connected
	b.mu.Unlock()
	b.connected.Store(true)
	b.connectedUnder(gen)
	b.log.Info("upstream connected", "upstream", s.up.URL.Redacted(), "protocol", b.cfg.Protocol.String(),
		"session_present", sessionPresent, "window", window, "keepalive", s.keepAlive)
}

// password is the upstream password: password_file read at every connect
// (so a rotated file applies at the next one), else the configured bytes.
func (b *Bridge) password() ([]byte, error) {
	switch {
	case b.cfg.PasswordFile != "":
		return ReadPasswordFile(b.cfg.PasswordFile)
	case b.cfg.Password != nil:
		return b.cfg.Password, nil
	}
	return nil, nil
}

// tlsHandshake runs the client TLS handshake on nc for up (server name from
// the upstream, else the URL's host; ALPN from the upstream, else the
// bridge), closing nc on failure.
func (b *Bridge) tlsHandshake(ctx context.Context, nc net.Conn, up Upstream, addr string) (net.Conn, error) {
	tc := b.cfg.TLS.Clone()
	if c, _ := b.clientCert(); c != nil {
		tc.Certificates = []tls.Certificate{*c}
	}
	tc.ServerName = up.ServerName
	if tc.ServerName == "" {
		tc.ServerName = up.URL.Hostname()
	}
	if tc.MinVersion == 0 {
		tc.MinVersion = tls.VersionTLS12
	}
	tc.NextProtos = up.ALPN
	if len(tc.NextProtos) == 0 {
		tc.NextProtos = b.cfg.ALPN
	}
	tlsConn := tls.Client(nc, tc)
	if err := tlsConn.HandshakeContext(ctx); err != nil {
		nc.Close()
		alpn := ""
		if len(tc.NextProtos) > 0 {
			alpn = fmt.Sprintf(", ALPN %q", tc.NextProtos)
		}
		return nil, fmt.Errorf("TLS handshake with %s (server name %q%s): %w", addr, tc.ServerName, alpn, err)
	}
	return tlsConn, nil
}

// applyConnack takes the keepalive and the server's limits from the
// CONNACK's properties (MQTT 5; a 3.1.1 CONNACK has none).
func (s *session) applyConnack(p *packets.Properties) {
	s.keepAlive = s.b.cfg.KeepAlive
	if p == nil {
		return
	}
	if p.ServerKeepAlive != nil {
		s.keepAlive = time.Duration(*p.ServerKeepAlive) * time.Second
	}
	if p.ReceiveMaximum != nil && *p.ReceiveMaximum > 0 {
		s.server.receiveMax = *p.ReceiveMaximum
	}
	if p.MaximumQOS != nil {
		s.server.maxQoS = *p.MaximumQOS
	}
	if p.RetainAvailable != nil {
		s.server.retain = *p.RetainAvailable != 0
	}
	if p.MaximumPacketSize != nil {
		s.server.maxPacket = *p.MaximumPacketSize
	}
}

// checkServerQoS refuses an upstream that allows only QoS 0 while an
// outbound route forwards at QoS 1. A QoS 0 publish has no acknowledgement:
// the message would leave the queue when written, and a connection dropped
// before the upstream read it would lose it. That is not ours to decide for
// a QoS 1 route; the operator can (qos: 0), or another upstream in the list
// may take QoS 1.
func (b *Bridge) checkServerQoS(maxQoS byte, addr string) error {
	if maxQoS > 0 {
		return nil
	}
	for _, r := range b.routes.Load().all {
		if r.Direction.out() && r.wireQoS() > 0 {
			return fmt.Errorf("%s allows only QoS 0 (CONNACK Maximum QoS 0), but route %q forwards at QoS 1: its messages would leave the queue unacknowledged and a dropped connection would lose them; they stay queued. Set the route's qos: 0 to accept that, or bridge to an upstream that supports QoS 1", addr, r.Name)
		}
	}
	return nil
}

// connect writes CONNECT and reads the CONNACK, in the bridge's protocol.
// A 3.1.1 CONNACK is returned in paho's struct with its return code as
// ReasonCode.
func (s *session) connect(pass []byte) (*packets.Connack, error) {
	cfg := &s.b.cfg
	keepAlive := uint16(cfg.KeepAlive / time.Second)
	if s.v311 {
		s.scratch = wire.AppendConnect311(s.scratch[:0], cfg.ClientID, cfg.Username, pass, cfg.Username != "", pass != nil, keepAlive)
		if _, err := s.bw.Write(s.scratch); err != nil {
			return nil, fmt.Errorf("sending CONNECT: %w", err)
		}
	} else {
		expiry := uint32(cfg.SessionExpiry / time.Second)
		recvMax := uint16(inboundMax)
		cp := &packets.Connect{
			ProtocolName:    "MQTT",
			ProtocolVersion: 5,
			ClientID:        cfg.ClientID,
			KeepAlive:       keepAlive,
			// Clean Start 0 with a session expiry: the upstream keeps our
			// subscriptions and queues inbound commands while we are away
			// [MQTT-3.1.2-4] [MQTT-3.1.2-23].
			CleanStart:   false,
			UsernameFlag: cfg.Username != "",
			Username:     cfg.Username,
			PasswordFlag: pass != nil,
			Password:     pass,
			Properties:   &packets.Properties{SessionExpiryInterval: &expiry, ReceiveMaximum: &recvMax},
		}
		if _, err := cp.WriteTo(s.bw); err != nil {
			return nil, fmt.Errorf("sending CONNECT: %w", err)
		}
	}
	if err := s.bw.Flush(); err != nil {
		return nil, fmt.Errorf("sending CONNECT: %w", err)
	}
	if s.v311 {
		pk, err := wire.Read311(s.br)
		if err != nil {
			return nil, fmt.Errorf("waiting for CONNACK: %w", err)
		}
		present, code, err := pk.Connack()
		if err != nil {
			return nil, fmt.Errorf("answer to CONNECT: %w", err)
		}
		return &packets.Connack{SessionPresent: present, ReasonCode: code}, nil
	}
	pk, err := packets.ReadPacket(s.br)
	if err != nil {
		return nil, fmt.Errorf("waiting for CONNACK: %w", err)
	}
	ca, ok := pk.Content.(*packets.Connack)
	if !ok {
		return nil, fmt.Errorf("answered CONNECT with %s, not CONNACK", pk.PacketType())
	}
	return ca, nil
}

func reasonString(p *packets.Properties) string {
	if p == nil || p.ReasonString == "" {
		return ""
	}
	return "(" + p.ReasonString + ")"
}

// run serves the connection until it fails or ctx is done; all its
// goroutines have returned when it returns, so the caller may Rewind.
func (s *session) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
	)
	fail := func(err error) {
		errOnce.Do(func() {
			first = err
			cancel()
			_ = s.nc.SetDeadline(time.Unix(1, 0)) // unblock reads and writes
		})
	}
	start := func(f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil {
				fail(err)
			}
		}()
	}
	start(s.readLoop)
	start(s.writeLoop)
	start(s.inboundLoop)
	start(s.controlLoop)
	start(s.kickLoop)
	if s.keepAlive > 0 {
		start(s.pingLoop)
	}
	<-ctx.Done()
	shutdown := false
	errOnce.Do(func() { shutdown, first = true, ctx.Err() })
	if shutdown {
		// Say goodbye; the session (and its subscriptions) stays on the
		// upstream for SessionExpiry. Then unblock everyone.
		s.wmu.Lock()
		_ = s.nc.SetWriteDeadline(time.Now().Add(time.Second))
		// DISCONNECT with remaining length 0: normal disconnection in
		// both versions [MQTT-3.14.2.1].
		_, _ = s.bw.Write([]byte{packets.DISCONNECT << 4, 0})
		_ = s.bw.Flush()
		s.wmu.Unlock()
		_ = s.nc.SetDeadline(time.Unix(1, 0))
	}
	wg.Wait()
	s.nc.Close()

	b := s.b
	b.connected.Store(false)
	s.mu.Lock()
	n := len(s.inflight)
	s.inflight = nil
	b.lastID = s.nextID
	s.mu.Unlock()
	b.c.resent.Add(uint64(n))
	b.inflight.Store(0)
	return first
}

// take takes a window slot for a QoS 1 publish, records it in flight and
// returns its packet identifier; ok is false when the window is full.
func (s *session) take(p pending) (id uint16, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held >= s.window {
		return 0, false
	}
	s.held++
	for {
		s.nextID++
		if s.nextID > maxPublishID || s.nextID == 0 {
			s.nextID = 1
		}
		if _, used := s.inflight[uint32(s.nextID)]; !used {
			s.inflight[uint32(s.nextID)] = p
			s.b.inflight.Add(1)
			return s.nextID, true
		}
	}
}

func (s *session) writeLocked(p []byte) error {
	if len(p) > s.bw.Available() {
		if err := s.flushLocked(); err != nil {
			return err
		}
	}
	if len(p) > s.bw.Available() {
		s.armWrite()
	}
	_, err := s.bw.Write(p)
	return err
}

func (s *session) flushLocked() error {
	if s.bw.Buffered() == 0 {
		return nil
	}
	s.b.c.writes.Add(1)
	s.armWrite()
	return s.bw.Flush()
}

// writeTimeout bounds one flush: a server that stops reading is as dead as
// one that stops answering pings.
func (s *session) writeTimeout() time.Duration {
	return max(s.keepAlive*3/2, s.b.cfg.ConnectTimeout)
}

// armWrite makes sure the next write on nc has at least half of
// writeTimeout before its deadline, moving the deadline (to a full
// writeTimeout from now) only when less is left: setting a deadline resets
// a runtime timer under a lock, which every flush paid (3% of the bridge's
// CPU at Receive Maximum 20, 5 publishes per write). A deadline set by
// someone else (run's unblocking one in the past, shutdown's second) is not
// in wdl; wdl only ever moves forward, so a flush after those never extends
// them past a flush's bound. wmu is held.
func (s *session) armWrite() {
	now, wt := time.Now(), s.writeTimeout()
	if s.wdl.Sub(now) >= wt/2 {
		return
	}
	s.wdl = now.Add(wt)
	_ = s.nc.SetWriteDeadline(s.wdl)
}

func (s *session) ack(seq uint64) {
	if err := s.b.q.Ack(seq); err != nil {
		// Not fatal: the message stays queued and is sent again later
		// (a duplicate, never a loss).
		s.b.log.Warn("acknowledging to the queue failed", "seq", seq, "err", err)
		return
	}
	s.b.c.acked.Add(1)
}

func (s *session) deadLetter(p pending, code byte, reason string) {
	b := s.b
	if err := b.q.DeadLetter(p.seq, reason); err != nil {
		b.log.Warn("moving a refused message to the dead-letter area failed; it will be retried", "seq", p.seq, "topic", p.remote(), "err", err)
		return
	}
	b.c.deadLettered.Add(1)
	b.log.Warn("upstream refused a message; moved to the dead-letter area", "seq", p.seq, "route", p.route,
		"device", p.device, "topic", p.remote(), "reason", reason)
	if f := b.cfg.OnDeadLetter; f != nil {
		f(DeadLetter{Seq: p.seq, Route: p.route, Device: p.device, Topic: p.remote(), Code: code, Reason: reason})
	}
}

// readLoop reads every packet from the upstream. PUBACKs without
// properties (every 3.1.1 PUBACK, nearly every MQTT 5 one) take a fast path;
// the rest is read by the protocol's reader.
func (s *session) readLoop(ctx context.Context) error {
	defer s.releaseAcked() // what was acknowledged is acknowledged to the queue, also on the way out
	readOne := s.readOne5
	if s.v311 {
		readOne = s.readOne311
	}
	for {
		id, code, ok, err := wire.ReadShortPuback(s.br)
		switch {
		case err != nil:
			err = fmt.Errorf("reading from upstream: %w", err)
		case ok:
			s.lastRead.Store(time.Now().UnixNano())
			s.onPuback(id, code, nil)
		default:
			err = readOne(ctx)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
	}
}

// readOne5 reads and handles one MQTT 5 packet.
func (s *session) readOne5(ctx context.Context) error {
	pk, err := packets.ReadPacket(s.br)
	if err != nil {
		return fmt.Errorf("reading from upstream: %w", err)
	}
	s.lastRead.Store(time.Now().UnixNano())
	switch p := pk.Content.(type) {
	case *packets.Puback:
		s.onPuback(p.PacketID, p.ReasonCode, p.Properties)
	case *packets.Publish:
		return s.received(ctx, p)
	case *packets.Suback:
		s.onCtrlAck(ctrlAnswer{suback: true, codes: p.Reasons})
	case *packets.Unsuback:
		s.onCtrlAck(ctrlAnswer{})
	case *packets.Pingresp:
	case *packets.Disconnect:
		return fmt.Errorf("upstream disconnected us: 0x%02x %s %s", p.ReasonCode, p.Reason(), reasonString(p.Properties))
	default:
		return fmt.Errorf("unexpected %s from upstream (protocol error)", pk.PacketType())
	}
	return nil
}

// readOne311 reads and handles one MQTT 3.1.1 packet.
func (s *session) readOne311(ctx context.Context) error {
	pk, err := wire.Read311(s.br)
	if err != nil {
		return fmt.Errorf("reading from upstream: %w", err)
	}
	s.lastRead.Store(time.Now().UnixNano())
	switch pk.Type {
	case packets.PUBLISH:
		p, err := pk.Publish()
		if err != nil {
			return fmt.Errorf("reading from upstream: %w", err)
		}
		return s.received(ctx, p)
	case packets.SUBACK:
		_, codes, err := pk.AckID()
		if err != nil {
			return fmt.Errorf("reading from upstream: %w", err)
		}
		s.onCtrlAck(ctrlAnswer{suback: true, codes: codes})
	case packets.UNSUBACK:
		s.onCtrlAck(ctrlAnswer{})
	case packets.PINGRESP:
	default:
		return fmt.Errorf("unexpected packet type %d from upstream (MQTT 3.1.1 protocol error)", pk.Type)
	}
	return nil
}

// received hands an inbound PUBLISH to the inbound loop, in order.
func (s *session) received(ctx context.Context, p *packets.Publish) error {
	if p.QoS > 1 {
		return fmt.Errorf("upstream sent a QoS %d PUBLISH on %q; subscriptions are QoS 1 at most (protocol error)", p.QoS, p.Topic)
	}
	s.b.c.inReceived.Add(1)
	s.releaseAcked() // before the send, which may wait
	select {
	case s.inbound <- p:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *session) onCtrlAck(a ctrlAnswer) {
	select {
	case s.ctrlAck <- a:
	default:
		s.b.log.Warn("unexpected SUBACK/UNSUBACK from upstream")
	}
}

// onPuback completes one QoS 1 publish: Ack on success, DeadLetter on a
// negative reason code [MQTT-3.4.2-1]. PUBACKs may arrive in any order.
func (s *session) onPuback(id uint16, code byte, props *packets.Properties) {
	s.mu.Lock()
	pd, ok := s.inflight[uint32(id)]
	if ok {
		delete(s.inflight, uint32(id))
	}
	s.mu.Unlock()
	if !ok {
		// Never attributed to anything: acknowledging a message on a guess
		// would be a loss.
		s.b.c.unknownPubacks.Add(1)
		s.b.log.Debug("PUBACK for an unknown packet identifier", "packet_id", id)
		return
	}
	s.unreleased++
	s.b.inflight.Add(-1)
	if f := s.b.tracePuback; f != nil {
		f(pd.seq, code)
	}
	if code == packets.PubackNoMatchingSubscribers {
		s.b.c.noSubscribers.Add(1)
	}
	if code >= 0x80 {
		reason := (&packets.Puback{ReasonCode: code}).Reason()
		s.deadLetter(pd, code, fmt.Sprintf("upstream PUBACK 0x%02x %s %s", code, reason, reasonString(props)))
		return
	}
	s.acks = append(s.acks, pd.seq)
}

// releaseAcked gives the window slots of the PUBACKs handled since the
// last call back to the writer, at once, wakes it, and then acknowledges
// their messages to the queue. The reader calls it before each read from
// the connection, before it may wait, and when it returns.
func (s *session) releaseAcked() {
	if n := s.unreleased; n > 0 {
		s.unreleased = 0
		s.mu.Lock()
		s.held -= n
		s.mu.Unlock()
		s.b.c.releases.Add(1)
		select {
		case s.slotFree <- struct{}{}:
		default: // already signalled
		}
	}
	for _, seq := range s.acks {
		s.ack(seq)
	}
	s.acks = s.acks[:0]
}

// inboundLoop publishes what came down, in order, and acknowledges each
// QoS 1 message after the local publish returned (PUBACKs in the order the
// PUBLISHes arrived [MQTT-4.6.0-2]).
func (s *session) inboundLoop(ctx context.Context) error {
	b := s.b
	var ack [4]byte
	for {
		var p *packets.Publish
		select {
		case p = <-s.inbound:
		case <-ctx.Done():
			return nil
		}
		r, ok := b.routes.Load().FirstIn(p.Topic)
		switch {
		case b.tapped(p.Topic, p.Payload):
			// A Call's response: not for the local broker.
		case b.cfg.HoldInbound:
			continue // not acknowledged: sent again after the next connect
		case ok:
			local := r.LocalTopic(p.Topic)
			if err := b.local.PublishLocal(local, p.Payload, p.Retain, min(p.QoS, r.wireQoS())); errors.Is(err, ErrLocalUnavailable) && p.QoS == 1 {
				// Not acknowledged: the upstream sends it again after the
				// next connect.
				return fmt.Errorf("inbound message on %q left for redelivery: %w", p.Topic, err)
			} else if err != nil {
				b.c.inDropped.Add(1)
				b.inRoute(r.Name).dropped.Add(1)
				b.log.Warn("publishing an inbound message locally failed", "topic", local, "err", err)
			} else {
				b.c.inDelivered.Add(1)
				b.inRoute(r.Name).delivered.Add(1)
			}
		default:
			// A subscription left in the upstream session by an older
			// configuration: acknowledge and drop.
			b.c.inDropped.Add(1)
			b.log.Debug("inbound message matches no in route", "topic", p.Topic)
		}
		if p.QoS == 1 {
			ack = [4]byte{packets.PUBACK << 4, 2, byte(p.PacketID >> 8), byte(p.PacketID)}
			s.wmu.Lock()
			err := s.writeLocked(ack[:])
			if err == nil {
				err = s.flushLocked()
			}
			s.wmu.Unlock()
			if err != nil {
				return fmt.Errorf("writing PUBACK to upstream: %w", err)
			}
		}
	}
}

// controlLoop subscribes the in routes now, and again whenever routes are
// reloaded. It always subscribes (also when the session was present): it is
// idempotent, and it picks up routes added while we were away. Retain
// Handling 1 avoids resending retained messages for existing subscriptions.
func (s *session) controlLoop(ctx context.Context) error {
	var current map[string]byte // filter -> qos
	for {
		want := map[string]byte{}
		for _, r := range s.b.routes.Load().all {
			if r.Direction.in() {
				want[r.RemoteFilter()] = r.wireQoS()
			}
		}
		t := s.b.tap.Load()
		if t != nil {
			for _, f := range t.filters {
				want[f] = 1
			}
		}
		var sub []packets.SubOptions
		for f, q := range want {
			if cq, ok := current[f]; !ok || cq != q {
				// 3.1.1 has neither No Local nor Retain Handling; the
				// encoder sends the QoS only.
				sub = append(sub, packets.SubOptions{Topic: f, QoS: q, NoLocal: true, RetainHandling: 1})
			}
		}
		var unsub []string
		for f := range current {
			if _, ok := want[f]; !ok {
				unsub = append(unsub, f)
			}
		}
		// At most maxFiltersPerPacket filters per SUBSCRIBE: AWS IoT Core
		// refuses more than 8.
		for len(sub) > 0 {
			n := min(len(sub), maxFiltersPerPacket)
			if err := s.subscribe(ctx, sub[:n]); err != nil {
				return err
			}
			sub = sub[n:]
		}
		for len(unsub) > 0 {
			n := min(len(unsub), maxFiltersPerPacket)
			var p []byte
			if s.v311 {
				p = wire.AppendUnsubscribe311(nil, controlID, unsub[:n])
			} else {
				var buf bytes.Buffer
				_, _ = (&packets.Unsubscribe{PacketID: controlID, Topics: unsub[:n], Properties: &packets.Properties{}}).WriteTo(&buf)
				p = buf.Bytes()
			}
			if _, err := s.control(ctx, p); err != nil {
				return err
			}
			unsub = unsub[n:]
		}
		current = want
		if t != nil {
			t.once.Do(func() { close(t.ready) })
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.b.resub:
		}
	}
}

// maxFiltersPerPacket bounds the filters of one SUBSCRIBE or UNSUBSCRIBE.
const maxFiltersPerPacket = 8

// subscribe sends one SUBSCRIBE and reports refused filters (SUBACK 0x80 in
// 3.1.1, >= 0x80 in MQTT 5) in the state and the log.
func (s *session) subscribe(ctx context.Context, sub []packets.SubOptions) error {
	var p []byte
	if s.v311 {
		p = wire.AppendSubscribe311(nil, controlID, sub)
	} else {
		var buf bytes.Buffer
		_, _ = (&packets.Subscribe{PacketID: controlID, Subscriptions: sub, Properties: &packets.Properties{}}).WriteTo(&buf)
		p = buf.Bytes()
	}
	a, err := s.control(ctx, p)
	if err != nil {
		return err
	}
	for i, rc := range a.codes {
		if rc >= 0x80 && i < len(sub) {
			err := fmt.Errorf("upstream refused subscription %q: SUBACK 0x%02x", sub[i].Topic, rc)
			s.b.setError(err)
			s.b.log.Warn("upstream refused a subscription; inbound messages on it will not arrive", "topic", sub[i].Topic, "code", rc)
		}
	}
	return nil
}

// control sends one encoded SUBSCRIBE or UNSUBSCRIBE and waits for its
// answer (none when ctx ends first).
func (s *session) control(ctx context.Context, p []byte) (ctrlAnswer, error) {
	s.wmu.Lock()
	err := s.writeLocked(p)
	if err == nil {
		err = s.flushLocked()
	}
	s.wmu.Unlock()
	if err != nil {
		return ctrlAnswer{}, fmt.Errorf("writing SUBSCRIBE to upstream: %w", err)
	}
	t := time.NewTimer(s.b.cfg.ConnectTimeout)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctrlAnswer{}, nil
	case <-t.C:
		return ctrlAnswer{}, fmt.Errorf("no SUBACK from upstream within %v", s.b.cfg.ConnectTimeout)
	case a := <-s.ctrlAck:
		return a, nil
	}
}

// pingLoop keeps the connection alive and detects a dead one: PINGREQ every
// keepalive/2 when the writer is idle; no packet at all from the server for
// 1.5 x keepalive ends the connection [MQTT-3.1.2-22].
func (s *session) pingLoop(ctx context.Context) error {
	t := time.NewTicker(s.keepAlive / 2)
	defer t.Stop()
	ping := [2]byte{packets.PINGREQ << 4, 0}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if since := time.Since(time.Unix(0, s.lastRead.Load())); since > s.keepAlive*3/2 {
			return fmt.Errorf("upstream silent for %v (keepalive %v)", since.Round(time.Millisecond), s.keepAlive)
		}
		if s.wmu.TryLock() {
			err := s.writeLocked(ping[:])
			if err == nil {
				err = s.flushLocked()
			}
			s.wmu.Unlock()
			if err != nil {
				return fmt.Errorf("writing PINGREQ: %w", err)
			}
		}
	}
}

// appendPublish encodes m's PUBLISH on this connection (wire.AppendPublish)
// to prefix+topic with payload (both after the envelope): with the dedup user
// properties when the envelope is user-properties (MQTT 5 only), retained
// only when the upstream allows retain, and without a property section in
// 3.1.1.
func (s *session) appendPublish(dst []byte, prefix, topic string, payload []byte, m store.Message, qos byte, id uint16) []byte {
	p := wire.Publish{
		TopicPrefix: prefix, Topic: topic, Payload: payload, QoS: qos, ID: id,
		Retain: m.Retain && s.server.retain,
		V311:   s.v311,
	}
	if s.b.cfg.Envelope == EnvelopeUserProperties {
		up := s.b.cfg.UserProps
		p.DeviceKey, p.Device = up.DeviceKey, m.Device
		p.SeqKey, p.Seq = up.SeqKey, m.Seq
	}
	return wire.AppendPublish(dst, p)
}
