package pkicmd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/cmd/edgegw/pkicmd/pkitest"
	"github.com/edgegw/edgegw/gateway/enrol"
	"github.com/edgegw/edgegw/gateway/pki"
	"github.com/edgegw/edgegw/hw"
	"github.com/edgegw/edgegw/hw/hwtest"
)

func TestPKIServerFileKey(t *testing.T) {
	conf, dir, _ := pkitest.Site(t)
	mustRun(t, "pki", "init", "-c", conf, "--host", "gw.local")
	keyFile := filepath.Join(t.TempDir(), "lan.key")
	pkitest.CreateKey(t, "file:"+keyFile)
	certFile := filepath.Join(t.TempDir(), "lan.crt")

	out := mustRun(t, "pki", "server", "-c", conf, "--key", "file:"+keyFile, "--host", "gw.plant-7.example", "--ip", "10.1.2.3", "--days", "90", "--out", certFile)
	if !strings.Contains(out, "server certificate issued") {
		t.Errorf("output %q; want it to say issued", out)
	}
	if err := pkitest.Verify(t, dir, certFile); err != nil {
		t.Fatalf("openssl verify: %v", err)
	}
	chain := pkitest.ReadChain(t, certFile)
	k, err := hw.Open(context.Background(), "file:"+keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !publicEqual(chain[0].PublicKey, k.Public()) || chain[0].VerifyHostname("10.1.2.3") != nil || chain[0].VerifyHostname("gw.plant-7.example") != nil {
		t.Fatalf("certificate for the wrong key or names %v %v", chain[0].DNSNames, chain[0].IPAddresses)
	}
	first := chain[0].SerialNumber

	// Not due: nothing is written.
	st, _ := os.Stat(certFile)
	out = mustRun(t, "pki", "server", "-c", conf, "--key", "file:"+keyFile, "--renew-before", "30d", "--out", certFile)
	if !strings.Contains(out, "not due for renewal") {
		t.Errorf("output %q; want not due", out)
	}
	if st2, _ := os.Stat(certFile); !st2.ModTime().Equal(st.ModTime()) {
		t.Error("a certificate that was not due was rewritten")
	}
	// Due: renewed, with the names of the existing certificate.
	out = mustRun(t, "pki", "server", "-c", conf, "--key", "file:"+keyFile, "--renew-before", "91d", "--out", certFile)
	if !strings.Contains(out, "server certificate renewed") {
		t.Errorf("output %q; want renewed", out)
	}
	chain = pkitest.ReadChain(t, certFile)
	if chain[0].SerialNumber.Cmp(first) == 0 || chain[0].VerifyHostname("10.1.2.3") != nil || chain[0].VerifyHostname("gw.plant-7.example") != nil {
		t.Errorf("renewal kept the serial or lost the names: %v %v", chain[0].DNSNames, chain[0].IPAddresses)
	}

	// From the config alone: the listener's tls.cert and tls.key.
	srv := filepath.Join(dir, pki.ServerCertFile)
	before := pkitest.ReadChain(t, srv)[0]
	mustRun(t, "pki", "server", "-c", conf)
	after := pkitest.ReadChain(t, srv)[0]
	if after.SerialNumber.Cmp(before.SerialNumber) == 0 || !publicEqual(after.PublicKey, before.PublicKey) || after.VerifyHostname("gw.local") != nil {
		t.Errorf("config renewal: serial %v -> %v, same key %v, names %v", before.SerialNumber, after.SerialNumber, publicEqual(after.PublicKey, before.PublicKey), after.DNSNames)
	}
	if code, _, errs := run(t, "pki", "server", "-c", conf, "--ip", "nope"); code == 0 || !strings.Contains(errs, "not an IP address") {
		t.Errorf("--ip nope: exit %d, %q", code, errs)
	}
}

// A LAN listener key in a TPM (swtpm): the certificate is made for it without the key leaving
// the TPM, and a TLS client verifies a handshake the TPM signs.
func TestPKIServerTPMKey(t *testing.T) {
	conf, dir, _ := pkitest.Site(t)
	mustRun(t, "pki", "init", "-c", conf, "--host", "gw.local")
	sw := hwtest.StartSWTPM(t)
	uri := sw.URI("handle=0x81000123")
	pkitest.CreateKey(t, uri)
	certFile := filepath.Join(t.TempDir(), "lan.crt")
	mustRun(t, "pki", "server", "-c", conf, "--key", uri, "--ip", "127.0.0.1", "--out", certFile)
	if err := pkitest.Verify(t, dir, certFile); err != nil {
		t.Fatalf("openssl verify: %v", err)
	}

	key, err := hw.Open(context.Background(), uri)
	if err != nil {
		t.Fatal(err)
	}
	defer key.Close()
	chain := pkitest.ReadChain(t, certFile)
	if !publicEqual(chain[0].PublicKey, key.Public()) {
		t.Fatal("the certificate is not for the TPM key")
	}
	var raw [][]byte
	for _, c := range chain {
		raw = append(raw, c.Raw)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: raw, PrivateKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	roots := x509.NewCertPool()
	roots.AddCert(chain[1])
	d := &net.Dialer{Timeout: 10 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("TLS handshake signed in the TPM: %v", err)
	}
	c.Close()
}

// `pki claim` issues a claim certificate with its own policy; `pki list` shows it, and after
// a renewal both certificates of the thing.
func TestPKIClaimAndList(t *testing.T) {
	conf, dir, devices := pkitest.Site(t)
	mustRun(t, "pki", "init", "-c", conf, "--host", "gw.local")
	out := t.TempDir()
	if code, _, errs := run(t, "pki", "claim", "-c", conf, "batch7", "--out", out); code == 0 || !strings.Contains(errs, "--template") {
		t.Errorf("claim without --template: exit %d, %q", code, errs)
	}
	mustRun(t, "pki", "claim", "-c", conf, "batch7", "--template", "sensors", "--out", out)
	if err := pkitest.Verify(t, dir, filepath.Join(out, "batch7.crt")); err != nil {
		t.Fatal(err)
	}
	claim := pkitest.ReadChain(t, filepath.Join(out, "batch7.crt"))[0]
	if !enrol.IsClaimCert(claim) {
		t.Errorf("batch7.crt is not a claim certificate: URIs %v", claim.URIs)
	}
	pol, err := os.ReadFile(filepath.Join(filepath.Dir(conf), "policies", "claim-batch7.json"))
	if err != nil || string(pol) != string(enrol.ClaimPolicy("sensors")) {
		t.Errorf("claim policy file: %v\n%s", err, pol)
	}
	reg, _ := os.ReadFile(devices)
	if !strings.Contains(string(reg), "name: batch7") || !strings.Contains(string(reg), "claim-batch7") {
		t.Errorf("registry lacks the claim:\n%s", reg)
	}

	// A renewal over MQTT leaves two active certificates for the thing until the new one connects.
	o := pki.Options{Dir: dir}
	if _, err := pki.Issue(context.Background(), o, "", pki.IssueRequest{Thing: "sensor-1"}); err != nil {
		t.Fatal(err)
	}
	nw, err := pki.Issue(context.Background(), o, "", pki.IssueRequest{Thing: "sensor-1", Overlap: true})
	if err != nil {
		t.Fatal(err)
	}
	var entries []pki.Entry
	if err := json.Unmarshal([]byte(mustRun(t, "pki", "list", "-c", conf, "--json")), &entries); err != nil {
		t.Fatal(err)
	}
	active, renews := 0, ""
	for _, e := range entries {
		if e.Thing == "sensor-1" && e.Status == pki.StatusActive {
			active++
		}
		if e.Serial == nw.Bundles[0].Serial {
			renews = e.Renews
		}
	}
	if active != 2 || renews == "" {
		t.Errorf("pki list --json: %d active certificates for sensor-1, renews %q; want 2 and the old serial", active, renews)
	}
	table := mustRun(t, "pki", "list", "-c", conf)
	if strings.Count(table, "sensor-1") != 2 || !strings.Contains(table, "batch7") {
		t.Errorf("pki list:\n%s", table)
	}
}

// A LAN listener key in a PKCS#11 token (SoftHSM2): same as the TPM, through the pkcs11: URI.
func TestPKIServerPKCS11Key(t *testing.T) {
	conf, dir, _ := pkitest.Site(t)
	mustRun(t, "pki", "init", "-c", conf, "--host", "gw.local")
	h := hwtest.StartSoftHSM(t, "gw")
	uri := h.URI("lan")
	pkitest.CreateKey(t, uri)
	certFile := filepath.Join(t.TempDir(), "lan.crt")
	out := mustRun(t, "pki", "server", "-c", conf, "--key", uri, "--host", "gw.local", "--out", certFile)
	if strings.Contains(out, h.PIN) {
		t.Error("the output shows the token PIN")
	}
	if err := pkitest.Verify(t, dir, certFile); err != nil {
		t.Fatalf("openssl verify: %v", err)
	}
	key, err := hw.Open(context.Background(), uri)
	if err != nil {
		t.Fatal(err)
	}
	defer key.Close()
	if !publicEqual(pkitest.ReadChain(t, certFile)[0].PublicKey, key.Public()) {
		t.Fatal("the certificate is not for the token's key")
	}
}
