package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/pki"
	"github.com/edgegw/edgegw/hw"
)

// TestE2ETPMHung: the LAN listener's key is in swtpm and swtpm hangs
// (SIGSTOP). A sensor's TLS handshake, which the daemon signs in the TPM,
// fails instead of waiting for ever (the audit line says the TPM does not
// answer), the daemon keeps answering `edgegw
// status`, and `edgegw key info` on that TPM gives up with an error that
// names the TPM and what to do. Once swtpm runs again, handshakes succeed
// (the daemon reconnects to the TPM by itself).
func TestE2ETPMHung(t *testing.T) {
	site := newTPMListenerSite(t, "--ip", "127.0.0.1")
	root, conf, addr, uri, certs, sw := site.root, site.conf, site.addr, site.uri, site.certs, site.sw
	startRun(t, conf, addr)

	caPEM, err := os.ReadFile(filepath.Join(root, "pki", pki.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	sensor, err := tls.LoadX509KeyPair(filepath.Join(certs, "sensor-a.crt"), filepath.Join(certs, "sensor-a.key"))
	if err != nil {
		t.Fatal(err)
	}
	handshake := func() error {
		d := &net.Dialer{Timeout: 5 * time.Second}
		c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", Certificates: []tls.Certificate{sensor}})
		if err != nil {
			return err
		}
		return c.Close()
	}
	if err := handshake(); err != nil {
		t.Fatalf("handshake before the TPM hangs: %v", err)
	}

	// The listener accepts before the admin socket is up: wait for status.
	for i := 0; ; i++ {
		code, out, errOut := edgegw(t, "status", "-c", conf)
		if code == 0 {
			break
		}
		if i == 150 {
			t.Fatalf("edgegw status before the TPM hangs: exit %d\n%s%s", code, out, errOut)
		}
		time.Sleep(100 * time.Millisecond)
	}

	sw.Pause()
	hung := make(chan error, 1)
	go func() {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			hung <- err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(90 * time.Second)) // a hang bound, not a timing claim
		tc := tls.Client(c, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", Certificates: []tls.Certificate{sensor}})
		hung <- tc.HandshakeContext(context.Background())
	}()
	if code, out, errOut := edgegw(t, "status", "-c", conf); code != 0 || !strings.Contains(out, "listeners:") {
		t.Errorf("edgegw status while the TPM hangs: exit %d\n%s%s", code, out, errOut)
	}
	defer func(d time.Duration) { hw.TPMTimeout = d }(hw.TPMTimeout)
	hw.TPMTimeout = 2 * time.Second
	if code, _, errOut := edgegw(t, "key", "info", "--key", uri); code != 1 || !strings.Contains(errOut, "no answer from the TPM") || !strings.Contains(errOut, sw.Addr()) || !strings.Contains(errOut, "swtpm") {
		t.Errorf("key info on the hung TPM: exit %d, %q; want 1, saying the TPM at %s does not answer", code, errOut, sw.Addr())
	}
	err = <-hung
	if err == nil {
		t.Fatal("a TLS handshake signed by a hung TPM succeeded")
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the handshake waited 90s for the hung TPM: %v", err)
	}
	t.Logf("the sensor's handshake while the TPM hung: %v", err)
	// The audit line is written as the handshake fails (others, such as
	// the start's probe of the port, failed with EOF).
	var failed []string
	for range 50 {
		failed = failed[:0]
		b, _ := os.ReadFile(filepath.Join(root, "audit.log"))
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, `"event":"handshake_failed"`) {
				failed = append(failed, l)
			}
		}
		if len(failed) > 0 && strings.Contains(failed[len(failed)-1], "no answer from the TPM") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(failed) == 0 || !strings.Contains(failed[len(failed)-1], "no answer from the TPM") || !strings.Contains(failed[len(failed)-1], sw.Addr()) {
		t.Errorf("audited handshake failures %q; want the last to say the TPM at %s does not answer", failed, sw.Addr())
	}

	sw.Resume()
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := handshake()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("handshakes 60s after swtpm runs again: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
