package hw

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// ParseCertChain reads the CERTIFICATE blocks of PEM data in their order (a chain file: the
// leaf first), skipping blocks of other types. Data without a certificate is an error. It is
// the one PEM chain reader for the certificates that go with keys: the listener's, the
// bridge's and a renewed identity's.
func ParseCertChain(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(out)+1, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no CERTIFICATE PEM block")
	}
	return out, nil
}

// ReadCRLs reads every certificate revocation list in path: the "X509 CRL" blocks of a PEM
// file (other blocks are skipped), or one DER CRL. A file that is empty (or only whitespace)
// holds no CRL and is no error: a site CA that has revoked nothing yet may ship one. It is the
// one CRL file reader: the listener's trust (which also checks each CRL's signature) and the
// metrics' nextUpdate read the same file the same way and fail with the same messages, which
// name the file and the CRL's position in it.
func ReadCRLs(path string) ([]*x509.RevocationList, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading CRL: %w", err)
	}
	var ders [][]byte
	if bytes.Contains(data, []byte("-----BEGIN")) {
		for rest := data; ; {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				break
			}
			if b.Type == "X509 CRL" {
				ders = append(ders, b.Bytes)
			}
		}
		if len(ders) == 0 {
			return nil, fmt.Errorf("CRL %q: no \"X509 CRL\" PEM block (is it a certificate? `edgegw pki crl` writes the site CA's)", path)
		}
	} else if len(bytes.TrimSpace(data)) > 0 {
		ders = append(ders, data)
	}
	out := make([]*x509.RevocationList, 0, len(ders))
	for i, der := range ders {
		rl, err := x509.ParseRevocationList(der)
		if err != nil {
			return nil, fmt.Errorf("CRL %q (#%d): %w", path, i+1, err)
		}
		out = append(out, rl)
	}
	return out, nil
}
