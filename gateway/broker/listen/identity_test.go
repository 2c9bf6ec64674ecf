package listen

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/url"
	"strings"
	"testing"
)

// TestThingNameFromCert: the thing name comes from the configured field and
// must pass authz.ValidThingName, the registry's and the PKI's rule too (so
// a name the registry could never hold, e.g. 129 characters, is refused).
func TestThingNameFromCert(t *testing.T) {
	u, _ := url.Parse("spiffe://site/things/sensor-a")
	for _, tc := range []struct {
		name    string
		cert    *x509.Certificate
		src     IdentitySource
		want    string
		wantErr string
	}{
		{"cn", &x509.Certificate{Subject: pkix.Name{CommonName: "sensor-a"}}, IdentityCN, "sensor-a", ""},
		{"san uri, last segment", &x509.Certificate{URIs: []*url.URL{u}}, IdentitySANURI, "sensor-a", ""},
		{"san dns, first label", &x509.Certificate{DNSNames: []string{"sensor-a.site.example"}}, IdentitySANDNS, "sensor-a", ""},
		{"128 characters", &x509.Certificate{Subject: pkix.Name{CommonName: strings.Repeat("a", 128)}}, IdentityCN, strings.Repeat("a", 128), ""},
		{"129 characters", &x509.Certificate{Subject: pkix.Name{CommonName: strings.Repeat("a", 129)}}, IdentityCN, "", "want 1-128 letters"},
		{"bad character", &x509.Certificate{Subject: pkix.Name{CommonName: "sensor a"}}, IdentityCN, "", "want 1-128 letters"},
		{"no cn", &x509.Certificate{}, IdentityCN, "", ErrNoIdentity.Error()},
		{"no uri san", &x509.Certificate{}, IdentitySANURI, "", ErrNoIdentity.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ThingNameFromCert(tc.cert, tc.src)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %q, %v; want an error with %q", got, err, tc.wantErr)
				}
				if tc.wantErr == ErrNoIdentity.Error() && !errors.Is(err, ErrNoIdentity) {
					t.Errorf("got %v; want ErrNoIdentity", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
