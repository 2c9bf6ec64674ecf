package pkicmd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/cmd/edgegw/pkicmd/pkitest"
)

// pki server --reuse-key renews the existing certificate for its own public key without opening
// the key (the key URI here names nothing that exists), keeping its names, honouring
// --renew-before; it refuses when there is nothing to renew, and a certificate another CA
// signed (the key's possession was never proved to this CA).
func TestPKIServerReuseKey(t *testing.T) {
	conf, _, _ := pkitest.Site(t)
	mustRun(t, "pki", "init", "-c", conf, "--host", "gw.local")
	keyFile := filepath.Join(t.TempDir(), "lan.key")
	pkitest.CreateKey(t, "file:"+keyFile)
	certFile := filepath.Join(t.TempDir(), "lan.crt")
	gone := "file:" + filepath.Join(t.TempDir(), "absent.key")

	code, _, errOut := run(t, "pki", "server", "-c", conf, "--key", gone, "--reuse-key", "--out", certFile)
	if code != 2 || !strings.Contains(errOut, "no certificate to renew") {
		t.Errorf("--reuse-key without a certificate: exit %d, %q; want exit 2 saying there is nothing to renew", code, errOut)
	}

	mustRun(t, "pki", "server", "-c", conf, "--key", "file:"+keyFile, "--host", "gw.plant-7.example", "--ip", "10.1.2.3", "--days", "90", "--out", certFile)
	first := pkitest.ReadChain(t, certFile)[0]
	if out := mustRun(t, "pki", "server", "-c", conf, "--key", gone, "--reuse-key", "--renew-before", "30d", "--out", certFile); !strings.Contains(out, "not due") {
		t.Errorf("--reuse-key --renew-before 30d on a 90-day certificate: %q; want not due", out)
	}
	out := mustRun(t, "pki", "server", "-c", conf, "--key", gone, "--reuse-key", "--renew-before", "91d", "--out", certFile)
	if !strings.Contains(out, "renewed for the same key") {
		t.Errorf("output %q; want renewed for the same key", out)
	}
	renewed := pkitest.ReadChain(t, certFile)[0]
	if renewed.SerialNumber.Cmp(first.SerialNumber) == 0 || !publicEqual(renewed.PublicKey, first.PublicKey) ||
		renewed.VerifyHostname("10.1.2.3") != nil || renewed.VerifyHostname("gw.plant-7.example") != nil {
		t.Errorf("renewal: serial %v -> %v, same key %v, names %v %v; want a new serial for the same key and names",
			first.SerialNumber, renewed.SerialNumber, publicEqual(renewed.PublicKey, first.PublicKey), renewed.DNSNames, renewed.IPAddresses)
	}

	// A certificate of another site's CA is not renewed.
	other, _, _ := pkitest.Site(t)
	mustRun(t, "pki", "init", "-c", other, "--host", "gw.other")
	foreign := filepath.Join(t.TempDir(), "foreign.crt")
	mustRun(t, "pki", "server", "-c", other, "--key", "file:"+keyFile, "--host", "gw.other", "--out", foreign)
	before, _ := os.ReadFile(foreign)
	code, _, errOut = run(t, "pki", "server", "-c", conf, "--key", gone, "--reuse-key", "--out", foreign)
	if code == 0 || !strings.Contains(errOut, "not issued by this CA") {
		t.Errorf("--reuse-key on another CA's certificate: exit %d, %q; want a refusal naming it", code, errOut)
	}
	if after, _ := os.ReadFile(foreign); string(after) != string(before) {
		t.Error("the refused renewal rewrote the certificate")
	}
}
