package bridge

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// alpnFront stands in for AWS IoT Core's port 443: a Go TLS listener that
// verifies the client certificate against the upstream's CA and refuses any
// connection whose ClientHello did not ask for ALPN x-amzn-mqtt-ca, then
// relays the MQTT bytes to Mosquitto's mTLS listener under the verified
// client's own certificate (the front holds the test PKI).
type alpnFront struct {
	ln       net.Listener
	accepted atomic.Int64
	refused  atomic.Int64
}

func startALPNFront(t testing.TB, m *mosquitto) *alpnFront {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(m.pki.ServerCert, m.pki.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	f := &alpnFront{}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    m.pool,
		NextProtos:   []string{AWSALPN},
		MinVersion:   tls.VersionTLS12,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if cs.NegotiatedProtocol != AWSALPN {
				f.refused.Add(1)
				return errors.New("port 443 needs ALPN x-amzn-mqtt-ca for MQTT with a client certificate")
			}
			return nil
		},
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.ln = ln
	serveAll(t, ln, func(c net.Conn) { f.serve(c.(*tls.Conn), m) })
	return f
}

func (f *alpnFront) serve(c *tls.Conn, m *mosquitto) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := c.Handshake(); err != nil {
		return
	}
	_ = c.SetDeadline(time.Time{})
	f.accepted.Add(1)
	cn := c.ConnectionState().PeerCertificates[0].Subject.CommonName
	up, err := tls.Dial("tcp", m.url().Host, m.tlsFor(cn))
	if err != nil {
		return
	}
	relay(c, up)
}

// serveAll accepts on ln until cleanup, each connection in its own
// goroutine; cleanup closes ln and waits for them.
func serveAll(t testing.TB, ln net.Listener, serve func(net.Conn)) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); serve(c) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
}

// relay copies both ways until either side ends, then closes both.
func relay(a, b net.Conn) {
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(a, b); done <- struct{}{} }()
	go func() { _, _ = io.Copy(b, a); done <- struct{}{} }()
	<-done
	a.Close()
	b.Close()
	<-done
}

// connectProxy is a small HTTP CONNECT proxy: Basic authentication when
// user is set, every tunnel to target(host:port).
type connectProxy struct {
	ln     net.Listener
	user   string
	pass   string
	target func(hostport string) string

	mu      sync.Mutex
	asked   []string // CONNECT targets, in order
	refused int      // 407 answers
}

func startConnectProxy(t testing.TB, user, pass string, target func(string) string) *connectProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &connectProxy{ln: ln, user: user, pass: pass, target: target}
	serveAll(t, ln, p.serve)
	return p
}

func (p *connectProxy) url(user, pass string) *url.URL {
	u := &url.URL{Scheme: "http", Host: p.ln.Addr().String()}
	if user != "" {
		u.User = url.UserPassword(user, pass)
	}
	return u
}

func (p *connectProxy) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	if req.Method != http.MethodConnect {
		fmt.Fprint(c, "HTTP/1.1 405 Method Not Allowed\r\n\r\n")
		return
	}
	p.mu.Lock()
	p.asked = append(p.asked, req.Host)
	p.mu.Unlock()
	if p.user != "" {
		want := "Basic " + base64.StdEncoding.EncodeToString([]byte(p.user+":"+p.pass))
		if req.Header.Get("Proxy-Authorization") != want {
			p.mu.Lock()
			p.refused++
			p.mu.Unlock()
			fmt.Fprint(c, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n")
			return
		}
	}
	up, err := net.Dial("tcp", p.target(req.Host))
	if err != nil {
		fmt.Fprint(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	}
	_ = c.SetDeadline(time.Time{})
	fmt.Fprint(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		_, _ = up.Write(b)
	}
	relay(c, up)
}

func (p *connectProxy) targets() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.asked...)
}

// TestALPNOn443ThroughProxy: the upstream URL says port 443, so the
// aws-iot-core profile asks for ALPN x-amzn-mqtt-ca and the front lets it
// in; generic without ALPN is refused by the same front; generic with the
// ALPN configured by hand gets in. Every connection goes through the HTTP
// CONNECT proxy (a site firewall that opens 443 only), which maps
// upstream.test:443 to the front.
func TestALPNOn443ThroughProxy(t *testing.T) {
	m := startMosquitto(t, mosquittoOpts{maxInflight: 1000})
	c := startCloud(t, m, "sites/#")
	front := startALPNFront(t, m)
	proxy := startConnectProxy(t, "site", "proxy-pw", func(string) string { return front.ln.Addr().String() })
	// One queue for every case: seqs stay distinct at the cloud, and what
	// a refused case left queued goes out with the next case that gets in.
	q := newTestQueue(t)
	for _, tc := range []struct {
		name      string
		profile   Profile
		alpn      []string
		wantALPN  bool
		delivered bool
	}{
		{"aws-iot-core sets the ALPN on 443", ProfileAWSIoTCore, nil, true, true},
		{"generic without ALPN is refused", ProfileGeneric, nil, false, false},
		{"generic with alpn configured", ProfileGeneric, []string{AWSALPN}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(m, telemetry)
			cfg.Profile = tc.profile
			cfg.ALPN = tc.alpn
			cfg.Upstreams = []Upstream{{URL: mustURL(t, "mqtts://upstream.test:443")}}
			cfg.Proxy = proxy.url("site", "proxy-pw")
			acc0, ref0 := front.accepted.Load(), front.refused.Load()
			seqs := enqueueSensors(t, q, 2, 20, time.Now)
			b := runBridge(t, cfg, q, nil)
			if tc.delivered {
				eventually(t, 20*time.Second, "every message of this case through the front", func() bool {
					_, _, missing := c.report(seqs)
					return len(missing) == 0
				})
				if n := front.accepted.Load() - acc0; n == 0 {
					t.Errorf("front accepted %d connections with ALPN; want > 0", n)
				}
				return
			}
			eventually(t, 10*time.Second, "the front refusing the bridge", func() bool { return front.refused.Load() > ref0 && b.State().LastError != "" })
			if st := b.State(); st.Connected || st.Sent != 0 {
				t.Errorf("state %+v; want not connected, nothing sent", st)
			}
			t.Logf("refused: %s", b.State().LastError)
		})
	}
	for _, target := range proxy.targets() {
		if target != "upstream.test:443" {
			t.Errorf("proxy CONNECT target %q; want upstream.test:443", target)
		}
	}
	if got := len(proxy.targets()); got < 3 {
		t.Errorf("proxy saw %d CONNECTs; want at least 3 (one per case)", got)
	}
}

