package observe

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/gateway/broker/listen"
	"github.com/edgegw/edgegw/gateway/gatewaytest"
	"github.com/edgegw/edgegw/hw"
)

// TestCRLReadersAgree: the listener's trust and the metrics' nextUpdate read
// the CRL file with one reader, so a file the listener refuses is not
// silently read as "no nextUpdate" by the metrics, and both say the same.
// Before, observe had its own copy of the parser: a PEM file without an
// "X509 CRL" block (a certificate saved as crl.pem) was an error for the
// listener and no error, no series, for the metrics.
func TestCRLReadersAgree(t *testing.T) {
	pki := gatewaytest.NewPKI(t, "site")
	key, err := hw.Open(context.Background(), "file:"+pki.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	defer key.Close()
	crl, err := os.ReadFile(pki.CRLFile)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(pki.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tests := []struct {
		name    string
		data    []byte // nil: no file
		wantErr string // "" when both read it
	}{
		{"the site CA's CRL", crl, ""},
		{"empty file", []byte("\n"), ""},
		{"a certificate saved as the CRL", caPEM, `no "X509 CRL" PEM block`},
		{"not a CRL in DER", []byte("garbage"), "(#1)"},
		{"missing file", nil, "reading CRL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".pem")
			if tc.data != nil {
				gatewaytest.WriteFile(t, path, tc.data, 0o644)
			}
			_, lerr := listen.NewTrust(listen.TLSFiles{CA: pki.CAFile, Cert: pki.ServerCert, CRL: path, RequireClientCert: true}, key)
			next, oerr := earliestNextUpdate(path)
			if tc.wantErr == "" {
				if lerr != nil || oerr != nil {
					t.Fatalf("listener: %v; metrics: %v; want both to read it", lerr, oerr)
				}
				if tc.name == "the site CA's CRL" && next.IsZero() {
					t.Error("metrics: no nextUpdate for the CA's CRL")
				}
				return
			}
			if lerr == nil || oerr == nil {
				t.Fatalf("listener: %v; metrics: %v; want both to fail with %q", lerr, oerr, tc.wantErr)
			}
			if !strings.Contains(oerr.Error(), tc.wantErr) || !strings.HasSuffix(lerr.Error(), oerr.Error()) {
				t.Errorf("listener says %q, metrics %q; want the same error, with %q", lerr, oerr, tc.wantErr)
			}
		})
	}
}
