package pki

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"maps"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// IssueRequest asks for one device certificate.
type IssueRequest struct {
	Thing      string            // CN, SAN URI urn:edgegw:thing:<Thing>, and the registry name
	Type       string            // thing type recorded in issued.json and devices.yaml
	Attributes map[string]string // merged into the registry entry
	Policies   []string          // added to the registry entry
	Days       int               // lifetime; default DefaultDeviceDays (never past the CA)
	// Renew replaces an active certificate of the thing: the old one is marked superseded and
	// put on the CRL with reason superseded, so its key stops working.
	Renew bool
	// CSR (PEM or DER) makes this a sign request: the device keeps its key. See CheckCSR.
	CSR []byte
	// Kind is KindDevice ("" too) or KindClaim: a claim certificate carries the SAN URI
	// urn:edgegw:claim:<Thing> instead of urn:edgegw:thing:<Thing>.
	Kind string
	// Pending records the certificate as StatusPending and leaves the registry alone; Activate
	// makes it active. Enrolment by claim uses it between CreateCertificateFromCsr and
	// RegisterThing.
	Pending bool
	// Overlap issues a new certificate while the thing's active one stays active (renewal
	// with a grace period): the new entry's Renews names the old serial. Revoke the old one
	// (reason superseded) once the new one is in use. The registry is left alone.
	Overlap bool
	// RenewSerial, with Overlap, is the certificate being renewed: it must be an active device
	// certificate of Thing (else ErrNotRenewable) and becomes the new entry's Renews.
	RenewSerial string
}

// Bundle is one issued certificate.
type Bundle struct {
	Thing      string
	Serial     string // hex
	Cert       *x509.Certificate
	CertPEM    []byte
	KeyPEM     []byte // nil for a signed CSR
	CAPEM      []byte // ca.crt (with chain)
	CertFile   string // written files; "" when no output directory was given
	KeyFile    string
	CAFile     string
	Superseded []string // serials renewed away (now on the CRL)
	Renews     string   // with Overlap: the serial that stays active until it is revoked
}

// IssueResult is what Issue did.
type IssueResult struct {
	Bundles      []Bundle
	ClockClamped bool
}

// Issue creates device certificates for reqs under one lock and one commit (a batch of 2,000 is
// one rewrite of issued.json and devices.yaml). For each request without a CSR it makes an ECDSA
// P-256 key; with a CSR it checks the CSR (CheckCSR) and signs its key. It refuses a thing that
// already has an active certificate unless Renew. With outDir != "", it writes
// outDir/<thing>.crt, outDir/<thing>.key (0600, not for CSRs) and outDir/ca.crt. Any refusal or
// error writes nothing.
func Issue(ctx context.Context, o Options, outDir string, reqs ...IssueRequest) (*IssueResult, error) {
	csrs, err := checkRequests(reqs)
	if err != nil {
		return nil, err
	}
	c, release, err := lockAndOpenCA(ctx, &o)
	if err != nil {
		return nil, err
	}
	defer release()
	now, clamped := o.now()

	active := map[string][]int{} // thing -> indexes of active device and claim entries
	for i, e := range c.st.Certs {
		if e.Kind != KindServer && e.Status == StatusActive {
			active[e.Thing] = append(active[e.Thing], i)
		}
	}
	res := &IssueResult{ClockClamped: clamped}
	var ups []ThingUpdate
	crlChanged := false
	for i, r := range reqs {
		b, superseded, err := c.issueOne(&o, now, clamped, r, csrs[i], active[r.Thing])
		if err != nil {
			return nil, err
		}
		crlChanged = crlChanged || superseded
		if !r.Pending && !r.Overlap {
			ups = append(ups, ThingUpdate{Name: r.Thing, Type: r.Type, Attributes: maps.Clone(r.Attributes), Policies: r.Policies})
		}
		res.Bundles = append(res.Bundles, b)
	}
	if err := c.commitIssued(&o, now, outDir, res.Bundles, ups, crlChanged); err != nil {
		return nil, err
	}
	for _, b := range res.Bundles {
		o.log().Info("certificate issued", "device", b.Thing, "serial", b.Serial, "superseded", b.Superseded)
	}
	return res, nil
}

