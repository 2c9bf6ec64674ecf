// Package gatewaytest holds helpers shared by the tests of gateway, its rooms,
// bridge and cmd/edgegw: a throwaway PKI in t.TempDir(), the test site
// (WriteSite), an MQTT 5 test client (ConnectV5), free loopback ports,
// Debian's mosquitto with a test's own configuration (StartMosquitto: the one
// copy of the Mosquitto helpers) and as the bridge's upstream (Upstream, built
// on it), mosquitto_pub/sub with bounded timeouts, raw MQTT packet builders
// (Str, Varint, Pkt, Props), a fake HTTP CONNECT proxy (ConnectProxy) with
// its accept loop and relay (ServeAll, Relay), AWS IoT Core's ALPN front on
// 443 (ALPNFront), a settable Clock, RunUntilCleanup for a component's Run,
// and building the edgegw binary once per test process. Only tests import
// it; it must not be imported by production code.
package gatewaytest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/hw/hwtest"
)

// PKI is a throwaway site CA with a server certificate for 127.0.0.1/localhost.
type PKI struct {
	Dir        string
	CA         *x509.Certificate
	CAKey      *ecdsa.PrivateKey
	CAFile     string // ca.crt
	ServerCert string // server.crt
	ServerKey  string // server.key (PKCS#8 PEM)
	CRLFile    string // crl.pem (empty CRL until Revoke)

	mu      sync.Mutex
	serial  int64
	revoked []x509.RevocationListEntry
	crlNum  int64
}

// NewPKI creates a CA named name in a fresh t.TempDir().
func NewPKI(t testing.TB, name string) *PKI {
	t.Helper()
	dir := t.TempDir()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name + " test CA", Organization: []string{"edgegw test"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("creating CA: %v", err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &PKI{Dir: dir, CA: ca, CAKey: key, CAFile: filepath.Join(dir, "ca.crt"),
		ServerCert: filepath.Join(dir, "server.crt"), ServerKey: filepath.Join(dir, "server.key"),
		CRLFile: filepath.Join(dir, "crl.pem"), serial: 100}
	WriteFile(t, p.CAFile, pemCert(der), 0o644)
	srv := p.issue(t, "edgegw-test-server", func(c *x509.Certificate) {
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		c.DNSNames = []string{"localhost", "upstream.test"} // upstream.test: a name for ServerName tests
		c.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	})
	WriteFile(t, p.ServerCert, srv.CertPEM, 0o644)
	WriteFile(t, p.ServerKey, srv.KeyPEM, 0o600)
	p.writeCRL(t)
	return p
}

// Client is an issued client certificate.
type Client struct {
	Name     string
	CertFile string
	KeyFile  string
	CertPEM  []byte
	KeyPEM   []byte
	Cert     *x509.Certificate
	TLS      tls.Certificate
}

// ClientOption modifies a client certificate template.
type ClientOption func(*x509.Certificate)

// Expired makes the certificate expired an hour ago.
func Expired() ClientOption {
	return func(c *x509.Certificate) {
		c.NotBefore = time.Now().Add(-48 * time.Hour)
		c.NotAfter = time.Now().Add(-time.Hour)
	}
}

// URISAN adds a URI SAN.
func URISAN(u string) ClientOption {
	return func(c *x509.Certificate) {
		pu, _ := url.Parse(u)
		c.URIs = append(c.URIs, pu)
	}
}

// DNSSAN adds a DNS SAN.
func DNSSAN(name string) ClientOption {
	return func(c *x509.Certificate) { c.DNSNames = append(c.DNSNames, name) }
}

// Issue issues a client certificate with CN name, written to the PKI dir.
func (p *PKI) Issue(t testing.TB, name string, opts ...ClientOption) *Client {
	t.Helper()
	c := p.issue(t, name, func(c *x509.Certificate) {
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		for _, o := range opts {
			o(c)
		}
	})
	p.mu.Lock()
	n := p.serial
	p.mu.Unlock()
	c.CertFile = filepath.Join(p.Dir, fmt.Sprintf("%s-%d.crt", name, n))
	c.KeyFile = filepath.Join(p.Dir, fmt.Sprintf("%s-%d.key", name, n))
	WriteFile(t, c.CertFile, c.CertPEM, 0o644)
	WriteFile(t, c.KeyFile, c.KeyPEM, 0o600)
	return c
}

func (p *PKI) issue(t testing.TB, cn string, mod func(*x509.Certificate)) *Client {
	t.Helper()
	p.mu.Lock()
	p.serial++
	serial := p.serial
	p.mu.Unlock()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	mod(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.CA, &key.PublicKey, p.CAKey)
	if err != nil {
		t.Fatalf("issuing %q: %v", cn, err)
	}
	cert, _ := x509.ParseCertificate(der)
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	c := &Client{Name: cn, Cert: cert, CertPEM: pemCert(der),
		KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})}
	c.TLS, err = tls.X509KeyPair(c.CertPEM, c.KeyPEM)
	if err != nil {
		t.Fatalf("key pair: %v", err)
	}
	return c
}

