// Package pkitest is what the tests of the pki commands (pkicmd) and of the
// whole binary (cmd/edgegw) need to set up and check a site PKI: a config
// directory laid out like /etc/edgegw, a key made the way `edgegw key create`
// makes one, openssl's verdict on a certificate, the chain in a PEM file.
//
// It is a test helper: only tests import it (cmd/edgegw/deps_test.go). Of
// this module it imports hw only (and hw/hwtest, for the tools it needs).
package pkitest

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgegw/edgegw/hw"
	"github.com/edgegw/edgegw/hw/hwtest"
)

// Site is a config dir laid out like /etc/edgegw: edgegw.yaml naming pki/ca.crt and
// devices.yaml, so every pki command finds its directory and registry from -c.
func Site(t *testing.T) (conf, dir, devices string) {
	t.Helper()
	root := t.TempDir()
	conf = filepath.Join(root, "edgegw.yaml")
	cfg := `version: 1
site: test
listeners:
  - name: lan
    address: "127.0.0.1:8883"
    tls: {ca: pki/ca.crt, cert: pki/server.crt, key: "file:pki/server.key", crl: pki/crl.pem}
devices: devices.yaml
policies: policies/
`
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return conf, filepath.Join(root, "pki"), filepath.Join(root, "devices.yaml")
}

// Verify is `openssl verify` of cert against DIR/ca.crt with DIR/crl.pem.
func Verify(t *testing.T, dir, cert string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, hwtest.Require(t, "openssl", "openssl"), "verify", "-CAfile", filepath.Join(dir, "ca.crt"),
		"-crl_check", "-CRLfile", filepath.Join(dir, "crl.pem"), cert).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

// ReadChain is the certificates of the PEM file path, in order.
func ReadChain(t *testing.T, path string) []*x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			return out
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
}

// CANotBefore is the NotBefore of DIR/ca.crt, in UTC.
func CANotBefore(t *testing.T, dir string) time.Time {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s/ca.crt: no PEM block", dir)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.NotBefore.UTC()
}

// CreateKey makes an ECDSA P-256 key at uri, as `edgegw key create --key URI` does.
func CreateKey(t *testing.T, uri string) {
	t.Helper()
	k, err := hw.Create(context.Background(), uri, hw.P256)
	if err != nil {
		t.Fatalf("creating the key %s: %v", hw.Redact(uri), err)
	}
	k.Close()
}
