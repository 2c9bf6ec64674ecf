package bridge

// Test helper: a real Debian Mosquitto upstream with mutual TLS, a throwaway
// PKI and an ACL, which tests stop and start to simulate outages. Shared
// helpers may later move to gateway/gatewaytest.

import (
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
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	gatewayCN = "plant-7-gw"
	cloudCN   = "cloud-sub"
)

type mosquitto struct {
	t       testing.TB
	dir     string
	port    int
	conf    string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
	pool    *x509.CertPool
	certs   map[string]tls.Certificate // by CN
}

// mosquittoOpts tunes the broker config.
type mosquittoOpts struct {
	maxInflight int  // max_inflight_messages (the Receive Maximum it announces); 0 = Mosquitto's default (20)
	qos0Only    bool // max_qos 0: CONNACK announces Maximum QoS 0
}

// startMosquitto writes a throwaway CA, a server certificate for 127.0.0.1,
// client certificates for the gateway and a cloud-side test client, a config
// that requires client certificates and an ACL allowing the gateway only
// sites/plant-7/#, and starts /usr/sbin/mosquitto on a free loopback port.
func startMosquitto(t testing.TB, o mosquittoOpts) *mosquitto {
	t.Helper()
	bin := "/usr/sbin/mosquitto"
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("mosquitto not found: run `make deps` (apt-get install mosquitto mosquitto-clients): %v", err)
	}
	m := &mosquitto{t: t, dir: t.TempDir(), certs: map[string]tls.Certificate{}}
	m.writePKI()
	m.port = freePort(t)
	m.logPath = filepath.Join(m.dir, "mosquitto.log")
	acl := filepath.Join(m.dir, "acl")
	writeFile(t, acl, fmt.Sprintf("user %s\ntopic readwrite sites/plant-7/#\n\nuser %s\ntopic readwrite sites/#\n", gatewayCN, cloudCN), 0o600)
	var conf strings.Builder
	fmt.Fprintf(&conf, "per_listener_settings false\nlistener %d 127.0.0.1\n", m.port)
	fmt.Fprintf(&conf, "cafile %s\ncertfile %s\nkeyfile %s\n", m.path("ca.crt"), m.path("server.crt"), m.path("server.key"))
	conf.WriteString("require_certificate true\nuse_identity_as_username true\nallow_anonymous false\n")
	fmt.Fprintf(&conf, "acl_file %s\n", acl)
	// Persistence keeps the cloud-side test subscriber's session (and the
	// messages queued for it) across our stop/start outages, so the test
	// counts what the bridge delivered, not what the subscriber missed.
	fmt.Fprintf(&conf, "persistence true\npersistence_location %s/\n", m.dir)
	conf.WriteString("max_queued_messages 0\n")
	if o.maxInflight > 0 {
		fmt.Fprintf(&conf, "max_inflight_messages %d\n", o.maxInflight)
	}
	if o.qos0Only {
		conf.WriteString("max_qos 0\n")
	}
	fmt.Fprintf(&conf, "log_dest file %s\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\n", m.logPath)
	if os.Geteuid() == 0 {
		conf.WriteString("user root\n") // otherwise it drops to "mosquitto" and cannot read t.TempDir()
	}
	m.conf = filepath.Join(m.dir, "mosquitto.conf")
	writeFile(t, m.conf, conf.String(), 0o600)
	t.Cleanup(func() {
		m.stop()
		if t.Failed() {
			b, _ := os.ReadFile(m.logPath)
			t.Logf("mosquitto log (%s), last 4 KiB:\n%s", m.logPath, tail(b, 4096))
		}
	})
	m.start()
	return m
}

func (m *mosquitto) path(name string) string { return filepath.Join(m.dir, name) }

func (m *mosquitto) url() *url.URL {
	return &url.URL{Scheme: "mqtts", Host: fmt.Sprintf("127.0.0.1:%d", m.port)}
}

// tlsFor returns a client TLS config with the certificate of cn.
func (m *mosquitto) tlsFor(cn string) *tls.Config {
	return &tls.Config{RootCAs: m.pool, Certificates: []tls.Certificate{m.certs[cn]}, MinVersion: tls.VersionTLS12}
}

// start runs the broker and waits (bounded) until its port accepts.
func (m *mosquitto) start() {
	m.t.Helper()
	if m.cmd != nil {
		m.t.Fatalf("mosquitto already running")
	}
	cmd := exec.Command("/usr/sbin/mosquitto", "-c", m.conf)
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		m.t.Fatalf("starting mosquitto: %v", err)
	}
	m.cmd = cmd
	m.exited = make(chan struct{})
	go func() { _ = cmd.Wait(); close(m.exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", m.port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-m.exited:
			b, _ := os.ReadFile(m.logPath)
			m.t.Fatalf("mosquitto exited at start; log:\n%s", tail(b, 4096))
		default:
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("mosquitto did not listen on port %d within 10s", m.port)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM (Mosquitto saves its persistence file) and waits,
// killing it after 10 s.
func (m *mosquitto) stop() {
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
	case <-time.After(10 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.exited
		m.t.Errorf("mosquitto did not exit within 10s of SIGTERM and was killed: it saved no persistence, so what it held for the test subscriber is gone (harness, not the bridge)")
	}
	m.cmd = nil
}

func (m *mosquitto) writePKI() {
	t := m.t
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "edgegw test upstream CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	m.pool = x509.NewCertPool()
	m.pool.AddCert(caCert)
	writePEM(t, m.path("ca.crt"), "CERTIFICATE", caDER)

	issue := func(serial int64, cn string, server bool) (*ecdsa.PrivateKey, []byte) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}
		if server {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
			tmpl.DNSNames = []string{"localhost", "upstream.test"}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return key, der
	}
	sk, sder := issue(2, "upstream.test", true)
	writePEM(t, m.path("server.crt"), "CERTIFICATE", sder)
	skDER, _ := x509.MarshalECPrivateKey(sk)
	writePEM(t, m.path("server.key"), "EC PRIVATE KEY", skDER)
	for i, cn := range []string{gatewayCN, cloudCN} {
		k, der := issue(int64(10+i), cn, false)
		// PrivateKey as a crypto.Signer, as hw keys are.
		m.certs[cn] = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
	}
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	writeFile(t, path, string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})), 0o600)
}

func writeFile(t testing.TB, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