// checkRequests refuses an empty batch, an invalid or repeated thing name
// and a CSR that does not fit its thing, before the CA is locked; it returns
// the parsed CSRs (nil where the gateway makes the key).
func checkRequests(reqs []IssueRequest) ([]*x509.CertificateRequest, error) {
	if len(reqs) == 0 {
		return nil, fmt.Errorf("pki issue: no thing given")
	}
	seen := map[string]bool{}
	csrs := make([]*x509.CertificateRequest, len(reqs))
	for i, r := range reqs {
		if err := ValidThing(r.Thing); err != nil {
			return nil, err
		}
		if seen[r.Thing] {
			return nil, fmt.Errorf("thing %q is given twice", r.Thing)
		}
		seen[r.Thing] = true
		if r.CSR != nil {
			csr, err := CheckCSR(r.CSR, r.Thing)
			if err != nil {
				return nil, err
			}
			csrs[i] = csr
		}
	}
	return csrs, nil
}

// issueOne signs one request's certificate and records it in c.st (not yet
// written): the key is the CSR's or a new P-256 key, the thing's active
// certificates (active: their indexes in c.st.Certs) are kept (overlap),
// superseded (renew) or a refusal. superseded reports a CRL change.
func (c *ca) issueOne(o *Options, now time.Time, clamped bool, r IssueRequest, csr *x509.CertificateRequest, active []int) (b Bundle, superseded bool, err error) {
	b = Bundle{Thing: r.Thing, CAPEM: c.chain}
	renews := ""
	switch {
	case r.Overlap && r.RenewSerial != "":
		j := c.find(r.RenewSerial)
		if j < 0 || c.st.Certs[j].Thing != r.Thing || c.st.Certs[j].Kind != KindDevice || c.st.Certs[j].Status != StatusActive {
			return b, false, fmt.Errorf("%w: %s is not an active device certificate of %q", ErrNotRenewable, r.RenewSerial, r.Thing)
		}
		renews = c.st.Certs[j].Serial
		if r.Type == "" {
			r.Type = c.st.Certs[j].Type
		}
	case len(active) > 0 && r.Overlap:
		renews = c.st.Certs[active[len(active)-1]].Serial
	case len(active) > 0:
		if !r.Renew {
			e := c.st.Certs[active[0]]
			return b, false, fmt.Errorf("%w: %q has serial %s, valid until %s; use --renew to replace it (the old certificate is then revoked as superseded) or revoke it first",
				ErrThingActive, r.Thing, e.Serial, e.NotAfter.Format(time.DateOnly))
		}
		for _, j := range active {
			e := &c.st.Certs[j]
			at := now
			e.Status, e.RevokedAt, e.Reason = StatusSuperseded, &at, "superseded"
			b.Superseded = append(b.Superseded, e.Serial)
		}
		superseded = true
	}
	var pub any
	source := "key"
	if csr != nil {
		pub, source = csr.PublicKey, "csr"
	} else {
		k, err := ecdsa.GenerateKey(elliptic.P256(), randReader(o))
		if err != nil {
			return b, false, err
		}
		if b.KeyPEM, err = marshalKeyPEM(k); err != nil {
			return b, false, err
		}
		pub = k.Public()
	}
	days := r.Days
	if days <= 0 {
		days = DefaultDeviceDays
	}
	tmpl, err := c.leafTemplate(o, now, clamped, days, pub)
	if err != nil {
		return b, false, err
	}
	tmpl.Subject = pkix.Name{CommonName: r.Thing}
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	kind, status := KindDevice, StatusActive
	tmpl.URIs = []*url.URL{{Scheme: "urn", Opaque: "edgegw:thing:" + r.Thing}}
	if r.Kind == KindClaim {
		kind = KindClaim
		tmpl.URIs = []*url.URL{{Scheme: "urn", Opaque: strings.TrimPrefix(ClaimURIPrefix, "urn:") + r.Thing}}
	} else if r.Kind != "" && r.Kind != KindDevice {
		return b, false, fmt.Errorf("issuing %q: kind %q is neither %s nor %s", r.Thing, r.Kind, KindDevice, KindClaim)
	}
	if r.Pending {
		status = StatusPending
	}
	der, err := x509.CreateCertificate(randReader(o), tmpl, c.cert, pub, c.key)
	if err != nil {
		return b, false, fmt.Errorf("signing certificate for %q: %w", r.Thing, err)
	}
	if b.Cert, err = x509.ParseCertificate(der); err != nil {
		return b, false, err
	}
	b.CertPEM, b.Serial = certPEM(der), SerialHex(tmpl.SerialNumber)
	c.st.Certs = append(c.st.Certs, Entry{
		Serial: b.Serial, Thing: r.Thing, Type: r.Type, Kind: kind, Source: source,
		NotBefore: tmpl.NotBefore, NotAfter: tmpl.NotAfter, Status: status, Renews: renews,
	})
	b.Renews = renews
	return b, superseded, nil
}

