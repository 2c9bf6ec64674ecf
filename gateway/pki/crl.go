package pki

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"sort"
	"strings"
	"time"
)

// Reasons are the CRL reason codes of RFC 5280 5.3.1 that `pki revoke --reason` accepts.
// certificateHold (6) and removeFromCRL (8) are left out: a revocation here is final.
var Reasons = map[string]int{
	"unspecified":          0,
	"keyCompromise":        1,
	"cACompromise":         2,
	"affiliationChanged":   3,
	"superseded":           4,
	"cessationOfOperation": 5,
	"privilegeWithdrawn":   9,
}

// ReasonNames lists Reasons sorted, for help texts.
func ReasonNames() []string {
	var n []string
	for k := range Reasons {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// signCRL makes a new CRL v2 from c.st: every revoked or superseded certificate with its
// revocation time and reason, CRL number c.st.CRLNumber+1 (stored back in c.st), thisUpdate
// now and nextUpdate now + CRLDays.
func (c *ca) signCRL(o *Options, now time.Time) ([]byte, error) {
	days := c.cfg.CRLDays
	if days <= 0 {
		days = DefaultCRLDays
	}
	c.st.CRLNumber++
	tmpl := &x509.RevocationList{
		Number:     big.NewInt(c.st.CRLNumber),
		ThisUpdate: now,
		NextUpdate: now.AddDate(0, 0, days),
	}
	for _, e := range c.st.Certs {
		if e.Status == StatusActive || e.RevokedAt == nil {
			continue
		}
		s, ok := new(big.Int).SetString(e.Serial, 16)
		if !ok {
			return nil, fmt.Errorf("issued.json: bad serial %q", e.Serial)
		}
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{
			SerialNumber:   s,
			RevocationTime: *e.RevokedAt,
			ReasonCode:     Reasons[e.Reason],
		})
	}
	der, err := x509.CreateRevocationList(randReader(o), tmpl, c.cert, c.key)
	if err != nil {
		return nil, fmt.Errorf("signing CRL: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), nil
}

// CRL is a parsed CRL whose signature was checked against a CA certificate.
type CRL struct {
	Issuer     *x509.Certificate
	Number     *big.Int
	ThisUpdate time.Time
	NextUpdate time.Time
	revoked    map[string]int // serial bytes -> reason code
}

// LoadCRL reads the PEM (or DER) CRL at crlPath and checks it is signed by one of the
// certificates in the PEM bundle caPath (DIR/ca.crt). The gateway calls it at start, on SIGHUP
// and when crl.pem changes; on error it keeps the CRL it had.
func LoadCRL(crlPath, caPath string) (*CRL, error) {
	b, err := os.ReadFile(crlPath)
	if err != nil {
		return nil, fmt.Errorf("reading CRL: %w", err)
	}
	cab, err := os.ReadFile(caPath)
	if err != nil {
		return nil, fmt.Errorf("reading CA for CRL: %w", err)
	}
	cas, err := parseCerts(cab)
	if err != nil {
		return nil, fmt.Errorf("reading CA for CRL %s: %w", caPath, err)
	}
	crl, err := ParseCRL(b, cas)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", crlPath, err)
	}
	return crl, nil
}

// ParseCRL parses a PEM or DER CRL and verifies its signature against the issuer among cas.
func ParseCRL(data []byte, cas []*x509.Certificate) (*CRL, error) {
	der := data
	if blk, _ := pem.Decode(data); blk != nil {
		if blk.Type != "X509 CRL" {
			return nil, fmt.Errorf("PEM block %q is not an X509 CRL", blk.Type)
		}
		der = blk.Bytes
	}
	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("parsing CRL: %w", err)
	}
	var issuer *x509.Certificate
	var sigErr error
	for _, ca := range cas {
		if !bytes.Equal(ca.RawSubject, rl.RawIssuer) {
			continue
		}
		if err := rl.CheckSignatureFrom(ca); err != nil {
			sigErr = err
			continue
		}
		issuer = ca
		break
	}
	if issuer == nil {
		if sigErr != nil {
			return nil, fmt.Errorf("CRL signature does not verify: %w", sigErr)
		}
		return nil, fmt.Errorf("CRL issuer %q is none of the CA certificates", rl.Issuer)
	}
	c := &CRL{Issuer: issuer, Number: rl.Number, ThisUpdate: rl.ThisUpdate, NextUpdate: rl.NextUpdate,
		revoked: make(map[string]int, len(rl.RevokedCertificateEntries))}
	for _, e := range rl.RevokedCertificateEntries {
		c.revoked[string(e.SerialNumber.Bytes())] = e.ReasonCode
	}
	return c, nil
}

// Revoked reports whether serial is on the CRL.
func (c *CRL) Revoked(serial *big.Int) bool {
	_, ok := c.revoked[string(serial.Bytes())]
	return ok
}

// RevokedCert reports whether cert, issued by the CRL's issuer, is on the CRL. Certificates from
// another issuer are not judged by this CRL (false).
func (c *CRL) RevokedCert(cert *x509.Certificate) bool {
	return bytes.Equal(cert.RawIssuer, c.Issuer.RawSubject) && c.Revoked(cert.SerialNumber)
}

// Reason returns the reason code for a revoked serial.
func (c *CRL) Reason(serial *big.Int) (code int, ok bool) {
	code, ok = c.revoked[string(serial.Bytes())]
	return code, ok
}

// Len is the number of revoked serials.
func (c *CRL) Len() int { return len(c.revoked) }

// Stale reports whether the CRL is past its nextUpdate at now (refresh it with `pki crl`).
func (c *CRL) Stale(now time.Time) bool {
	return !c.NextUpdate.IsZero() && now.After(c.NextUpdate)
}

// ParseReason maps a --reason value (case-insensitive) to its name in Reasons.
func ParseReason(s string) (string, error) {
	if s == "" {
		return "unspecified", nil
	}
	for k := range Reasons {
		if strings.EqualFold(k, s) {
			return k, nil
		}
	}
	return "", errors.New("unknown revocation reason " + fmt.Sprintf("%q", s) + "; use one of " + strings.Join(ReasonNames(), ", "))
}
