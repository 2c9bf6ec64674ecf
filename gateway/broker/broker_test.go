package broker

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/gateway/broker/listen"
	"github.com/edgegw/edgegw/gateway/gatewaytest"
	"github.com/edgegw/edgegw/hw"
)

type env struct {
	pki     *gatewaytest.PKI
	dir     string
	b       *Broker
	addr    string // mTLS listener
	plain   string // loopback plaintext listener
	audit   string
	metrics *Metrics
}

func newEnv(t testing.TB, mod func(*Options)) *env {
	t.Helper()
	return newEnvBefore(t, mod, nil)
}

// newEnvBefore is newEnv calling before (when not nil) between New and
// Start.
func newEnvBefore(t testing.TB, mod func(*Options), before func(*Broker)) *env {
	t.Helper()
	e := &env{pki: gatewaytest.NewPKI(t, "site"), dir: t.TempDir()}
	gatewaytest.WriteSite(t, e.dir)
	key, err := hw.Open(context.Background(), "file:"+e.pki.ServerKey)
	if err != nil {
		t.Fatalf("opening server key: %v", err)
	}
	t.Cleanup(func() { key.Close() })
	e.audit = filepath.Join(e.dir, "audit.log")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	aud, err := audit.New(audit.Options{File: e.audit, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { aud.Close() })
	e.metrics = new(Metrics)
	o := Options{
		Listeners: []ListenerOptions{
			{Name: "lan", Address: "127.0.0.1:0", Key: key, TLS: &listen.TLSFiles{
				CA: e.pki.CAFile, Cert: e.pki.ServerCert, CRL: e.pki.CRLFile, MinVersion: tls.VersionTLS12, RequireClientCert: true}},
			{Name: "local", Address: "127.0.0.1:0"},
		},
		Registry: filepath.Join(e.dir, "devices.yaml"),
		Policies: filepath.Join(e.dir, "policies"),
		Logger:   log,
		Audit:    aud,
		Metrics:  e.metrics,
		Watch:    50 * time.Millisecond,
	}
	if mod != nil {
		mod(&o)
	}
	b, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if before != nil {
		before(b)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	e.b = b
	e.addr = b.Addr("lan").String()
	if a := b.Addr("local"); a != nil {
		e.plain = a.String()
	}
	return e
}

func (e *env) dialTLS(t testing.TB, cert *gatewaytest.Client, pki *gatewaytest.PKI) (net.Conn, error) {
	if pki == nil {
		pki = e.pki
	}
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", e.addr, pki.ClientTLS(cert))
	if err != nil {
		return nil, err
	}
	// TLS 1.3: a refused client certificate surfaces on the first read.
	return c, nil
}

// dialThing dials the LAN listener with a certificate issued to thing, fails
// the test if that fails, and closes the connection when the test ends.
func (e *env) dialThing(t testing.TB, thing string) net.Conn {
	t.Helper()
	conn, err := e.dialTLS(t, e.pki.Issue(t, thing), nil)
	if err != nil {
		t.Fatalf("dial as %s: %v", thing, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// connectV5 connects with MQTT 5 and returns the client (ack may carry a refusal).
func (e *env) connectV5(t testing.TB, cert *gatewaytest.Client, clientID string) (*gatewaytest.V5, error) {
	t.Helper()
	conn, err := e.dialTLS(t, cert, nil)
	if err != nil {
		return nil, err
	}
	return gatewaytest.ConnectV5(t, conn, clientID)
}

// raw is a minimal MQTT 3.1.1 client for refusal and limit tests.
type raw struct {
	conn net.Conn
	r    *bufio.Reader
	v    byte // protocol version (0: 4, MQTT 3.1.1)
}

func (e *env) rawV3(t testing.TB, cert *gatewaytest.Client, clientID string) (*raw, byte) {
	t.Helper()
	conn, err := e.dialTLS(t, cert, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	r := &raw{conn: conn, r: bufio.NewReader(conn)}
	r.send(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: clientID}})
	pk, err := r.read(t)
	if err != nil {
		t.Fatalf("reading CONNACK: %v", err)
	}
	if pk.FixedHeader.Type != packets.Connack {
		t.Fatalf("got packet type %d; want CONNACK", pk.FixedHeader.Type)
	}
	return r, pk.ReasonCode
}

func (r *raw) send(t testing.TB, pk packets.Packet) {
	t.Helper()
	if pk.ProtocolVersion == 0 {
		pk.ProtocolVersion = 4
	}
	b := encode(t, pk)
	_ = r.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.conn.Write(b); err != nil {
		t.Fatalf("writing: %v", err)
	}
}

// encode is pk's bytes by mochi's encoder (CONNECT, PUBLISH, PUBREL,
// SUBSCRIBE: what the raw-wire tests send).
func encode(t testing.TB, pk packets.Packet) []byte {
	t.Helper()
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Pubrel:
		err = pk.PubrelEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	default:
		t.Fatalf("encode: no encoder for packet type %d in this test helper", pk.FixedHeader.Type)
	}
	if err != nil {
		t.Fatalf("encoding: %v", err)
	}
	return buf.Bytes()
}

func (r *raw) read(t testing.TB) (packets.Packet, error) {
	_ = r.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var pk packets.Packet
	b, err := r.r.ReadByte()
	if err != nil {
		return pk, err
	}
	if err := pk.FixedHeader.Decode(b); err != nil {
		return pk, err
	}
	n, _, err := packets.DecodeLength(r.r)
	if err != nil {
		return pk, err
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(r.r, body); err != nil {
		return pk, err
	}
	pk.ProtocolVersion = 4
	if r.v != 0 {
		pk.ProtocolVersion = r.v
	}
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	}
	return pk, err
}

// TestConnectRefusals: certificates that must fail the handshake, identities
// that must get CONNACK not authorized, and valid 3.1.1 / 5 connects.
func TestConnectRefusals(t *testing.T) {
	e := newEnv(t, nil)
	other := gatewaytest.NewPKI(t, "other")
	a := e.pki.Issue(t, "sensor-a")
	revoked := e.pki.Issue(t, "sensor-b")
	e.pki.Revoke(t, revoked.Cert)
	if err := e.b.Reload("test"); err != nil {
		t.Fatalf("reload: %v", err)
	}

	handshake := []struct {
		name string
		cert *gatewaytest.Client
		pki  *gatewaytest.PKI // the client's trust (server verification)
	}{
		{"no client certificate", nil, e.pki},
		{"certificate from another CA", other.Issue(t, "sensor-a"), e.pki},
		{"expired certificate", e.pki.Issue(t, "sensor-a", gatewaytest.Expired()), e.pki},
		{"revoked certificate", revoked, e.pki},
	}
	for _, tc := range handshake {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := e.dialTLS(t, tc.cert, tc.pki)
			if err == nil {
				// TLS 1.3 reports the client-certificate refusal on first read.
				_, err = gatewaytest.ConnectV5(t, conn, "sensor-a")
			}
			if err == nil {
				t.Fatal("connected; want refused")
			}
		})
	}

	connack := []struct {
		name     string
		cert     *gatewaytest.Client
		clientID string
		want5    byte
		want3    byte
	}{
		{"wrong client ID", a, "sensor-b", 0x87, 5},
		{"disabled thing", e.pki.Issue(t, "gone"), "gone", 0x87, 5},
		{"unknown thing", e.pki.Issue(t, "stranger"), "stranger", 0x87, 5},
		{"valid", a, "sensor-a", 0, 0},
		{"empty client ID gets the thing name", a, "", 0, 0},
	}
	for _, tc := range connack {
		t.Run(tc.name+"/v5", func(t *testing.T) {
			c, err := e.connectV5(t, tc.cert, tc.clientID)
			if c == nil || c.Ack == nil {
				t.Fatalf("no CONNACK: %v", err)
			}
			if c.Ack.ReasonCode != tc.want5 {
				t.Fatalf("CONNACK reason 0x%02x; want 0x%02x", c.Ack.ReasonCode, tc.want5)
			}
			if tc.want5 == 0 && tc.clientID == "" && c.Ack.Properties.AssignedClientID != "sensor-a" {
				t.Fatalf("assigned client ID %q; want sensor-a", c.Ack.Properties.AssignedClientID)
			}
		})
		t.Run(tc.name+"/v3.1.1", func(t *testing.T) {
			_, rc := e.rawV3(t, tc.cert, tc.clientID)
			if rc != tc.want3 {
				t.Fatalf("CONNACK return code %d; want %d", rc, tc.want3)
			}
		})
	}
	e.b.audit.Close()
	log, _ := os.ReadFile(e.audit)
	for _, want := range []string{`"event":"connect_refused"`, `"event":"handshake_failed"`, `"event":"connect"`, `"serial":"`} {
		if !bytes.Contains(log, []byte(want)) {
			t.Errorf("audit log lacks %s:\n%s", want, log)
		}
	}
}

// TestAuthorization: a publish to another device's topic reaches nobody,
// unauthorized subscribes fail per filter, Receive is checked per delivery,
// RetainPublish is separate from Publish.
func TestAuthorization(t *testing.T) {
	e := newEnv(t, nil)
	mon, err := e.connectV5(t, e.pki.Issue(t, "monitor"), "monitor")
	if err != nil || mon.Ack.ReasonCode != 0 {
		t.Fatalf("monitor connect: %v", err)
	}
	if rc := mon.Subscribe(t, "sensors/#", 1); rc != 1 {
		t.Fatalf("monitor SUBACK 0x%02x; want 1", rc)
	}
	aCert := e.pki.Issue(t, "sensor-a")
	a, err := e.connectV5(t, aCert, "sensor-a")
	if err != nil {
		t.Fatal(err)
	}

	// MQTT 5: denied QoS 1 publish gets PUBACK 0x87 and reaches nobody.
	if rc, _ := a.Publish(t, "sensors/sensor-b/temp", 1, false, "forged"); rc != 0x87 {
		t.Fatalf("PUBACK 0x%02x for another device's topic; want 0x87", rc)
	}
	// Receive denied for the monitor: skipped.
	if rc, err := a.Publish(t, "sensors/sensor-a/secret", 1, false, "s"); rc != 0 || err != nil {
		t.Fatalf("own secret topic: 0x%02x %v", rc, err)
	}
	// Retain without RetainPublish: refused (0x87), not delivered.
	if rc, _ := a.Publish(t, "sensors/sensor-a/temp", 1, true, "r"); rc != 0x87 {
		t.Fatalf("retain without iot:RetainPublish: PUBACK 0x%02x; want 0x87", rc)
	}
	if rc, err := a.Publish(t, "sensors/sensor-a/temp", 1, false, "ok"); rc != 0 || err != nil {
		t.Fatalf("own topic: 0x%02x %v", rc, err)
	}
	mon.ExpectOnly(t, "sensors/sensor-a/temp")

	// Subscribe: per-filter failure codes.
	if rc := a.Subscribe(t, "sensors/#", 1); rc != 0x87 {
		t.Fatalf("v5 unauthorized SUBACK 0x%02x; want 0x87", rc)
	}
	if rc := a.Subscribe(t, "cmd/sensor-a", 1); rc != 1 {
		t.Fatalf("v5 authorized SUBACK 0x%02x; want 1", rc)
	}
	if rc, _ := mon.Publish(t, "cmd/sensor-a", 1, false, "go"); rc != 0 {
		t.Fatalf("monitor cmd publish 0x%02x", rc)
	}
	a.ExpectOnly(t, "cmd/sensor-a")

	// MQTT 3.1.1: SUBACK 0x80 for a denied filter, granted QoS for the allowed one.
	b3, rc := e.rawV3(t, e.pki.Issue(t, "sensor-b"), "sensor-b")
	if rc != 0 {
		t.Fatalf("v3 connect rc %d", rc)
	}
	b3.send(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 7,
		Filters: packets.Subscriptions{{Filter: "sensors/#", Qos: 1}, {Filter: "cmd/sensor-b", Qos: 1}}})
	pk, err := b3.read(t)
	if err != nil || pk.FixedHeader.Type != packets.Suback {
		t.Fatalf("v3 SUBACK: %v (type %d)", err, pk.FixedHeader.Type)
	}
	if !bytes.Equal(pk.ReasonCodes, []byte{0x80, 1}) {
		t.Fatalf("v3 SUBACK codes % x; want 80 01", pk.ReasonCodes)
	}
	// MQTT 3.1.1: a denied QoS 0 publish is dropped silently; a denied QoS 1
	// publish disconnects the client. Neither reaches the monitor.
	b3.send(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: "sensors/sensor-a/temp", Payload: []byte("q0")})
	b3.send(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: 8, TopicName: "sensors/sensor-a/temp", Payload: []byte("q1")})
	for {
		pk, err := b3.read(t)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "reset") {
				break
			}
			t.Fatalf("v3 after denied QoS 1 publish: %v; want the connection closed", err)
		}
		if pk.FixedHeader.Type == packets.Puback {
			t.Fatalf("v3 denied publish got a PUBACK")
		}
	}
	if rc, _ := a.Publish(t, "sensors/sensor-a/marker", 1, false, "m"); rc != 0 {
		t.Fatal("marker publish refused")
	}
	mon.ExpectOnly(t, "sensors/sensor-a/marker")
	if got := e.metrics.DeniedPublish.Load(); got != 3 {
		t.Errorf("DeniedPublish = %d; want 3", got)
	}
	if got := e.metrics.DeniedReceive.Load(); got != 1 {
		t.Errorf("DeniedReceive = %d; want 1", got)
	}
}

