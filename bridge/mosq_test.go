package bridge

// Test helper: a real Debian Mosquitto upstream with mutual TLS, a throwaway
// PKI, an ACL and persistence (gatewaytest.Upstream, shared with the
// cmd/edgegw end-to-end tests), which tests stop and start to simulate
// outages.

import (
	"crypto/tls"
	"net"
	"net/url"
	"testing"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

const (
	gatewayCN = gatewaytest.GatewayCN
	cloudCN   = gatewaytest.CloudCN
)

type mosquitto struct{ up *gatewaytest.Upstream }

// mosquittoOpts tunes the broker config.
type mosquittoOpts struct {
	maxInflight int  // max_inflight_messages (the Receive Maximum it announces); 0 = Mosquitto's default (20)
	qos0Only    bool // max_qos 0: CONNACK announces Maximum QoS 0
}

// startMosquitto starts an upstream whose ACL allows the gateway only
// sites/plant-7/# (and the cloud-side test client sites/#), on a free
// loopback port, with no limit on queued messages.
func startMosquitto(t testing.TB, o mosquittoOpts) *mosquitto {
	t.Helper()
	return &mosquitto{up: gatewaytest.NewUpstream(t, gatewaytest.UpstreamOptions{MaxInflight: o.maxInflight, QoS0Only: o.qos0Only})}
}

func (m *mosquitto) url() *url.URL { return m.up.URL() }

// tlsFor returns a client TLS config with the certificate of cn.
func (m *mosquitto) tlsFor(cn string) *tls.Config {
	c := m.up.Cloud
	if cn == gatewayCN {
		c = m.up.Gateway
	}
	return m.up.TLSFor(c)
}

func (m *mosquitto) start() { m.up.Start() }
func (m *mosquitto) stop()  { m.up.Stop() }

// freePort is a loopback port nobody listens on (when it returns).
func freePort(t testing.TB) int {
	t.Helper()
	_, port, _ := net.SplitHostPort(gatewaytest.FreeAddr(t))
	n, _ := net.LookupPort("tcp", port)
	return n
}
