package est

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/hw"
	"github.com/edgegw/edgegw/hw/hwtest"
)

// testCA signs certificates for the EST test server.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	n    int64
	mu   sync.Mutex
}

func newCA(t testing.TB) *testCA {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "EST test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{cert: c, key: k, n: 1}
}

func (ca *testCA) sign(t testing.TB, rawSubject []byte, pub crypto.PublicKey, tmplIn *x509.Certificate) *x509.Certificate {
	ca.mu.Lock()
	ca.n++
	n := ca.n
	ca.mu.Unlock()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(n), RawSubject: rawSubject,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	if tmplIn != nil {
		tmpl.DNSNames, tmpl.IPAddresses, tmpl.URIs = tmplIn.DNSNames, tmplIn.IPAddresses, tmplIn.URIs
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Error(err)
		return nil
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

// estServer is a test double of an EST server written from RFC 7030 (4.1 cacerts, 4.2.1
// simpleenroll with HTTP Basic or a client certificate, 4.2.2 simplereenroll with the current
// certificate, same subject and SANs; 4.2.3 202 + Retry-After), on 127.0.0.1 over TLS.
type estServer struct {
	*httptest.Server
	ca        *testCA
	laterOnce bool // answer the next enrolment 202 Retry-After: 3

	mu         sync.Mutex
	reenrollBy []*x509.Certificate // client certificates of each simplereenroll
}

func startEST(t *testing.T, ca *testCA) *estServer {
	t.Helper()
	s := &estServer{ca: ca}
	mux := http.NewServeMux()
	cacerts := func(w http.ResponseWriter, r *http.Request) { s.reply(t, w, []*x509.Certificate{ca.cert}) }
	mux.HandleFunc("GET /.well-known/est/cacerts", cacerts)
	mux.HandleFunc("GET /.well-known/est/{label}/cacerts", cacerts)
	mux.HandleFunc("POST /.well-known/est/{op}", s.enroll(t))
	mux.HandleFunc("POST /.well-known/est/{label}/{op}", s.enroll(t))
	s.Server = httptest.NewUnstartedServer(mux)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvCert := ca.sign(t, mustSubject(t, "est.test"), srvKey.Public(), &x509.Certificate{IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}})
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	s.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{srvCert.Raw}, PrivateKey: srvKey}},
		ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool, MinVersion: tls.VersionTLS12}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

func mustSubject(t testing.TB, cn string) []byte {
	der, err := asn1.Marshal((&pkix.Name{CommonName: cn}).ToRDNSequence())
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func (s *estServer) reply(t testing.TB, w http.ResponseWriter, certs []*x509.Certificate) {
	der, err := MarshalCertsOnly(certs)
	if err != nil {
		t.Error(err)
		http.Error(w, err.Error(), 500)
		return
	}
	w.Header().Set("Content-Type", "application/pkcs7-mime; smime-type=certs-only")
	w.Header().Set("Content-Transfer-Encoding", "base64")
	_, _ = w.Write(encodeBase64(der))
}

func (s *estServer) enroll(t testing.TB) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		op := r.PathValue("op")
		if op != "simpleenroll" && op != "simplereenroll" {
			http.NotFound(w, r)
			return
		}
		s.mu.Lock()
		later := s.laterOnce
		s.laterOnce = false
		s.mu.Unlock()
		if later {
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(http.StatusAccepted)
			return
		}
		var peer *x509.Certificate
		if len(r.TLS.VerifiedChains) > 0 {
			peer = r.TLS.VerifiedChains[0][0]
		}
		user, pass, basic := r.BasicAuth()
		switch {
		case op == "simplereenroll" && peer == nil:
			http.Error(w, "re-enrolment needs the current certificate", http.StatusUnauthorized)
			return
		case op == "simpleenroll" && peer == nil && (!basic || user != "bootstrap" || pass != "s3cret"):
			w.Header().Set("WWW-Authenticate", `Basic realm="est"`)
			http.Error(w, "authenticate", http.StatusUnauthorized)
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/pkcs10" {
			http.Error(w, "want application/pkcs10", http.StatusUnsupportedMediaType)
			return
		}
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		der, err := decodeBase64(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		csr, err := x509.ParseCertificateRequest(der)
		if err != nil || csr.CheckSignature() != nil {
			http.Error(w, "bad CSR", http.StatusBadRequest)
			return
		}
		if op == "simplereenroll" {
			s.mu.Lock()
			s.reenrollBy = append(s.reenrollBy, peer)
			s.mu.Unlock()
			if !bytes.Equal(csr.RawSubject, peer.RawSubject) || !slicesEqualStr(csr.DNSNames, peer.DNSNames) {
				http.Error(w, "the subject and subjectAltName must be those of the current certificate (RFC 7030 4.2.2)", http.StatusBadRequest)
				return
			}
		}
		c := s.ca.sign(t, csr.RawSubject, csr.PublicKey, &x509.Certificate{DNSNames: csr.DNSNames, IPAddresses: csr.IPAddresses, URIs: csr.URIs})
		s.reply(t, w, []*x509.Certificate{c, s.ca.cert})
	}
}

