package gatewaytest

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// awsALPN is the ALPN protocol AWS IoT Core asks for MQTT with a client
// certificate on port 443 (bridge.AWSALPN; spelt out here, as gatewaytest
// must not import the bridge whose tests use it).
const awsALPN = "x-amzn-mqtt-ca"

// ALPNFront stands in for AWS IoT Core's port 443: a Go TLS listener that
// verifies the client certificate against a CA pool and refuses any
// connection whose ClientHello did not ask for ALPN x-amzn-mqtt-ca; an
// accepted connection is relayed to the connection up opens for the
// client's certificate common name.
type ALPNFront struct {
	Addr     string       // host:port it listens on
	Accepted atomic.Int64 // handshakes that passed
	Refused  atomic.Int64 // handshakes refused for want of the ALPN
}

// StartALPNFront listens on addr (waiting, bounded by a minute, while
// another test holds a fixed port) with the server certificate in
// certFile/keyFile, and serves until the test's cleanup.
func StartALPNFront(t testing.TB, addr, certFile, keyFile string, clientCAs *x509.CertPool, up func(clientCN string) (net.Conn, error)) *ALPNFront {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	f := &ALPNFront{}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clientCAs,
		NextProtos:   []string{awsALPN},
		MinVersion:   tls.VersionTLS12,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if cs.NegotiatedProtocol != awsALPN {
				f.Refused.Add(1)
				return errors.New("port 443 needs ALPN x-amzn-mqtt-ca for MQTT with a client certificate")
			}
			return nil
		},
	}
	var ln net.Listener
	for deadline := time.Now().Add(60 * time.Second); ; {
		if ln, err = tls.Listen("tcp", addr, cfg); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("binding %s: %v", addr, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	f.Addr = ln.Addr().String()
	ServeAll(t, ln, func(c net.Conn) { f.serve(c.(*tls.Conn), up) })
	return f
}

func (f *ALPNFront) serve(c *tls.Conn, up func(string) (net.Conn, error)) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := c.Handshake(); err != nil {
		return
	}
	_ = c.SetDeadline(time.Time{})
	f.Accepted.Add(1)
	u, err := up(c.ConnectionState().PeerCertificates[0].Subject.CommonName)
	if err != nil {
		return
	}
	Relay(c, u)
}
