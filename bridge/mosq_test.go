package bridge

// Test helper: a real Debian Mosquitto upstream (gatewaytest.StartMosquitto,
// the one copy of the Mosquitto helpers) with a throwaway PKI and an ACL,
// which tests stop and start to simulate outages. startMosquitto is
// gatewaytest.Upstream (mutual TLS, persistence, shared with the cmd/edgegw
// end-to-end tests); startMosquittoAuth (mosqauth_test.go) is the same broker
// with passwords.

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/url"
	"testing"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

const (
	gatewayCN = gatewaytest.GatewayCN
	cloudCN   = gatewaytest.CloudCN
)

type mosquitto struct {
	*gatewaytest.Mosquitto
	pki            *gatewaytest.PKI
	gateway, cloud *gatewaytest.Client // CN gatewayCN, cloudCN
	pool           *x509.CertPool      // the PKI's CA
}

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
	up := gatewaytest.NewUpstream(t, gatewaytest.UpstreamOptions{MaxInflight: o.maxInflight, QoS0Only: o.qos0Only})
	return newMosquitto(up.Mosquitto, up.PKI, up.Gateway, up.Cloud)
}

func newMosquitto(m *gatewaytest.Mosquitto, pki *gatewaytest.PKI, gateway, cloud *gatewaytest.Client) *mosquitto {
	pool := x509.NewCertPool()
	pool.AddCert(pki.CA)
	return &mosquitto{Mosquitto: m, pki: pki, gateway: gateway, cloud: cloud, pool: pool}
}

func (m *mosquitto) url() *url.URL { return &url.URL{Scheme: "mqtts", Host: m.Addr} }

// tlsFor returns a client TLS config with the certificate of cn (gatewayCN
// or cloudCN), trusting the PKI's CA, with no ServerName (the dialer sets it).
func (m *mosquitto) tlsFor(cn string) *tls.Config {
	c := m.cloud
	if cn == gatewayCN {
		c = m.gateway
	}
	tc := m.pki.ClientTLS(c)
	tc.ServerName = ""
	return tc
}

func (m *mosquitto) start() { m.Start() }
func (m *mosquitto) stop()  { m.Stop() }
func (m *mosquitto) kill()  { m.Kill() }

// freePort is a loopback port nobody listens on (when it returns).
func freePort(t testing.TB) int {
	t.Helper()
	_, port, _ := net.SplitHostPort(gatewaytest.FreeAddr(t))
	n, _ := net.LookupPort("tcp", port)
	return n
}
