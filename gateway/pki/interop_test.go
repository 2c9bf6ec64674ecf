package pki

import (
	"bytes"
	"context"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/hw/hwtest"
)

// Interop with tools nobody here wrote: openssl and Debian's mosquitto.

// needBin fails (never skips) when a tool the acceptance tests use is missing.
func needBin(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: run `make deps` (apt-get install %s)", name, pkg)
	}
	return p
}

// run runs a command with a bounded timeout and returns combined output and error.
func run(t testing.TB, dir string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func opensslVerify(t *testing.T, o Options, cert string) (string, error) {
	return run(t, "", needBin(t, "openssl", "openssl"), "verify", "-CAfile", o.path(CACertFile), "-crl_check", "-CRLfile", o.path(CRLFile), cert)
}

func TestOpenSSLVerifyBeforeAndAfterRevoke(t *testing.T) {
	o := newPKI(t)
	out := t.TempDir()
	b := issueOne(t, o, out, IssueRequest{Thing: "dev1"})
	if got, err := opensslVerify(t, o, b.CertFile); err != nil {
		t.Fatalf("openssl verify before revoke: %v\n%s", err, got)
	}
	// The server certificate is fine for openssl too.
	if got, err := run(t, "", "openssl", "verify", "-CAfile", o.path(CACertFile), "-crl_check", "-CRLfile", o.path(CRLFile), "-purpose", "sslserver", o.path(ServerCertFile)); err != nil {
		t.Fatalf("openssl verify server: %v\n%s", err, got)
	}
	if _, err := Revoke(context.Background(), o, "dev1", "keyCompromise"); err != nil {
		t.Fatal(err)
	}
	got, err := opensslVerify(t, o, b.CertFile)
	if err == nil || !strings.Contains(got, "revoked") {
		t.Fatalf("openssl verify after revoke: err=%v; want failure with 'revoked'\n%s", err, got)
	}
	// openssl reads our CRL: version 2, number, reason.
	text, err := run(t, "", "openssl", "crl", "-in", o.path(CRLFile), "-noout", "-text")
	if err != nil {
		t.Fatalf("openssl crl: %v\n%s", err, text)
	}
	for _, want := range []string{"Version 2", "X509v3 CRL Number", "Next Update", "Key Compromise", strings.ToUpper(b.Serial[:8])} {
		if !strings.Contains(text, want) {
			t.Errorf("openssl crl -text lacks %q:\n%s", want, text)
		}
	}
}

func TestOpenSSLCSR(t *testing.T) {
	openssl := needBin(t, "openssl", "openssl")
	o := newPKI(t)
	work := t.TempDir()
	mk := func(name string, args ...string) []byte {
		t.Helper()
		csr := filepath.Join(work, name+".csr")
		a := append([]string{"req", "-new", "-nodes", "-keyout", filepath.Join(work, name+".key"), "-out", csr}, args...)
		if got, err := run(t, work, openssl, a...); err != nil {
			t.Fatalf("openssl req %s: %v\n%s", name, err, got)
		}
		b, _ := os.ReadFile(csr)
		return b
	}
	good := mk("good", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-subj", "/CN=thing")
	rsa1024 := mk("rsa1024", "-newkey", "rsa:1024", "-subj", "/CN=thing")
	other := mk("other", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-subj", "/CN=someone-else")
	// Flip a byte inside the signature (the last bytes of the DER).
	blk, _ := pem.Decode(mk("broken", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-subj", "/CN=thing"))
	blk.Bytes[len(blk.Bytes)-3] ^= 0x40
	broken := pem.EncodeToMemory(blk)
	if got, err := run(t, work, openssl, "req", "-verify", "-noout", "-in", filepath.Join(work, "good.csr")); err != nil {
		t.Fatalf("openssl req -verify: %v %s", err, got)
	}

	out := t.TempDir()
	for _, tc := range []struct {
		name string
		csr  []byte
		want string
	}{
		{"broken signature", broken, "signature does not verify"},
		{"rsa 1024", rsa1024, "RSA key of 1024 bits is not accepted"},
		{"subject mismatch", other, `subject CN is "someone-else" but the thing is "thing"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, o.Dir, o.Devices, out)
			_, err := Sign(context.Background(), o, out, tc.csr, IssueRequest{Thing: "thing"})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v; want %q", err, tc.want)
			}
			if after := snapshot(t, o.Dir, o.Devices, out); !mapsEqual(before, after) {
				t.Error("refused CSR changed files")
			}
		})
	}
	b, err := Sign(context.Background(), o, out, good, IssueRequest{Thing: "thing", Type: "sensor"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := opensslVerify(t, o, b.CertFile); err != nil {
		t.Fatalf("openssl verify signed CSR: %v\n%s", err, got)
	}
	// The certificate fits the key that stayed "on the device".
	c1, err1 := run(t, work, openssl, "x509", "-noout", "-pubkey", "-in", b.CertFile)
	c2, err2 := run(t, work, openssl, "pkey", "-pubout", "-in", filepath.Join(work, "good.key"))
	if err1 != nil || err2 != nil || c1 != c2 {
		t.Errorf("certificate key != device key:\n%s\n%s", c1, c2)
	}
}

// mosquitto is a Debian mosquitto broker on a free loopback port using the PKI directory.
type mosquitto struct {
	t    *testing.T
	port int
	conf string
	cmd  *exec.Cmd
	log  *syncBuf
}

// syncBuf is the broker's output, read by the test while mosquitto writes it.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newMosquitto(t *testing.T, o Options) *mosquitto {
	needBin(t, "mosquitto", "mosquitto")
	m := &mosquitto{t: t, port: hwtest.FreePorts(t, 1), conf: filepath.Join(t.TempDir(), "mosquitto.conf")}
	conf := fmt.Sprintf(`per_listener_settings true
listener %d 127.0.0.1
cafile %s
certfile %s
keyfile %s
crlfile %s
require_certificate true
use_identity_as_username true
allow_anonymous false
persistence false
log_dest stderr
log_type all
`, m.port, o.path(CACertFile), o.path(ServerCertFile), o.path(ServerKeyFile), o.path(CRLFile))
	if os.Getuid() == 0 {
		conf = "user root\n" + conf
	}
	if err := os.WriteFile(m.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.stop)
	return m
}

func (m *mosquitto) start() {
	m.t.Helper()
	m.log = &syncBuf{}
	m.cmd = exec.Command("mosquitto", "-c", m.conf)
	m.cmd.Stdout, m.cmd.Stderr = m.log, m.log
	if err := m.cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	for range 100 { // up to 5 s
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", m.port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	m.t.Fatalf("mosquitto did not listen on %d:\n%s", m.port, m.log)
}

func (m *mosquitto) stop() {
	if m.cmd != nil && m.cmd.Process != nil {
		_ = m.cmd.Process.Kill()
		_ = m.cmd.Wait()
		m.cmd = nil
	}
}

// waitLog reports whether the broker's log contains s within 5 s: the client may exit on the
// TLS alert before mosquitto has written its side of the story.
func (m *mosquitto) waitLog(s string) bool {
	for range 100 {
		if strings.Contains(m.log.String(), s) {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

func (m *mosquitto) pub(b Bundle) (string, error) {
	pub := needBin(m.t, "mosquitto_pub", "mosquitto-clients")
	return run(m.t, "", pub, "-h", "127.0.0.1", "-p", fmt.Sprint(m.port), "--cafile", b.CAFile,
		"--cert", b.CertFile, "--key", b.KeyFile, "-i", b.Thing, "-t", "building/test", "-m", "hello", "-q", "1")
}

func TestMosquittoAcceptsThenRefuses(t *testing.T) {
	o := newPKI(t)
	out := t.TempDir()
	b := issueOne(t, o, out, IssueRequest{Thing: "sensor-1", Type: "temperature"})
	other := issueOne(t, o, out, IssueRequest{Thing: "sensor-2"})
	m := newMosquitto(t, o)
	m.start()
	if got, err := m.pub(b); err != nil {
		t.Fatalf("mosquitto_pub before revoke: %v\n%s\nbroker log:\n%s", err, got, m.log)
	}
	if _, err := Revoke(context.Background(), o, "sensor-1", "keyCompromise"); err != nil {
		t.Fatal(err)
	}
	m.stop()
	m.start() // mosquitto reads the CRL at start
	if got, err := m.pub(b); err == nil {
		t.Fatalf("mosquitto_pub after revoke succeeded; want refused\n%s\nbroker log:\n%s", got, m.log)
	}
	if !m.waitLog("certificate verify failed") {
		t.Errorf("broker log does not say the certificate failed verification:\n%s", m.log)
	}
	if got, err := m.pub(other); err != nil {
		t.Fatalf("mosquitto_pub of an unrevoked device after revoke: %v\n%s\nbroker log:\n%s", err, got, m.log)
	}
}
