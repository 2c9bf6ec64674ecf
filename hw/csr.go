package hw

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// CSR makes a PEM "CERTIFICATE REQUEST" signed by key (so it proves possession; the key never
// leaves its device). Each SAN is an IP address, a URI (contains "://"), an e-mail address
// (contains "@") or else a DNS name.
func CSR(key crypto.Signer, cn string, sans []string) ([]byte, error) {
	if cn == "" {
		return nil, errors.New("CSR: the common name is empty")
	}
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}
	for _, s := range sans {
		switch {
		case s == "":
			return nil, errors.New("CSR: empty SAN")
		case net.ParseIP(s) != nil:
			tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(s))
		case strings.Contains(s, "://"):
			u, err := url.Parse(s)
			if err != nil {
				return nil, fmt.Errorf("CSR: SAN %q: %w", s, err)
			}
			tmpl.URIs = append(tmpl.URIs, u)
		case strings.Contains(s, "@"):
			tmpl.EmailAddresses = append(tmpl.EmailAddresses, s)
		default:
			tmpl.DNSNames = append(tmpl.DNSNames, s)
		}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, fmt.Errorf("CSR: signing: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}