func slicesEqualStr(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (s *estServer) client(ca *testCA) *Client {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return &Client{Server: s.URL, RootCAs: pool, Timeout: 10 * time.Second}
}

func csrFor(t testing.TB, key crypto.Signer, cn string, dns ...string) []byte {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}, DNSNames: dns}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func ecKey(ctx context.Context) (crypto.Signer, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

func TestCACerts(t *testing.T) {
	ca := newCA(t)
	s := startEST(t, ca)
	for _, label := range []string{"", "site7"} {
		c := s.client(ca)
		c.Label = label
		certs, err := c.CACerts(context.Background())
		if err != nil {
			t.Fatalf("label %q: %v", label, err)
		}
		if len(certs) != 1 || !certs[0].Equal(ca.cert) {
			t.Errorf("label %q: cacerts = %d certificates; want the CA", label, len(certs))
		}
	}
	// A client that does not trust the server's CA refuses it.
	c := s.client(newCA(t))
	if _, err := c.CACerts(context.Background()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted server: %v; want a certificate error", err)
	}
}

// Enrol with a bootstrap password, then renew twice: each renewal is authenticated with the
// identity it replaces and gets a certificate for a new key with the same subject and names.
func TestEnrollAndRenew(t *testing.T) {
	ca := newCA(t)
	s := startEST(t, ca)
	ctx := context.Background()
	c := s.client(ca)
	key, _ := ecKey(ctx)
	if _, err := c.SimpleEnroll(ctx, csrFor(t, key, "gw-plant-7", "gw.plant-7.example")); !isStatus(err, 401) {
		t.Fatalf("simpleenroll without credentials = %v; want HTTP 401", err)
	}
	c.Username, c.Password = "bootstrap", "s3cret"
	chain, err := c.SimpleEnroll(ctx, csrFor(t, key, "gw-plant-7", "gw.plant-7.example"))
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != 2 || !samePublic(chain[0].PublicKey, key.Public()) || chain[0].Subject.CommonName != "gw-plant-7" {
		t.Fatalf("simpleenroll chain: %d certs, leaf %q", len(chain), chain[0].Subject)
	}

	c.Username, c.Password = "", ""
	if _, err := c.SimpleReenroll(ctx, csrFor(t, key, "x")); err == nil || !strings.Contains(err.Error(), "no client identity") {
		t.Errorf("simplereenroll without identity = %v", err)
	}
	id := &Identity{Chain: chain, Key: key}
	for round := range 2 {
		c.Identity = id
		r, err := Renew(ctx, c, ecKey)
		if err != nil {
			t.Fatalf("renewal %d: %v", round, err)
		}
		nl := r.Chain[0]
		if samePublic(nl.PublicKey, id.Key.Public()) || !samePublic(nl.PublicKey, r.Key.Public()) {
			t.Errorf("renewal %d: the new certificate is not for the new key", round)
		}
		if nl.Subject.CommonName != "gw-plant-7" || len(nl.DNSNames) != 1 || nl.DNSNames[0] != "gw.plant-7.example" {
			t.Errorf("renewal %d: subject %q names %v; want the current ones", round, nl.Subject, nl.DNSNames)
		}
		s.mu.Lock()
		by := s.reenrollBy[len(s.reenrollBy)-1]
		s.mu.Unlock()
		if !by.Equal(id.Chain[0]) {
			t.Errorf("renewal %d was authenticated with serial %v; want the current %v", round, by.SerialNumber, id.Chain[0].SerialNumber)
		}
		id = &Identity{Chain: r.Chain, Key: r.Key}
	}
	// A CSR with another subject is refused by the server (RFC 7030 4.2.2).
	c.Identity = id
	if _, err := c.SimpleReenroll(ctx, csrFor(t, id.Key, "other", "gw.plant-7.example")); !isStatus(err, 400) {
		t.Errorf("re-enrolment for another subject = %v; want HTTP 400", err)
	}
}

func isStatus(err error, code int) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Status == code
}

