package main

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// sslscanDoc is the part of `sslscan --xml=-` (sslscan 2.x) the test reads.
type sslscanDoc struct {
	Tests []struct {
		Protocols []struct {
			Type    string `xml:"type,attr"`
			Version string `xml:"version,attr"`
			Enabled string `xml:"enabled,attr"`
		} `xml:"protocol"`
		Ciphers []struct {
			Status   string `xml:"status,attr"`
			Version  string `xml:"sslversion,attr"`
			Bits     int    `xml:"bits,attr"`
			Name     string `xml:"cipher,attr"`
			Strength string `xml:"strength,attr"`
		} `xml:"cipher"`
		Renegotiation []struct {
			Supported string `xml:"supported,attr"`
			Secure    string `xml:"secure,attr"`
		} `xml:"renegotiation"`
		Heartbleed []struct {
			Version    string `xml:"sslversion,attr"`
			Vulnerable string `xml:"vulnerable,attr"`
		} `xml:"heartbleed"`
	} `xml:"ssltest"`
}

// weakCipher matches cipher names no edgegw listener may accept.
var weakCipher = regexp.MustCompile(`(?i)NULL|anon|EXP|RC4|RC2|IDEA|SEED|DES|MD5|PSK|SRP|CBC|-SHA$`)

func sslscan(t *testing.T, args ...string) sslscanDoc {
	t.Helper()
	bin := gatewaytest.Need(t, "sslscan", "sslscan")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--xml=-", "--no-colour"}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sslscan %v: %v\n%s", args, err, out)
	}
	var doc sslscanDoc
	if err := xml.Unmarshal(out, &doc); err != nil || len(doc.Tests) != 1 {
		t.Fatalf("sslscan XML: %v (%d tests)\n%s", err, len(doc.Tests), out)
	}
	return doc
}

// TestTLSScan scans the LAN listener of a real `edgegw run` with Debian's
// sslscan: nothing below TLS 1.2, no weak cipher, and a client certificate
// is required (without one no TLS 1.2 handshake completes and no MQTT
// session opens).
func TestTLSScan(t *testing.T) {
	bin := gatewaytest.Edgegw(t)
	s, _, err := OpenSite(context.Background(), filepath.Join(t.TempDir(), "site"), 1, 4)
	if err != nil {
		t.Fatal(err)
	}
	addr := gatewaytest.FreeAddr(t)
	cfg, err := s.WriteConfig(GatewayConfig{Listen: addr, RunDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	tc, err := s.TLSConfig(monitorThing)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := StartGateway(context.Background(), bin, cfg, addr, tc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gw.Stop(10 * time.Second) })

	dev := s.Devices[0].Name
	withCert := sslscan(t, "--certs="+filepath.Join(s.CertDir(), dev+".crt"), "--pk="+filepath.Join(s.CertDir(), dev+".key"), addr)
	st := withCert.Tests[0]
	enabled := map[string]bool{}
	for _, p := range st.Protocols {
		enabled[p.Type+" "+p.Version] = p.Enabled == "1"
	}
	for _, old := range []string{"ssl 2", "ssl 3", "tls 1.0", "tls 1.1"} {
		if v, ok := enabled[old]; !ok || v {
			t.Errorf("protocol %s: enabled=%v reported=%v; want reported and disabled", old, v, ok)
		}
	}
	if !enabled["tls 1.2"] {
		t.Errorf("TLS 1.2 not enabled; want enabled (the design's minimum)")
	}
	n12 := 0
	for _, c := range st.Ciphers {
		if c.Version == "TLSv1.2" {
			n12++
		}
		if c.Version != "TLSv1.2" && c.Version != "TLSv1.3" {
			t.Errorf("cipher %s accepted with %s", c.Name, c.Version)
		}
		if c.Strength != "strong" && c.Strength != "acceptable" {
			t.Errorf("cipher %s (%s): strength %q; want strong or acceptable", c.Name, c.Version, c.Strength)
		}
		if c.Bits < 128 || (c.Version == "TLSv1.2" && weakCipher.MatchString(c.Name)) {
			t.Errorf("weak cipher accepted: %s %s (%d bits)", c.Version, c.Name, c.Bits)
		}
		t.Logf("accepted %s %s (%d bits, %s)", c.Version, c.Name, c.Bits, c.Strength)
	}
	if n12 == 0 {
		t.Errorf("no TLS 1.2 cipher enumerated with a valid client certificate")
	}
	for _, r := range st.Renegotiation {
		if r.Supported == "1" && r.Secure != "1" {
			t.Errorf("insecure renegotiation supported")
		}
	}
	for _, h := range st.Heartbleed {
		if h.Vulnerable != "0" {
			t.Errorf("heartbleed on %s", h.Version)
		}
	}

	// Without a client certificate: sslscan completes no TLS 1.2 handshake ...
	noCert := sslscan(t, addr)
	for _, c := range noCert.Tests[0].Ciphers {
		if c.Version == "TLSv1.2" {
			t.Errorf("TLS 1.2 handshake with %s completed without a client certificate", c.Name)
		}
	}
	// ... and neither TLS 1.2 nor 1.3 gives an MQTT session.
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		conf := &tls.Config{RootCAs: tc.RootCAs, ServerName: "127.0.0.1", MinVersion: v, MaxVersion: v}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := Dial(ctx, addr, conf, ClientOptions{ClientID: dev, Version: 5})
		cancel()
		if err == nil {
			c.Close()
			t.Errorf("TLS %x: MQTT session without a client certificate", v)
		} else if !strings.Contains(err.Error(), "handshake") {
			t.Errorf("TLS %x without a client certificate: %v; want a handshake failure", v, err)
		}
	}
	// A valid certificate still works after the scans.
	c, err := Dial(context.Background(), addr, tc, ClientOptions{ClientID: monitorThing, Version: 4})
	if err != nil {
		t.Fatalf("connect with a valid certificate after the scans: %v", err)
	}
	c.Close()
}