// Revoke adds the certificate to the CRL and rewrites crl.pem atomically.
func (p *PKI) Revoke(t testing.TB, c *x509.Certificate) {
	t.Helper()
	p.mu.Lock()
	p.revoked = append(p.revoked, x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: time.Now()})
	p.mu.Unlock()
	p.writeCRL(t)
}

func (p *PKI) writeCRL(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.crlNum++
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    big.NewInt(p.crlNum),
		ThisUpdate:                time.Now().Add(-time.Minute),
		NextUpdate:                time.Now().Add(24 * time.Hour),
		RevokedCertificateEntries: p.revoked,
	}, p.CA, p.CAKey)
	if err != nil {
		t.Fatalf("creating CRL: %v", err)
	}
	WriteFile(t, p.CRLFile, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), 0o644)
}

// ClientTLS returns a client tls.Config trusting this CA, presenting c (nil: none).
func (p *PKI) ClientTLS(c *Client) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(p.CA)
	cfg := &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	if c != nil {
		cfg.Certificates = []tls.Certificate{c.TLS}
	}
	return cfg
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generating key: %v", err)
	}
	return k
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// WriteFile writes data atomically (temp file + rename) with mode perm.
func WriteFile(t testing.TB, path string, data []byte, perm os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// FreeAddr returns a free 127.0.0.1:port reserved for this test process, for
// a server the test starts (hwtest.FreeAddr: not the kernel's :0, which any
// outgoing connection may take before the server binds it).
func FreeAddr(t testing.TB) string {
	t.Helper()
	return hwtest.FreeAddr(t)
}

// Need returns the path of an installed tool or fails the test telling how to
// install it (never skips).
func Need(t testing.TB, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/sbin"} {
			if fi, e := os.Stat(filepath.Join(dir, tool)); e == nil && !fi.IsDir() {
				return filepath.Join(dir, tool)
			}
		}
		t.Fatalf("%s not found: run `make deps` (apt-get install %s)", tool, pkg)
	}
	return p
}

// Run runs a command with a timeout and returns its combined output and error.
func Run(t testing.TB, timeout time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s timed out after %v: %w", name, timeout, ctx.Err())
	}
	return out.String(), err
}

// MosqTLSArgs are mosquitto_pub/sub arguments to connect to addr with mTLS.
func (p *PKI) MosqTLSArgs(addr string, c *Client) []string {
	host, port, _ := net.SplitHostPort(addr)
	args := []string{"-h", host, "-p", port, "--cafile", p.CAFile}
	if c != nil {
		args = append(args, "--cert", c.CertFile, "--key", c.KeyFile)
	}
	return args
}

// WaitListening waits until addr accepts TCP connections.
func WaitListening(t testing.TB, addr string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not listening after %v: %v", addr, within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
)

// Edgegw builds ./cmd/edgegw once per test process and returns the binary.
// Call CleanupBuild from TestMain to remove it.
func Edgegw(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "edgegw-test-bin-")
		if buildErr != nil {
			return
		}
		buildBin = filepath.Join(buildDir, "edgegw")
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		cmd := exec.Command("go", "build", "-o", buildBin, "./cmd/edgegw")
		cmd.Dir = root
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/edgegw: %v\n%s", err, out.String())
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

// CleanupBuild removes the binary built by Edgegw.
func CleanupBuild() {
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
}

// VmRSS returns the resident set size of pid in bytes (from /proc).
func VmRSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(line, "VmRSS:")), "%d kB", &kb); err != nil {
				return 0, err
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}