// The new key of a renewal lives in a TPM (swtpm): the CSR is signed there, and the renewed
// identity authenticates the next re-enrolment with the TPM key in TLS.
func TestRenewIntoTPM(t *testing.T) {
	ca := newCA(t)
	s := startEST(t, ca)
	ctx := context.Background()
	c := s.client(ca)
	c.Username, c.Password = "bootstrap", "s3cret"
	key, _ := ecKey(ctx)
	chain, err := c.SimpleEnroll(ctx, csrFor(t, key, "gw-plant-7"))
	if err != nil {
		t.Fatal(err)
	}
	c.Username, c.Password = "", ""
	sw := hwtest.StartSWTPM(t)
	uri := sw.URI("handle=0x81000200")
	var tpmKey hw.Key
	c.Identity = &Identity{Chain: chain, Key: key}
	r, err := Renew(ctx, c, func(ctx context.Context) (crypto.Signer, error) {
		k, err := hw.Create(ctx, uri, hw.P256)
		tpmKey = k
		return k, err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tpmKey.Close()
	if !samePublic(r.Chain[0].PublicKey, tpmKey.Public()) {
		t.Fatal("the renewed certificate is not for the TPM key")
	}
	c.Identity = &Identity{Chain: r.Chain, Key: tpmKey}
	r2, err := Renew(ctx, c, ecKey)
	if err != nil {
		t.Fatalf("re-enrolment authenticated by the TPM key: %v", err)
	}
	s.mu.Lock()
	by := s.reenrollBy[len(s.reenrollBy)-1]
	s.mu.Unlock()
	if !by.Equal(r.Chain[0]) || r2.Chain[0].Subject.CommonName != "gw-plant-7" {
		t.Errorf("second renewal authenticated by %v; want the TPM identity %v", by.SerialNumber, r.Chain[0].SerialNumber)
	}
}

func TestRetryAfter(t *testing.T) {
	ca := newCA(t)
	s := startEST(t, ca)
	s.laterOnce = true
	c := s.client(ca)
	c.Username, c.Password = "bootstrap", "s3cret"
	key, _ := ecKey(context.Background())
	_, err := c.SimpleEnroll(context.Background(), csrFor(t, key, "gw"))
	var re *RetryError
	if !errors.As(err, &re) || re.After != 3*time.Second {
		t.Fatalf("202 answer = %v; want RetryError after 3s", err)
	}
	if _, err := c.SimpleEnroll(context.Background(), csrFor(t, key, "gw")); err != nil {
		t.Fatalf("the retry: %v", err)
	}
}

// Bad answers from a server are errors that say what was wrong.
func TestBadAnswers(t *testing.T) {
	ca := newCA(t)
	other, _ := ecKey(context.Background())
	otherCert := ca.sign(t, mustSubject(t, "x"), other.Public(), nil)
	for _, tc := range []struct {
		name   string
		handle func(w http.ResponseWriter)
		want   string
	}{
		{"content type", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write([]byte("hi"))
		}, "want application/pkcs7-mime"},
		{"smime type", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/pkcs7-mime; smime-type=enveloped-data")
		}, "want certs-only"},
		{"not base64", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/pkcs7-mime")
			_, _ = w.Write([]byte("!!!"))
		}, "not base64"},
		{"not PKCS#7", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/pkcs7-mime")
			_, _ = w.Write(encodeBase64([]byte{0x30, 0x03, 0x02, 0x01, 0x01}))
		}, "PKCS#7"},
		{"no certificate for the key", func(w http.ResponseWriter) {
			der, _ := MarshalCertsOnly([]*x509.Certificate{otherCert})
			w.Header().Set("Content-Type", "application/pkcs7-mime")
			_, _ = w.Write(encodeBase64(der))
		}, "no certificate for the CSR's key"},
		{"server error", func(w http.ResponseWriter) { http.Error(w, "CA offline", http.StatusServiceUnavailable) }, "HTTP 503: CA offline"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { tc.handle(w) }))
			defer srv.Close()
			pool := x509.NewCertPool()
			pool.AddCert(srv.Certificate())
			c := &Client{Server: srv.URL, RootCAs: pool, Timeout: 10 * time.Second}
			key, _ := ecKey(context.Background())
			_, err := c.SimpleEnroll(context.Background(), csrFor(t, key, "gw"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v; want an error saying %q", err, tc.want)
			}
		})
	}
	if _, err := (&Client{Server: "http://plain"}).CACerts(context.Background()); err == nil || !strings.Contains(err.Error(), "want https://") {
		t.Errorf("http URL: %v", err)
	}
}