func TestProxyRefusalSaysWhy(t *testing.T) {
	m := startMosquitto(t, mosquittoOpts{})
	proxy := startConnectProxy(t, "site", "proxy-pw", func(string) string { return m.url().Host })
	for _, tc := range []struct {
		name, user, pass string
		want             string
	}{
		{"wrong password", "site", "nope", "407 Proxy Authentication Required: check the user and password"},
		{"no credentials", "", "", "407"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(m, telemetry)
			cfg.Proxy = proxy.url(tc.user, tc.pass)
			b := runBridge(t, cfg, newTestQueue(t), nil)
			eventually(t, 10*time.Second, "a proxy error", func() bool { return b.State().LastError != "" })
			le := b.State().LastError
			if !strings.Contains(le, tc.want) {
				t.Errorf("last error %q; want it to contain %q", le, tc.want)
			}
			if tc.pass != "" && strings.Contains(le, tc.pass) {
				t.Errorf("last error shows the proxy password: %q", le)
			}
		})
	}
}

func TestProfileDefaults(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cfg      Config
		protocol Protocol
		envelope Envelope
		alpn     []string
		user     string
		maxPay   int
		maxRate  float64
	}{
		{"generic", Config{Upstreams: []Upstream{{URL: mustURL(t, "mqtts://b.example:443")}}, ClientID: "gw"},
			MQTT5, EnvelopeUserProperties, nil, "", 0, 0},
		{"generic 3.1.1 drops the envelope", Config{Protocol: MQTT311, Upstreams: []Upstream{{URL: mustURL(t, "mqtts://b.example")}}, ClientID: "gw"},
			MQTT311, EnvelopeNone, nil, "", 0, 0},
		{"aws on 443", Config{Profile: ProfileAWSIoTCore, Upstreams: []Upstream{{URL: mustURL(t, "mqtts://a-ats.iot.eu-west-1.amazonaws.com:443")}}, ClientID: "gw"},
			MQTT5, EnvelopeUserProperties, []string{AWSALPN}, "", AWSMaxPayload, 90},
		{"aws on 8883", Config{Profile: ProfileAWSIoTCore, Upstreams: []Upstream{{URL: mustURL(t, "mqtts://a-ats.iot.eu-west-1.amazonaws.com")}}, ClientID: "gw"},
			MQTT5, EnvelopeUserProperties, nil, "", AWSMaxPayload, 90},
		{"aws 3.1.1", Config{Profile: ProfileAWSIoTCore, Protocol: MQTT311, Envelope: EnvelopeJSON, Upstreams: []Upstream{{URL: mustURL(t, "mqtts://a.example:443")}}, ClientID: "gw"},
			MQTT311, EnvelopeJSON, []string{AWSALPN}, "", AWSMaxPayload, 90},
		{"azure", Config{Profile: ProfileAzureIoTHub, Upstreams: []Upstream{{URL: mustURL(t, "mqtts://hub-7.azure-devices.net")}}, ClientID: "plant-7-gw"},
			MQTT311, EnvelopePropertyBag, nil, "hub-7.azure-devices.net/plant-7-gw/?api-version=2021-04-12", AzureMaxPayload, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.cfg.Upstreams[0]
			c := tc.cfg
			c.TLS = &tls.Config{}
			c.setDefaults()
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			got := c.Upstreams[0].ALPN
			if c.Protocol != tc.protocol || c.Envelope != tc.envelope || fmt.Sprint(got) != fmt.Sprint(tc.alpn) ||
				c.Username != tc.user || c.MaxPayload != tc.maxPay || c.MaxRate != tc.maxRate {
				t.Errorf("got protocol %v envelope %s alpn %q user %q max_payload %d max_rate %v; want %v %s %q %q %d %v",
					c.Protocol, c.Envelope, got, c.Username, c.MaxPayload, c.MaxRate, tc.protocol, tc.envelope, tc.alpn, tc.user, tc.maxPay, tc.maxRate)
			}
			if tc.maxRate > 0 && c.DrainRate != tc.maxRate {
				t.Errorf("drain rate %v; want the max rate %v", c.DrainRate, tc.maxRate)
			}
			if len(tc.cfg.Upstreams[0].ALPN) != 0 || len(in.ALPN) != 0 {
				t.Errorf("defaults changed the caller's upstreams")
			}
		})
	}
}
