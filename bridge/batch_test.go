package bridge

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// windowUpstream is a hand-written MQTT 5 server that announces Receive
// Maximum rm and answers only a full window: once rm publishes are
// unacknowledged it sends their rm PUBACKs in one socket write (over TLS,
// each PUBACK in its own TLS record, as Mosquitto writes them, all records in
// that one write). It records the seq of every PUBLISH in arrival order and
// how many of its socket reads carried publishes.
type windowUpstream struct {
	t   testing.TB
	ln  net.Listener
	rm  int
	tls *tls.Config // nil: plain TCP

	mu         sync.Mutex
	seqs       []uint64
	pubReads   int // socket reads that carried PUBLISH bytes
	violations []string
}

func startWindowUpstream(t testing.TB, rm int, tc *tls.Config) *windowUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &windowUpstream{t: t, ln: ln, rm: rm, tls: tc}
	gatewaytest.ServeAll(t, ln, u.serve)
	return u
}

func (u *windowUpstream) url() *url.URL {
	scheme := "mqtt"
	if u.tls != nil {
		scheme = "mqtts"
	}
	return &url.URL{Scheme: scheme, Host: u.ln.Addr().String()}
}

func (u *windowUpstream) violate(format string, args ...any) {
	u.mu.Lock()
	u.violations = append(u.violations, fmt.Sprintf(format, args...))
	u.mu.Unlock()
}

// heldConn is the server's TCP connection: it counts the reads that follow
// a PUBLISH being parsed, and while hold is set it keeps what is written
// (TLS records) to send it in one write at release.
type heldConn struct {
	net.Conn
	hold  bool
	held  []byte
	reads int
}

func (c *heldConn) Read(p []byte) (int, error) {
	c.reads++
	return c.Conn.Read(p)
}