// Interoperability with OpenSSL's PKCS#7: what `openssl crl2pkcs7` writes parses here, and
// what MarshalCertsOnly writes `openssl pkcs7 -print_certs` reads.
func TestPKCS7OpenSSL(t *testing.T) {
	openssl := hwtest.Require(t, "openssl", "openssl")
	ca := newCA(t)
	k, _ := ecKey(context.Background())
	leaf := ca.sign(t, mustSubject(t, "leaf"), k.Public(), nil)
	dir := t.TempDir()
	pemFile := filepath.Join(dir, "certs.pem")
	var pemData []byte
	for _, c := range []*x509.Certificate{leaf, ca.cert} {
		pemData = append(pemData, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	if err := os.WriteFile(pemFile, pemData, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p7, err := exec.CommandContext(ctx, openssl, "crl2pkcs7", "-nocrl", "-certfile", pemFile, "-outform", "DER").Output()
	if err != nil {
		t.Fatalf("openssl crl2pkcs7: %v", err)
	}
	certs, err := ParseCertsOnly(p7)
	if err != nil || len(certs) != 2 || !certs[0].Equal(leaf) || !certs[1].Equal(ca.cert) {
		t.Fatalf("parsing openssl's PKCS#7: %d certs, %v", len(certs), err)
	}
	ours, err := MarshalCertsOnly(certs)
	if err != nil {
		t.Fatal(err)
	}
	p7File := filepath.Join(dir, "ours.p7b")
	if err := os.WriteFile(p7File, ours, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, openssl, "pkcs7", "-inform", "DER", "-in", p7File, "-print_certs").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl pkcs7 on ours: %v\n%s", err, out)
	}
	if strings.Count(string(out), "BEGIN CERTIFICATE") != 2 || !strings.Contains(string(out), "subject=CN = leaf") {
		t.Errorf("openssl read from ours:\n%s", out)
	}
}

// Answers come from a server: the PKCS#7 and base64 parsers must never panic.
func FuzzParseCertsOnly(f *testing.F) {
	ca := newCA(f)
	der, _ := MarshalCertsOnly([]*x509.Certificate{ca.cert})
	f.Add(der)
	f.Add(encodeBase64(der))
	f.Add([]byte{0x30, 0x80, 0x06, 0x09})
	f.Fuzz(func(t *testing.T, data []byte) {
		if certs, err := ParseCertsOnly(data); err == nil && len(certs) == 0 {
			t.Fatal("no error and no certificate")
		}
		if b, err := decodeBase64(data); err == nil {
			_, _ = ParseCertsOnly(b)
		}
	})
}
