package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// startAWSFront is gatewaytest's ALPN front (AWS IoT Core's port 443) on
// 127.0.0.1:443, verifying client certificates against the upstream's CA; an
// accepted connection is relayed to the Mosquitto upstream under the
// gateway's certificate.
func startAWSFront(t *testing.T, up *gatewaytest.Upstream) *gatewaytest.ALPNFront {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test binds 127.0.0.1:443 (the profile's ALPN is for port 443): run it as root")
	}
	pool := x509.NewCertPool()
	pool.AddCert(up.PKI.CA)
	return gatewaytest.StartALPNFront(t, "127.0.0.1:443", up.PKI.ServerCert, up.PKI.ServerKey, pool, func(string) (net.Conn, error) {
		tc := up.TLSFor(up.Gateway)
		tc.ServerName = "localhost"
		return tls.Dial("tcp", up.Addr, tc)
	})
}

// TestBridgesE2EAWSProfileALPN: a bridge with profile aws-iot-core and an
// mqtts://...:443 URL, no alpn in the config, connects through a front
// that refuses TLS without ALPN x-amzn-mqtt-ca (a client without it is
// refused), and its messages arrive in order.
func TestBridgesE2EAWSProfileALPN(t *testing.T) {
	up := gatewaytest.NewUpstream(t, cmdUpstream)
	front := startAWSFront(t, up)
	// Without the ALPN the front refuses the handshake.
	tc := up.TLSFor(up.Gateway)
	tc.ServerName = "localhost"
	// (TLS 1.3: the client's handshake ends before the server has checked
	// it, so the refusal is the alert on the first read.)
	if c, err := tls.Dial("tcp", front.Addr, tc); err == nil {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
		c.Close()
		var ne net.Error
		if err == nil || errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("a TLS client without ALPN got through the front (read: %v); want it refused", err)
		}
	}
	cloud := startCloudSub(t, up, "sites/#")
	g := newGW(t, fmt.Sprintf(`bridges:
  - name: aws
    profile: aws-iot-core
    upstreams: [{url: "mqtts://%s", server_name: localhost}]
    client_id: plant-7-gw
    tls: {ca: %s, cert: %s, key: "file:%s"}
    backoff: {min: 100ms, max: 500ms}
    routes:
      - {name: aws-a, topic: "sensors/sensor-a/#", remote_prefix: "sites/plant-7/"}
`, front.Addr, up.PKI.CAFile, up.Gateway.CertFile, up.Gateway.KeyFile))
	const n = 200
	sendSensorAUpstream(t, g, cloud, "upstream behind the ALPN front", n)
	if front.Accepted.Load() == 0 {
		t.Errorf("the front accepted no connection; want the bridge's")
	}
	if r := front.Refused.Load(); r != 1 {
		t.Errorf("the front refused %d connections; want 1 (the test's own, without ALPN)", r)
	}
	if !strings.Contains(g.log.String(), `upstream=mqtts://127.0.0.1:443`) {
		t.Errorf("no upstream connection to the front in the log")
	}
}