// commitIssued writes, all or nothing (one txn): the CRL when a renewal
// superseded a certificate (before issued.json, which carries the CRL
// number), issued.json, the registry's updates, and each bundle's files in
// outDir (whose paths it sets in bundles).
func (c *ca) commitIssued(o *Options, now time.Time, outDir string, bundles []Bundle, ups []ThingUpdate, crlChanged bool) error {
	var t txn
	defer t.abort()
	var crl []byte
	if crlChanged {
		var err error
		if crl, err = c.signCRL(o, now); err != nil {
			return err
		}
	}
	if err := t.put(o.path(IssuedFile), marshalJSON(c.st), 0o644); err != nil {
		return err
	}
	if crl != nil {
		if err := t.put(o.path(CRLFile), crl, 0o644); err != nil {
			return err
		}
	}
	if o.Devices != "" && len(ups) > 0 {
		old, err := readRegistry(o.Devices)
		if err != nil {
			return fmt.Errorf("reading registry: %w", err)
		}
		reg, err := updateRegistry(o.Devices, old, ups)
		if err != nil {
			return fmt.Errorf("updating registry: %w", err)
		}
		if err := t.put(o.Devices, reg, 0o644); err != nil {
			return err
		}
	}
	if outDir != "" {
		if err := writeBundles(&t, o, outDir, bundles, c.chain); err != nil {
			return err
		}
	}
	return t.commit()
}

