package broker

import (
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// serverSerial dials the LAN listener as sensor-a and returns the serial of
// the certificate the server presented.
func (e *env) serverSerial(t *testing.T) *big.Int {
	t.Helper()
	conn := e.dialThing(t, "sensor-a")
	defer conn.Close() // callers dial again within the test
	tc := conn.(*tls.Conn)
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return tc.ConnectionState().PeerCertificates[0].SerialNumber
}

// writeServerCert signs a server certificate for pub with the site CA and
// replaces path with it the way an operator's tooling would (write aside,
// rename).
func writeServerCert(t *testing.T, p *gatewaytest.PKI, path string, serial int64, pub crypto.PublicKey) {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "edgegw-test-server"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.CA, pub, p.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(filepath.Dir(path), ".server.crt.new")
	gatewaytest.WriteFile(t, tmp, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestServerCertRenewedWithoutRestart: a renewed server certificate for the
// same key is presented to new connections after the file changes, without a
// restart and without cutting the connected clients; a certificate for
// another key is refused (reload failure counted) and the renewed one stays.
func TestServerCertRenewedWithoutRestart(t *testing.T) {
	e := newEnv(t, nil)
	first := e.serverSerial(t)
	held := e.rawConnect(t, "sensor-b", 4)

	writeServerCert(t, e.pki, e.pki.ServerCert, 7001, publicKeyOf(t, e.pki.ServerKey))
	eventually(t, "the renewed certificate on new connections", func() bool { return e.serverSerial(t).Int64() == 7001 })
	if first.Int64() == 7001 {
		t.Fatalf("the first certificate already had serial 7001")
	}
	// The connected client was not cut: it still gets PINGRESP.
	if _, err := held.conn.Write([]byte{0xc0, 0}); err != nil { // PINGREQ
		t.Fatalf("held connection after the renewal: %v", err)
	}
	if pk, err := held.read(t); err != nil || pk.FixedHeader.Type != packets.Pingresp {
		t.Fatalf("held connection after the renewal: %v, packet type %d; want PINGRESP", err, pk.FixedHeader.Type)
	}

	failures := e.metrics.ReloadFailures.Load()
	other := gatewaytest.NewPKI(t, "other") // only for a key that is not the server's
	writeServerCert(t, e.pki, e.pki.ServerCert, 7002, publicKeyOf(t, other.ServerKey))
	eventually(t, "the mismatched certificate refused", func() bool { return e.metrics.ReloadFailures.Load() > failures })
	if s := e.serverSerial(t).Int64(); s != 7001 {
		t.Errorf("after a certificate for another key: server presents serial %d; want 7001 (kept)", s)
	}
}

// publicKeyOf is the public key of the PKCS#8 PEM private key in path.
func publicKeyOf(t *testing.T, path string) crypto.PublicKey {
	t.Helper()
	keyPEM, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(keyPEM)
	if blk == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(crypto.Signer).Public()
}