// TestPlaintextLoopback: the client ID is the thing name; policy applies.
func TestPlaintextLoopback(t *testing.T) {
	e := newEnv(t, nil)
	conn, err := net.DialTimeout("tcp", e.plain, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c, err := gatewaytest.ConnectV5(t, conn, "sensor-a")
	if err != nil || c.Ack.ReasonCode != 0 {
		t.Fatalf("loopback connect as sensor-a: %v", err)
	}
	if rc, _ := c.Publish(t, "sensors/sensor-b/x", 1, false, "x"); rc != 0x87 {
		t.Fatalf("PUBACK 0x%02x; want 0x87", rc)
	}
	conn2, err := net.DialTimeout("tcp", e.plain, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := gatewaytest.ConnectV5(t, conn2, "nobody")
	if c2 == nil || c2.Ack == nil || c2.Ack.ReasonCode != 0x87 {
		t.Fatalf("unknown thing on loopback: %+v; want CONNACK 0x87", c2)
	}
	if _, err := New(Options{Listeners: []ListenerOptions{{Name: "x", Address: "0.0.0.0:0"}},
		Registry: filepath.Join(e.dir, "devices.yaml"), Policies: filepath.Join(e.dir, "policies")}); !errors.Is(err, ErrPlaintextNotLoopback) {
		t.Fatalf("plaintext on 0.0.0.0: %v; want ErrPlaintextNotLoopback", err)
	}
}

// TestRevokeWhileConnected: rewriting the CRL cuts the revoked client (file
// watch) while another client's QoS 1 stream goes on without loss or reconnect.
func TestRevokeWhileConnected(t *testing.T) {
	e := newEnv(t, nil)
	mon, err := e.connectV5(t, e.pki.Issue(t, "monitor"), "monitor")
	if err != nil {
		t.Fatal(err)
	}
	if rc := mon.Subscribe(t, "sensors/#", 1); rc != 1 {
		t.Fatalf("SUBACK 0x%02x", rc)
	}
	aCert := e.pki.Issue(t, "sensor-a")
	a, err := e.connectV5(t, aCert, "sensor-a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.connectV5(t, e.pki.Issue(t, "sensor-b"), "sensor-b")
	if err != nil {
		t.Fatal(err)
	}
	const n = 400
	done := make(chan error, 1)
	go func() {
		for i := range n {
			if rc, err := b.Publish(t, "sensors/sensor-b/seq", 1, false, fmt.Sprint(i)); err != nil || rc != 0 {
				done <- fmt.Errorf("publish %d: rc 0x%02x %v", i, rc, err)
				return
			}
			if i == n/4 {
				e.pki.Revoke(t, aCert.Cert)
			}
		}
		done <- nil
	}()
	select {
	case <-a.Gone:
	case <-time.After(10 * time.Second):
		t.Fatal("revoked client still connected after 10s")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for i := range n {
		m := mon.ExpectOnly(t, "sensors/sensor-b/seq")
		if string(m.Payload) != fmt.Sprint(i) {
			t.Fatalf("message %d: payload %q (loss or reorder)", i, m.Payload)
		}
	}
	select {
	case <-b.Gone:
		t.Fatal("sensor-b was disconnected")
	case <-mon.Gone:
		t.Fatal("monitor was disconnected")
	default:
	}
	if got := e.metrics.RevocationDisconnects.Load(); got != 1 {
		t.Errorf("RevocationDisconnects = %d; want 1", got)
	}
	if _, err := e.connectV5(t, aCert, "sensor-a"); err == nil {
		t.Fatal("revoked certificate reconnected")
	}
}

// TestHandshakeDeadline: idle connections (from another address, 127.0.0.2:
// the budget is shared per address, see TestFairAdmission) are closed at
// the deadline or refused at once, and do not keep a sensor out.
func TestHandshakeDeadline(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Limits.HandshakeTimeout = 500 * time.Millisecond })
	var idle []net.Conn
	other := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	for range 200 {
		c, err := other.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	c, err := e.connectV5(t, e.pki.Issue(t, "sensor-a"), "sensor-a")
	if err != nil || c.Ack.ReasonCode != 0 {
		t.Fatalf("sensor blocked by idle connections: %v", err)
	}
	for i, c := range idle {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatalf("idle conn %d: read data; want closed", i)
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("idle conn %d still open after 10s", i)
		}
	}
	if got, refused := e.metrics.HandshakeTimeouts.Load(), e.metrics.PendingRejected.Load(); got < 1 || got+refused < 200 {
		t.Errorf("HandshakeTimeouts = %d, PendingRejected = %d; want some timeouts and 200 in all", got, refused)
	}
}

// TestPendingCap: connections beyond max_pending_handshakes are closed at once.
func TestPendingCap(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Limits.MaxPendingHandshakes = 10
		o.Limits.HandshakeTimeout = 5 * time.Second
	})
	for range 20 {
		c, err := net.DialTimeout("tcp", e.addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.metrics.PendingRejected.Load() < 10 {
		if time.Now().After(deadline) {
			t.Fatalf("PendingRejected = %d; want 10", e.metrics.PendingRejected.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestOversizedPacket: a PUBLISH announcing 200 MiB is refused from its
// header; the broker never allocates the announced size.
func TestOversizedPacket(t *testing.T) {
	e := newEnv(t, nil)
	r, rc := e.rawV3(t, e.pki.Issue(t, "sensor-a"), "sensor-a")
	if rc != 0 {
		t.Fatalf("connect rc %d", rc)
	}
	hdr := []byte{0x30}
	hdr = binary.AppendUvarint(hdr, 200<<20)
	if _, err := r.conn.Write(hdr); err != nil {
		t.Fatal(err)
	}
	if _, err := r.read(t); err == nil {
		t.Fatal("connection still open after an oversized PUBLISH header")
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.metrics.PacketTooLarge.Load() != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := e.metrics.PacketTooLarge.Load(); got != 1 {
		t.Fatalf("PacketTooLarge = %d; want 1", got)
	}
}

// TestReloadInvalidPolicy: valid -> invalid (kept old) -> valid (new in force).
func TestReloadInvalidPolicy(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Watch = -1 })
	aCert := e.pki.Issue(t, "sensor-a")
	a, err := e.connectV5(t, aCert, "sensor-a")
	if err != nil {
		t.Fatal(err)
	}
	pol := filepath.Join(e.dir, "policies", "sensor.json")
	gatewaytest.WriteFile(t, pol, []byte(`{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Publsh"`), 0o644)
	if err := e.b.Reload("test"); err == nil {
		t.Fatal("invalid policy accepted")
	}
	if got := e.metrics.ReloadFailures.Load(); got != 1 {
		t.Fatalf("ReloadFailures = %d; want 1", got)
	}
	if rc, _ := a.Publish(t, "sensors/sensor-a/t", 1, false, "x"); rc != 0 {
		t.Fatalf("old policy not in force after a failed reload: PUBACK 0x%02x", rc)
	}
	if c, err := e.connectV5(t, aCert, "sensor-a2"); err == nil || c.Ack.ReasonCode != 0x87 {
		// sensor-a takes over its own session below; a new client id must still be refused.
		t.Fatalf("old policy: other client ID accepted")
	}
	// Valid again, now publishing only under sensors/<thing>/v2/* and without Subscribe.
	gatewaytest.WriteFile(t, pol, []byte(strings.ReplaceAll(gatewaytest.SensorPolicy, "${iot:Connection.Thing.ThingName}/*", "${iot:Connection.Thing.ThingName}/v2/*")), 0o644)
	if rc := a.Subscribe(t, "cmd/sensor-a", 1); rc != 1 {
		t.Fatalf("subscribe 0x%02x", rc)
	}
	if err := e.b.Reload("test"); err != nil {
		t.Fatalf("valid policy refused: %v", err)
	}
	if rc, _ := a.Publish(t, "sensors/sensor-a/t", 1, false, "x"); rc != 0x87 {
		t.Fatalf("new policy not in force: PUBACK 0x%02x; want 0x87", rc)
	}
	if rc, _ := a.Publish(t, "sensors/sensor-a/v2/t", 1, false, "x"); rc != 0 {
		t.Fatalf("new policy: PUBACK 0x%02x; want 0", rc)
	}
	// Disable the thing: it is disconnected on reload.
	gatewaytest.WriteFile(t, filepath.Join(e.dir, "devices.yaml"), []byte(strings.Replace(gatewaytest.Registry, "  - name: sensor-a\n    policies: [sensor]\n", "  - name: sensor-a\n    policies: [sensor]\n    disabled: true\n", 1)), 0o644)
	if err := e.b.Reload("test"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.Gone:
	case <-time.After(10 * time.Second):
		t.Fatal("disabled thing still connected")
	}
}

// TestLoadNoQoS1Drops: 16 publishers -> 1 subscriber over mTLS. Every QoS 1
// message arrives (counted by publisher and sequence); every QoS 0 delivery
// is either received or counted as dropped.
func TestLoadNoQoS1Drops(t *testing.T) {
	// A small write queue makes mochi's drop path reachable in a short test.
	e := newEnv(t, func(o *Options) { o.Limits.ClientWriteQueue = 64 })
	pubs, per := 16, 300
	if testing.Short() {
		per = 100
	}
	mon, err := e.connectV5(t, e.pki.Issue(t, "monitor"), "monitor")
	if err != nil {
		t.Fatal(err)
	}
	mon.Subscribe(t, "sensors/#", 1)
	var clients []*gatewaytest.V5
	for i := range pubs {
		name := fmt.Sprintf("load-%02d", i)
		c, err := e.connectV5(t, e.pki.Issue(t, name), name)
		if err != nil || c.Ack.ReasonCode != 0 {
			t.Fatalf("%s: %v", name, err)
		}
		clients = append(clients, c)
	}
	dropped := func() int64 {
		return e.metrics.DroppedQoS0.Load() + e.metrics.DroppedQoS1.Load() + e.metrics.InflightDropped.Load() + e.metrics.InflightFull.Load()
	}
	for _, qos := range []byte{1, 0} {
		base := dropped()
		var wg sync.WaitGroup
		errs := make(chan error, pubs)
		for i, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				for seq := range per {
					_, err := c.C.PublishWithOptions(ctx, &paho.Publish{Topic: fmt.Sprintf("sensors/load-%02d/q%d", i, qos), QoS: qos,
						Payload: []byte(fmt.Sprintf("%d/%d", i, seq))}, paho.PublishOptions{Method: paho.PublishMethod_AsyncSend})
					if err != nil {
						errs <- fmt.Errorf("publisher %d seq %d: %w", i, seq, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		total := pubs * per
		deadline := time.After(30 * time.Second)
	collect:
		for len(seen)+int(dropped()-base) < total {
			select {
			case m := <-mon.Msgs:
				if seen[string(m.Payload)] {
					continue // a QoS 1 duplicate is allowed
				}
				seen[string(m.Payload)] = true
			case <-time.After(20 * time.Millisecond):
				if qos == 0 && len(seen)+int(dropped()-base) >= total {
					break collect
				}
			case <-deadline:
				per := map[string]int{}
				for k := range seen {
					p, _, _ := strings.Cut(k, "/")
					per[p]++
				}
				t.Fatalf("QoS %d: received %d + dropped %d of %d; per publisher %v; broker: received %d sent %d dropped %d clients %d",
					qos, len(seen), dropped()-base, total, per, e.b.srv.Info.MessagesReceived, e.b.srv.Info.MessagesSent, e.b.srv.Info.MessagesDropped, e.b.Clients())
			}
		}
		t.Logf("QoS %d: %d publishers x %d: received %d, dropped (counted) %d, back-pressure waits %d",
			qos, pubs, per, len(seen), dropped()-base, e.metrics.BackpressureWaits.Load())
		if qos == 1 {
			if len(seen) != total || dropped() != base {
				t.Fatalf("QoS 1: received %d of %d, %d dropped; want all, none dropped", len(seen), total, dropped()-base)
			}
		}
		// Drain duplicates / stragglers before the next round.
		for len(mon.Msgs) > 0 {
			<-mon.Msgs
		}
	}
}

// TestWatchSeesChangeWhileStarting: a CRL rewritten after New read it and
// before the watch began (the daemon opens its queue and restores sessions
// in between) is a change: it is reloaded and the revoked certificate is
// refused. The watch's baseline is what New read, not what Start sees.
func TestWatchSeesChangeWhileStarting(t *testing.T) {
	pki := gatewaytest.NewPKI(t, "site")
	key, err := hw.Open(context.Background(), "file:"+pki.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { key.Close() })
	revoked, valid := pki.Issue(t, "sensor-b"), pki.Issue(t, "sensor-b")
	e := newEnvBefore(t, func(o *Options) {
		o.Listeners[0].Key = key
		o.Listeners[0].TLS.CA, o.Listeners[0].TLS.Cert, o.Listeners[0].TLS.CRL = pki.CAFile, pki.ServerCert, pki.CRLFile
	}, func(*Broker) { pki.Revoke(t, revoked.Cert) })
	eventually(t, "the CRL rewritten before Start is reloaded", func() bool { return e.metrics.Reloads.Load() >= 1 })
	connects := func(c *gatewaytest.Client) bool {
		conn, err := e.dialTLS(t, c, pki)
		if err != nil {
			return false
		}
		v5, err := gatewaytest.ConnectV5(t, conn, "sensor-b")
		return err == nil && v5.Ack != nil && v5.Ack.ReasonCode == 0
	}
	if !connects(valid) {
		t.Fatalf("sensor-b's valid certificate was refused; want it to connect")
	}
	if connects(revoked) {
		t.Fatalf("sensor-b's revoked certificate connected after the reload; want it refused")
	}
}
