package bridge

import (
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// startALPNFront is gatewaytest's ALPN front (AWS IoT Core's port 443) on
// 127.0.0.1 before m: it relays each accepted client to Mosquitto's mTLS
// listener under the verified client's own certificate (m's PKI).
func startALPNFront(t testing.TB, m *mosquitto) *gatewaytest.ALPNFront {
	t.Helper()
	return gatewaytest.StartALPNFront(t, "127.0.0.1:0", m.pki.ServerCert, m.pki.ServerKey, m.pool, func(cn string) (net.Conn, error) {
		return tls.Dial("tcp", m.url().Host, m.tlsFor(cn))
	})
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
	proxy := gatewaytest.StartConnectProxy(t, &gatewaytest.ConnectProxy{User: "site", Pass: "proxy-pw", Target: func(string) string { return front.Addr }})
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
			cfg.Proxy = proxy.URL("site", "proxy-pw")
			acc0, ref0 := front.Accepted.Load(), front.Refused.Load()
			seqs := enqueueSensors(t, q, 2, 20, time.Now)
			b := runBridge(t, cfg, q, nil)
			if tc.delivered {
				eventually(t, 20*time.Second, "every message of this case through the front", func() bool {
					_, _, missing := c.report(seqs)
					return len(missing) == 0
				})
				if n := front.Accepted.Load() - acc0; n == 0 {
					t.Errorf("front accepted %d connections with ALPN; want > 0", n)
				}
				return
			}
			eventually(t, 10*time.Second, "the front refusing the bridge", func() bool { return front.Refused.Load() > ref0 && b.State().LastError != "" })
			if st := b.State(); st.Connected || st.Sent != 0 {
				t.Errorf("state %+v; want not connected, nothing sent", st)
			}
			t.Logf("refused: %s", b.State().LastError)
		})
	}
	for _, target := range proxy.Asked() {
		if target != "upstream.test:443" {
			t.Errorf("proxy CONNECT target %q; want upstream.test:443", target)
		}
	}
	if got := len(proxy.Asked()); got < 3 {
		t.Errorf("proxy saw %d CONNECTs; want at least 3 (one per case)", got)
	}
}

func TestProxyRefusalSaysWhy(t *testing.T) {
	m := startMosquitto(t, mosquittoOpts{})
	proxy := gatewaytest.StartConnectProxy(t, &gatewaytest.ConnectProxy{User: "site", Pass: "proxy-pw", Target: func(string) string { return m.url().Host }})
	for _, tc := range []struct {
		name, user, pass string
		want             string
	}{
		{"wrong password", "site", "nope", "407 Proxy Authentication Required: check the user and password"},
		{"no credentials", "", "", "407"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(m, telemetry)
			cfg.Proxy = proxy.URL(tc.user, tc.pass)
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
