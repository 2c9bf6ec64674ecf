package main

import (
	"crypto/x509"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/cmd/edgegw/pkicmd/pkitest"
	"github.com/edgegw/edgegw/hw/hwtest"
)

// The site PKI for the tests of the whole binary (the pki commands' own tests are in pkicmd);
// pkitest is the one copy of these helpers.

func pkiSite(t *testing.T) (conf, dir, devices string) { t.Helper(); return pkitest.Site(t) }
func readChain(t *testing.T, path string) []*x509.Certificate {
	t.Helper()
	return pkitest.ReadChain(t, path)
}
func needTool(t *testing.T, name, pkg string) string { t.Helper(); return hwtest.Require(t, name, pkg) }

// mustRun runs `edgegw ARGS` through execute and fails the test unless it exits 0.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := edgegw(t, args...)
	if code != 0 {
		t.Fatalf("edgegw %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}