// writeBundles stages each bundle's certificate and key (0600) in outDir,
// and the CA chain unless outDir is the PKI directory itself.
func writeBundles(t *txn, o *Options, outDir string, bundles []Bundle, chain []byte) error {
	if err := os.MkdirAll(outDir, 0o700); err != nil {
		return fmt.Errorf("creating output directory: %w", err)
	}
	for i := range bundles {
		b := &bundles[i]
		b.CertFile = filepath.Join(outDir, b.Thing+".crt")
		if err := t.put(b.CertFile, b.CertPEM, 0o644); err != nil {
			return err
		}
		if b.KeyPEM != nil {
			b.KeyFile = filepath.Join(outDir, b.Thing+".key")
			if err := t.put(b.KeyFile, b.KeyPEM, 0o600); err != nil {
				return err
			}
		}
		b.CAFile = filepath.Join(outDir, CACertFile)
	}
	if filepath.Clean(outDir) != filepath.Clean(o.Dir) {
		if err := t.put(filepath.Join(outDir, CACertFile), chain, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Sign signs a device-generated CSR for req.Thing (see CheckCSR); the private key never
// touches the gateway. It is Issue with req.CSR = csr.
func Sign(ctx context.Context, o Options, outDir string, csr []byte, req IssueRequest) (*Bundle, error) {
	req.CSR = csr
	if req.CSR == nil {
		req.CSR = []byte{}
	}
	res, err := Issue(ctx, o, outDir, req)
	if err != nil {
		return nil, err
	}
	return &res.Bundles[0], nil
}

// CheckCSR parses a PEM or DER CSR and refuses it (ErrBadCSR) unless ParseCSR accepts it and
// its subject CN is thing.
func CheckCSR(data []byte, thing string) (*x509.CertificateRequest, error) {
	csr, err := ParseCSR(data)
	if err != nil {
		return nil, err
	}
	if csr.Subject.CommonName != thing {
		return nil, fmt.Errorf("%w: its subject CN is %q but the thing is %q; make the CSR with -subj /CN=%s", ErrBadCSR, csr.Subject.CommonName, thing, thing)
	}
	return csr, nil
}

// ParseCSR parses a PEM or DER CSR and refuses it (ErrBadCSR) unless its self-signature
// verifies, its key is ECDSA P-256/P-384 or RSA 2048-8192 bits, and it asks for no CA powers
// (basicConstraints CA:TRUE, keyUsage keyCertSign or cRLSign). The subject is not judged.
// Ed25519 is refused: ESP32/mbedTLS sensors and many TLS 1.2 stacks cannot use it, and one key
// type per site keeps the broker's TLS configuration simple.
func ParseCSR(data []byte) (*x509.CertificateRequest, error) {
	der := data
	if blk, _ := pem.Decode(data); blk != nil {
		if blk.Type != "CERTIFICATE REQUEST" && blk.Type != "NEW CERTIFICATE REQUEST" {
			return nil, fmt.Errorf("%w: PEM block is %q, want CERTIFICATE REQUEST", ErrBadCSR, blk.Type)
		}
		der = blk.Bytes
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("%w: not a readable PKCS#10 request: %v", ErrBadCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: its signature does not verify (%v): the file is damaged or was altered; make a new CSR on the device", ErrBadCSR, err)
	}
	switch k := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, fmt.Errorf("%w: key %s is not accepted; use ECDSA P-256 or P-384, or RSA >= 2048 bits", ErrBadCSR, keyDescription(k))
		}
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < 2048 || n > 8192 {
			return nil, fmt.Errorf("%w: RSA key of %d bits is not accepted; use at least 2048 bits (or ECDSA P-256)", ErrBadCSR, n)
		}
	case ed25519.PublicKey:
		return nil, fmt.Errorf("%w: Ed25519 keys are not accepted (ESP32/mbedTLS sensors and TLS 1.2 clients cannot use them); use ECDSA P-256", ErrBadCSR)
	default:
		return nil, fmt.Errorf("%w: key type %T is not accepted; use ECDSA P-256 or P-384, or RSA >= 2048 bits", ErrBadCSR, k)
	}
	if err := checkNoCA(csr); err != nil {
		return nil, err
	}
	return csr, nil
}

// checkNoCA refuses a CSR whose extension request asks for a CA certificate. The signed
// certificate would not carry these bits anyway (the template is ours), but a device asking for
// them is misconfigured or hostile, and saying so beats silently ignoring it.
func checkNoCA(csr *x509.CertificateRequest) error {
	for _, ext := range csr.Extensions {
		switch {
		case ext.Id.Equal(oidExtBasicConstraints):
			var bc struct {
				IsCA       bool `asn1:"optional"`
				MaxPathLen int  `asn1:"optional,default:-1"`
			}
			if rest, err := asn1.Unmarshal(ext.Value, &bc); err != nil || len(rest) > 0 {
				return fmt.Errorf("%w: its basicConstraints extension is malformed", ErrBadCSR)
			}
			if bc.IsCA {
				return fmt.Errorf("%w: it asks for a CA certificate (basicConstraints CA:TRUE); a device certificate must not be a CA: make the CSR without CA extensions", ErrBadCSR)
			}
		case ext.Id.Equal(oidExtKeyUsage):
			var ku asn1.BitString
			if rest, err := asn1.Unmarshal(ext.Value, &ku); err != nil || len(rest) > 0 {
				return fmt.Errorf("%w: its keyUsage extension is malformed", ErrBadCSR)
			}
			if ku.At(5) == 1 || ku.At(6) == 1 { // keyCertSign, cRLSign
				return fmt.Errorf("%w: it asks for keyCertSign or cRLSign key usage, which only a CA has: make the CSR without CA extensions", ErrBadCSR)
			}
		}
	}
	return nil
}

// RevokeResult lists the certificates Revoke put on the CRL.
type RevokeResult struct {
	Revoked      []Entry
	CRLNumber    int64
	ClockClamped bool
}

// Revoke revokes the certificate with serial target (hex, colons allowed) or, when no serial
// matches, every active certificate of the thing named target; reason is a key of Reasons.
// It re-signs crl.pem (new CRL number, nextUpdate) and updates issued.json. devices.yaml is left
// alone: the thing remains, its certificate is revoked (AWS IoT semantics); a new certificate
// for the thing can be issued without --renew.
func Revoke(ctx context.Context, o Options, target, reason string) (*RevokeResult, error) {
	reason, err := ParseReason(reason)
	if err != nil {
		return nil, err
	}
	c, release, err := lockAndOpenCA(ctx, &o)
	if err != nil {
		return nil, err
	}
	defer release()
	now, clamped := o.now()

	var hits []int
	if s, ok := parseSerial(target); ok {
		for i, e := range c.st.Certs {
			if es, ok := new(big.Int).SetString(e.Serial, 16); ok && es.Cmp(s) == 0 {
				hits = append(hits, i)
			}
		}
	}
	byThing := len(hits) == 0
	if byThing {
		for i, e := range c.st.Certs {
			if e.Thing == target && (e.Kind == KindDevice || e.Kind == KindClaim) {
				hits = append(hits, i)
			}
		}
	}
	if len(hits) == 0 {
		return nil, fmt.Errorf("%w: %q is neither a serial nor a thing in %s (see `edgegw pki list`)", ErrNotFound, target, o.path(IssuedFile))
	}
	return c.revokeEntries(&o, hits, now, clamped, reason, func() error {
		return fmt.Errorf("%w: %q has no active certificate", ErrAlreadyRevoked, target)
	})
}

// revokeEntries revokes the entries at idx that are active or pending, then re-signs the CRL
// and commits issued.json and crl.pem in one transaction (Revoke, RevokeSerials). When none was
// left to revoke it returns none() and writes nothing.
func (c *ca) revokeEntries(o *Options, idx []int, now time.Time, clamped bool, reason string, none func() error) (*RevokeResult, error) {
	res := &RevokeResult{ClockClamped: clamped}
	for _, i := range idx {
		e := &c.st.Certs[i]
		if e.Status != StatusActive && e.Status != StatusPending {
			continue
		}
		at := now
		e.Status, e.RevokedAt, e.Reason = StatusRevoked, &at, reason
		res.Revoked = append(res.Revoked, *e)
	}
	if len(res.Revoked) == 0 {
		return nil, none()
	}
	crl, err := c.signCRL(o, now)
	if err != nil {
		return nil, err
	}
	res.CRLNumber = c.st.CRLNumber
	var t txn
	defer t.abort()
	if err := t.put(o.path(IssuedFile), marshalJSON(c.st), 0o644); err != nil {
		return nil, err
	}
	if err := t.put(o.path(CRLFile), crl, 0o644); err != nil {
		return nil, err
	}
	if err := t.commit(); err != nil {
		return nil, err
	}
	for _, e := range res.Revoked {
		o.log().Info("certificate revoked", "device", e.Thing, "serial", e.Serial, "reason", reason)
	}
	return res, nil
}

// parseSerial reads a hex serial as `pki list` or openssl print it (colons and 0x allowed).
func parseSerial(s string) (*big.Int, bool) {
	s = strings.ToLower(strings.ReplaceAll(s, ":", ""))
	s = strings.TrimPrefix(s, "0x")
	if len(s) < 8 { // thing names like "abc" are not serials; ours have 128 bits
		return nil, false
	}
	return new(big.Int).SetString(s, 16)
}

// RefreshCRL re-signs crl.pem with a new CRL number and nextUpdate (days > 0 also changes the
// CRL lifetime for later CRLs). Run it from a timer well before nextUpdate: clients that check
// CRLs (openssl, mosquitto) refuse everything once the CRL has expired.
func RefreshCRL(ctx context.Context, o Options, days int) (*x509.RevocationList, error) {
	c, release, err := lockAndOpenCA(ctx, &o)
	if err != nil {
		return nil, err
	}
	defer release()
	now, _ := o.now()
	var t txn
	defer t.abort()
	if days > 0 && days != c.cfg.CRLDays {
		c.cfg.CRLDays = days
		if err := t.put(o.path(CAConfigFile), marshalJSON(c.cfg), 0o644); err != nil {
			return nil, err
		}
	}
	crl, err := c.signCRL(&o, now)
	if err != nil {
		return nil, err
	}
	if err := t.put(o.path(IssuedFile), marshalJSON(c.st), 0o644); err != nil {
		return nil, err
	}
	if err := t.put(o.path(CRLFile), crl, 0o644); err != nil {
		return nil, err
	}
	if err := t.commit(); err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(crl)
	return x509.ParseRevocationList(blk.Bytes)
}

// List returns every certificate in issued.json, oldest first. It takes no lock: writers
// replace the file atomically.
func List(o Options) ([]Entry, error) {
	var st state
	if err := readJSON(o.path(IssuedFile), &st); err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("%w in %s: run `edgegw pki init --dir %s` first", ErrNoCA, o.Dir, o.Dir)
		}
		return nil, fmt.Errorf("reading registry of issued certificates: %w", err)
	}
	return st.Certs, nil
}
