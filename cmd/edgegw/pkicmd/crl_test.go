package pkicmd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/cmd/edgegw/pkicmd/pkitest"
)

// TestPKICRLRefreshBefore: what the CRL timer runs. A CRL whose nextUpdate is beyond the window
// is left alone (exit 0, says so); within the window, or unreadable, it is re-signed.
func TestPKICRLRefreshBefore(t *testing.T) {
	for _, tc := range []struct {
		name       string
		crl        string // replaces crl.pem before the run when set
		args       []string
		wantCode   int
		wantOut    string
		wantErr    string
		wantChange bool
	}{
		{name: "fresh CRL, 10 day window", args: []string{"--refresh-before", "10d"}, wantOut: "more than 10d away: not re-signed"},
		{name: "window beyond nextUpdate", args: []string{"--refresh-before", "31d"}, wantOut: "CRL number 2: 0 revoked", wantChange: true},
		{name: "window as a Go duration", args: []string{"--refresh-before", "36h"}, wantOut: "more than 36h0m0s away: not re-signed"},
		{name: "no window: always", args: nil, wantOut: "CRL number 2: 0 revoked", wantChange: true},
		{name: "unreadable CRL", crl: "not a CRL\n", args: []string{"--refresh-before", "10d"},
			wantOut: "CRL number 2: 0 revoked", wantErr: "parsing CRL", wantChange: true},
		{name: "bad window", args: []string{"--refresh-before", "soon"}, wantCode: 2, wantErr: `--refresh-before "soon": want a number of days`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf, dir, _ := pkitest.Site(t)
			mustRun(t, "pki", "init", "-c", conf, "--crl-days", "30")
			crlPath := filepath.Join(dir, "crl.pem")
			if tc.crl != "" {
				if err := os.WriteFile(crlPath, []byte(tc.crl), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			before, _ := os.ReadFile(crlPath)
			code, out, errs := run(t, append([]string{"pki", "crl", "-c", conf}, tc.args...)...)
			after, _ := os.ReadFile(crlPath)
			if code != tc.wantCode || !strings.Contains(out, tc.wantOut) || !strings.Contains(errs, tc.wantErr) {
				t.Errorf("pki crl %v: got exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
					tc.args, code, out, errs, tc.wantCode, tc.wantOut, tc.wantErr)
			}
			if changed := string(after) != string(before); changed != tc.wantChange {
				t.Errorf("pki crl %v: got crl.pem changed %v; want %v", tc.args, changed, tc.wantChange)
			}
		})
	}
}