func (c *heldConn) Write(p []byte) (int, error) {
	if c.hold {
		c.held = append(c.held, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *heldConn) release() error {
	c.hold = false
	_, err := c.Conn.Write(c.held)
	c.held = c.held[:0]
	return err
}

func (u *windowUpstream) serve(raw net.Conn) {
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(30 * time.Second)) // a test ends by itself
	hc := &heldConn{Conn: raw}
	var c net.Conn = hc
	if u.tls != nil {
		tc := tls.Server(hc, u.tls)
		if err := tc.Handshake(); err != nil {
			u.violate("TLS handshake: %v", err)
			return
		}
		c = tc
	}
	br := bufio.NewReader(c)
	pk, err := packets.ReadPacket(br)
	if err != nil {
		return
	}
	if _, ok := pk.Content.(*packets.Connect); !ok {
		u.violate("first packet %s, not CONNECT", pk.PacketType())
		return
	}
	rm := uint16(u.rm)
	if _, err := (&packets.Connack{Properties: &packets.Properties{ReceiveMaximum: &rm}}).WriteTo(c); err != nil {
		return
	}
	var window []uint16
	readsBefore := hc.reads
	for {
		pk, err := packets.ReadPacket(br)
		if err != nil {
			return
		}
		switch p := pk.Content.(type) {
		case *packets.Pingreq:
			_, _ = c.Write([]byte{packets.PINGRESP << 4, 0})
			continue
		case *packets.Disconnect:
			return
		case *packets.Publish:
			var seq uint64
			if p.Properties != nil {
				for _, up := range p.Properties.User {
					if up.Key == "seq" {
						seq, _ = strconv.ParseUint(up.Value, 10, 64)
					}
				}
			}
			u.mu.Lock()
			u.seqs = append(u.seqs, seq)
			u.pubReads += hc.reads - readsBefore
			readsBefore = hc.reads
			u.mu.Unlock()
			window = append(window, p.PacketID)
		default:
			u.violate("unexpected %s", pk.PacketType())
			return
		}
		if len(window) > u.rm {
			u.violate("%d publishes unacknowledged; Receive Maximum %d [MQTT-3.3.4-9]", len(window), u.rm)
		}
		if len(window) < u.rm {
			continue
		}
		hc.hold = true
		for _, id := range window { // one TLS record each
			if _, err := c.Write([]byte{packets.PUBACK << 4, 2, byte(id >> 8), byte(id)}); err != nil {
				return
			}
		}
		if err := hc.release(); err != nil {
			return
		}
		window = window[:0]
	}
}

// TestWindowRefillBatched: the upstream (Receive Maximum 20) acknowledges
// each full window in one write. The bridge must release the window's slots
// together and refill the window with one write of 20 PUBLISHes, not one
// write per PUBACK, over plain TCP and over TLS with each PUBACK in its own
// TLS record (crypto/tls returns one record per Read, so the bridge cannot
// count PUBACKs in its own buffer: it releases before reading the socket
// again). Every message still arrives in queue order and is acknowledged to
// the queue only after its PUBACK.
func TestWindowRefillBatched(t *testing.T) {
	const rm, n = 20, 400 // n a multiple of rm: every window is full
	pki := gatewaytest.NewPKI(t, "batch")
	cert, err := tls.LoadX509KeyPair(pki.ServerCert, pki.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(pki.CA)
	for _, tc := range []struct {
		name string
		srv  *tls.Config
	}{
		{"plain TCP", nil},
		{"TLS, one record per PUBACK", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := startWindowUpstream(t, rm, tc.srv)
			q := newAckTrace(newTestQueue(t))
			sent := enqueueSensors(t, q, 4, n/4, time.Now)
			cfg := Config{
				Upstreams:      []Upstream{{URL: up.url(), ServerName: "localhost"}},
				ClientID:       gatewayCN,
				KeepAlive:      30 * time.Second,
				ConnectTimeout: 3 * time.Second,
				Inflight:       1024,
				UserProps:      UserProps{DeviceKey: "device", SeqKey: "seq"},
				Routes:         []Route{telemetry},
			}
			if tc.srv != nil {
				cfg.TLS = &tls.Config{RootCAs: pool}
			}
			b := runBridge(t, cfg, q, nil)
			eventually(t, 20*time.Second, "every message acknowledged to the queue", func() bool {
				q.mu.Lock()
				defer q.mu.Unlock()
				return len(q.acked) == len(sent)
			})
			st := b.State()

			up.mu.Lock()
			defer up.mu.Unlock()
			if len(up.violations) > 0 {
				t.Errorf("upstream: %d violations, first: %v", len(up.violations), up.violations[0])
			}
			if len(up.seqs) != n {
				t.Errorf("upstream received %d publishes; want %d (no resends on one connection)", len(up.seqs), n)
			}
			for i := 1; i < len(up.seqs); i++ {
				if up.seqs[i] <= up.seqs[i-1] {
					t.Errorf("publish %d: seq %d after %d; want queue order", i, up.seqs[i], up.seqs[i-1])
					break
				}
			}
			q.mu.Lock()
			for _, seq := range sent {
				if q.acked[seq].Before(q.puback[seq].at) || q.puback[seq].at.IsZero() {
					t.Errorf("seq %d acknowledged to the queue without its PUBACK first", seq)
				}
			}
			q.mu.Unlock()

			// n/rm windows: each one PUBACK read, one slot release, one
			// write of publishes (the first window is written before any
			// PUBACK). Twice that is slack for a window's PUBACKs split
			// across two reads; one release or write per PUBACK is n.
			if want := 2 * n / rm; st.SlotReleases > uint64(want) {
				t.Errorf("slot releases: got %d for %d PUBACKs in %d windows; want at most %d (the PUBACKs of one read released together)", st.SlotReleases, n, n/rm, want)
			}
			if want := 2*n/rm + 2; st.Writes > uint64(want) {
				t.Errorf("writes to the upstream: got %d for %d publishes in windows of %d; want at most %d (a released window refilled in one write)", st.Writes, n, rm, want)
			}
			t.Logf("%d publishes: %d writes, %d slot releases; upstream read them in %d reads", st.Sent, st.Writes, st.SlotReleases, up.pubReads)
		})
	}
}
