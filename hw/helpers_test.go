package hw_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"testing"
	"time"
)

// mutualTLS runs a TLS handshake of the given version in which key (with a certificate issued
// by a throwaway CA for key.Public()) is the client's key, against a Go server that requires
// and verifies client certificates.
func mutualTLS(t *testing.T, key crypto.Signer, version uint16) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "throwaway CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, cn string, pub crypto.PublicKey, eku x509.ExtKeyUsage) []byte {
		der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(serial),
			Subject: pkix.Name{CommonName: cn}, DNSNames: []string{cn}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{eku}}, ca, pub, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	srvCfg := &tls.Config{MinVersion: version, MaxVersion: version, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool,
		Certificates: []tls.Certificate{{Certificate: [][]byte{issue(2, "server.test", srvKey.Public(), x509.ExtKeyUsageServerAuth)}, PrivateKey: srvKey}}}
	cliCfg := &tls.Config{MinVersion: version, MaxVersion: version, RootCAs: pool, ServerName: "server.test",
		Certificates: []tls.Certificate{{Certificate: [][]byte{issue(3, "gateway", key.Public(), x509.ExtKeyUsageClientAuth)}, PrivateKey: key}}}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	srv, cli := tls.Server(a, srvCfg), tls.Client(b, cliCfg)
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake() }()
	cerr := cli.Handshake()
	if cerr != nil {
		a.Close()
	}
	serr := <-errc
	if err := errors.Join(cerr, serr); err != nil {
		t.Fatalf("TLS %x handshake: client: %v; server: %v", version, cerr, serr)
	}
	st := srv.ConnectionState()
	if st.Version != version || len(st.VerifiedChains) == 0 || st.PeerCertificates[0].Subject.CommonName != "gateway" {
		t.Fatalf("got version %x, %d verified chains; want %x and the gateway cert verified", st.Version, len(st.VerifiedChains), version)
	}
}

func bothTLS(t *testing.T, key crypto.Signer) {
	t.Helper()
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		mutualTLS(t, key, v)
	}
}
