package pki

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"strings"
	"time"

	"github.com/edgegw/edgegw/hw"
)

// InitOptions are the settings of `edgegw pki init`.
type InitOptions struct {
	// Key is the CA key URI. "" creates a new ECDSA P-256 key in DIR/ca.key (0600).
	// "file:PATH" (or a bare path) uses that PEM key when it exists and creates it otherwise;
	// relative paths are relative to DIR. Any other URI (tpm:, pkcs11:) is opened with hw.Open
	// (or Options.OpenKey) and, when hw says it is not there, created with hw.Create (P-256).
	Key        string
	CN         string   // CA common name; default "edgegw site CA"
	Days       int      // CA lifetime; default DefaultCADays
	Hosts      []string // server certificate names: DNS names or IP addresses; default: hostname, localhost, 127.0.0.1, ::1
	ServerDays int      // default DefaultServerDays
	CRLDays    int      // CRL nextUpdate; default DefaultCRLDays
	// CSR makes DIR/ca.csr for an enterprise root instead of a self-signed CA; ImportCA
	// finishes the CA with the signed certificate.
	CSR bool
}

// InitResult says what Init did.
type InitResult struct {
	CACert       *x509.Certificate // nil with CSR
	CSRPEM       []byte            // with CSR
	Files        []string          // files written
	ClockClamped bool              // the clock was before Options.NotBefore
	Warnings     []string
}

// DefaultHosts are the server certificate names when none are given.
func DefaultHosts() []string {
	h := []string{}
	if n, err := os.Hostname(); err == nil && n != "" && n != "localhost" {
		h = append(h, n)
	}
	return append(h, "localhost", "127.0.0.1", "::1")
}

// Init creates the site CA in o.Dir: key, self-signed CA certificate (basicConstraints CA,
// pathlen 0, keyCertSign|cRLSign), the broker's server certificate, an empty CRL and an empty
// issued.json. With io.CSR it stops after the key and DIR/ca.csr. It refuses to touch an
// existing CA.
func Init(ctx context.Context, o Options, io InitOptions) (*InitResult, error) {
	if o.Dir == "" {
		return nil, errors.New("pki init: no directory given")
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating PKI directory: %w", err)
	}
	if err := o.shareDir(); err != nil {
		return nil, err
	}
	unlock, err := lockDir(ctx, o.Dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	for _, f := range []string{CAConfigFile, CACertFile, CAKeyFile} {
		if exists(o.path(f)) {
			return nil, fmt.Errorf("%w in %s (%s is there); refusing to overwrite it", ErrExists, o.Dir, f)
		}
	}
	io.setDefaults()
	now, clamped := o.now()
	res := &InitResult{ClockClamped: clamped}
	cfg := caConfig{Version: 1, Key: io.Key, CN: io.CN, Hosts: io.Hosts, ServerDays: io.ServerDays, CRLDays: io.CRLDays}
	if cfg.Key == "" {
		cfg.Key = "file:" + CAKeyFile
	}

	var t txn
	defer t.abort()
	key, made, err := initCAKey(ctx, &o, &t, cfg.Key)
	if err != nil {
		return nil, err
	}
	res.Files = append(res.Files, made...)
	defer key.Close()

	if io.CSR {
		csr, err := caCSR(o, key, io.CN)
		if err != nil {
			return nil, err
		}
		if err := t.put(o.path(CACSRFile), csr, 0o644); err != nil {
			return nil, err
		}
		if err := t.put(o.path(CAConfigFile), marshalJSON(cfg), 0o644); err != nil {
			return nil, err
		}
		if err := t.commit(); err != nil {
			return nil, err
		}
		res.CSRPEM = csr
		res.Files = append(res.Files, o.path(CACSRFile), o.path(CAConfigFile))
		return res, nil
	}

	cert, der, err := selfSignCA(&o, key, io.CN, now, clamped, io.Days)
	if err != nil {
		return nil, err
	}
	files, err := finishCA(&t, &o, cfg, cert, certPEM(der), key, now, clamped)
	if err != nil {
		return nil, err
	}
	if err := t.commit(); err != nil {
		return nil, err
	}
	res.CACert = cert
	res.Files = append(res.Files, files...)
	o.log().Info("site CA created", "dir", o.Dir, "cn", io.CN, "not_after", cert.NotAfter)
	return res, nil
}

// setDefaults fills what pki init was not told.
func (io *InitOptions) setDefaults() {
	if io.CN == "" {
		io.CN = "edgegw site CA"
	}
	if io.Days <= 0 {
		io.Days = DefaultCADays
	}
	if io.ServerDays <= 0 {
		io.ServerDays = DefaultServerDays
	}
	if io.CRLDays <= 0 {
		io.CRLDays = DefaultCRLDays
	}
	if len(io.Hosts) == 0 {
		io.Hosts = DefaultHosts()
	}
}

// initCAKey gives the new CA its key: a file key that does not exist yet is
// generated and staged in t (0600; made lists it), any other key URI is
// opened, and a TPM or token key not made yet is made where it lives.
func initCAKey(ctx context.Context, o *Options, t *txn, uri string) (key Key, made []string, err error) {
	p, isFile := resolveKeyURI(o.Dir, uri)
	if isFile && !exists(p) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), randReader(o))
		if err != nil {
			return nil, nil, err
		}
		pemKey, err := marshalKeyPEM(k)
		if err != nil {
			return nil, nil, err
		}
		if err := t.put(p, pemKey, 0o600); err != nil {
			return nil, nil, err
		}
		return fileKey{k}, []string{p}, nil
	}
	key, err = openKey(ctx, o, uri)
	if errors.Is(err, hw.ErrNotFound) && !isFile && o.OpenKey == nil {
		// A TPM handle/blob or token object not made yet: make it where it lives.
		key, err = hw.Create(ctx, uri, hw.P256)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("opening CA key %s: %w", uri, err)
	}
	return key, nil, nil
}

// selfSignCA makes the self-signed CA certificate: basicConstraints CA with
// pathlen 0, keyCertSign|cRLSign, valid for days from now.
func selfSignCA(o *Options, key Key, cn string, now time.Time, clamped bool, days int) (*x509.Certificate, []byte, error) {
	serial, err := newSerial(*o, nil)
	if err != nil {
		return nil, nil, err
	}
	ski, err := subjectKeyID(key.Public())
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             notBefore(now, clamped),
		NotAfter:              now.AddDate(0, 0, days),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		SubjectKeyId:          ski,
	}
	der, err := x509.CreateCertificate(randReader(o), tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("creating CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return cert, der, nil
}

var (
	oidExtBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidExtKeyUsage         = asn1.ObjectIdentifier{2, 5, 29, 15}
)

// caCSR makes a CSR asking for a CA certificate (basicConstraints CA:true pathlen:0,
// keyUsage keyCertSign|cRLSign, both critical) for an enterprise root to sign.
func caCSR(o Options, key Key, cn string) ([]byte, error) {
	bc, _ := asn1.Marshal(struct {
		IsCA       bool `asn1:"optional"`
		MaxPathLen int  `asn1:"optional,default:-1"`
	}{true, 0})
	// KeyUsage bit string: keyCertSign (5) and cRLSign (6).
	ku, _ := asn1.Marshal(asn1.BitString{Bytes: []byte{0x06}, BitLength: 7})
	tmpl := &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: cn},
		ExtraExtensions: []pkix.Extension{
			{Id: oidExtBasicConstraints, Critical: true, Value: bc},
			{Id: oidExtKeyUsage, Critical: true, Value: ku},
		},
	}
	der, err := x509.CreateCertificateRequest(randReader(&o), tmpl, key)
	if err != nil {
		return nil, fmt.Errorf("creating CA CSR: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// ImportCA finishes a CA started with InitOptions.CSR: certPEM is the CA certificate signed by
// the enterprise root, followed by its chain up to the root (that file becomes ca.crt, which
// clients and `openssl verify -CAfile` need whole). It checks the certificate matches the key
// and may sign certificates and CRLs, then writes the server certificate, CRL and issued.json.
func ImportCA(ctx context.Context, o Options, certPEMs []byte) (*InitResult, error) {
	if err := o.shareDir(); err != nil {
		return nil, err
	}
	unlock, err := lockDir(ctx, o.Dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var cfg caConfig
	if err := readJSON(o.path(CAConfigFile), &cfg); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w in %s: run `edgegw pki init --csr` first", ErrNoCA, o.Dir)
		}
		return nil, err
	}
	if exists(o.path(CACertFile)) {
		return nil, fmt.Errorf("%w in %s (%s is there); refusing to overwrite it", ErrExists, o.Dir, CACertFile)
	}
	certs, err := parseCerts(certPEMs)
	if err != nil {
		return nil, fmt.Errorf("reading CA certificate: %w", err)
	}
	if len(certs) == 0 {
		return nil, errors.New("reading CA certificate: no PEM CERTIFICATE block found")
	}
	cert := certs[0]
	key, err := openKey(ctx, &o, cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("opening CA key %s: %w", cfg.Key, err)
	}
	defer key.Close()
	res := &InitResult{}
	switch {
	case !samePublicKey(key.Public(), cert.PublicKey):
		return nil, fmt.Errorf("the first certificate (subject %q) is not for this CA's key %s: import the certificate issued for %s", cert.Subject, cfg.Key, o.path(CACSRFile))
	case !cert.BasicConstraintsValid || !cert.IsCA:
		return nil, fmt.Errorf("certificate %q is not a CA certificate (basicConstraints CA:TRUE missing): ask the root CA to sign it as a subordinate CA", cert.Subject)
	case cert.KeyUsage != 0 && cert.KeyUsage&(x509.KeyUsageCertSign|x509.KeyUsageCRLSign) != x509.KeyUsageCertSign|x509.KeyUsageCRLSign:
		return nil, fmt.Errorf("certificate %q lacks keyCertSign and cRLSign key usage", cert.Subject)
	case len(cert.SubjectKeyId) == 0:
		return nil, fmt.Errorf("certificate %q has no subject key identifier, which the CRL needs", cert.Subject)
	}
	if len(certs) > 1 {
		roots, inter := x509.NewCertPool(), x509.NewCertPool()
		for _, c := range certs[1:] {
			if bytes.Equal(c.RawIssuer, c.RawSubject) {
				roots.AddCert(c)
			} else {
				inter.AddCert(c)
			}
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}, CurrentTime: cert.NotBefore.Add(time.Second)}); err != nil {
			return nil, fmt.Errorf("the chain in the imported file does not verify: %w", err)
		}
	} else if !bytes.Equal(cert.RawIssuer, cert.RawSubject) {
		res.Warnings = append(res.Warnings, "the imported file holds only the CA certificate; append the root certificate to "+o.path(CACertFile)+" so clients and openssl can verify the chain")
	}
	now, clamped := o.now()
	res.ClockClamped = clamped
	var chain []byte
	for _, c := range certs {
		chain = append(chain, certPEM(c.Raw)...)
	}
	var t txn
	defer t.abort()
	files, err := finishCA(&t, &o, cfg, cert, chain, key, now, clamped)
	if err != nil {
		return nil, err
	}
	if err := t.commit(); err != nil {
		return nil, err
	}
	res.CACert, res.Files = cert, files
	o.log().Info("site CA imported", "dir", o.Dir, "subject", cert.Subject.String())
	return res, nil
}

// finishCA stages ca.crt, ca.json, the server key and certificate, the first CRL and issued.json.
func finishCA(t *txn, o *Options, cfg caConfig, caCert *x509.Certificate, chain []byte, key Key, now time.Time, clamped bool) ([]string, error) {
	c := &ca{cfg: cfg, cert: caCert, chain: chain, key: key, st: state{Version: 1}}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), randReader(o))
	if err != nil {
		return nil, err
	}
	srvPEM, err := marshalKeyPEM(srvKey)
	if err != nil {
		return nil, err
	}
	tmpl, err := c.leafTemplate(o, now, clamped, cfg.ServerDays, srvKey.Public())
	if err != nil {
		return nil, err
	}
	cn := serverTemplate(tmpl, cfg.Hosts)
	der, err := x509.CreateCertificate(randReader(o), tmpl, caCert, srvKey.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("creating server certificate: %w", err)
	}
	c.st.Certs = append(c.st.Certs, Entry{
		Serial: SerialHex(tmpl.SerialNumber), Thing: cn, Type: "server", Kind: KindServer, Source: "key",
		NotBefore: tmpl.NotBefore, NotAfter: tmpl.NotAfter, Status: StatusActive,
	})
	crl, err := c.signCRL(o, now)
	if err != nil {
		return nil, err
	}
	// Server chain: the server certificate, then the CA certificate (not the root).
	srvChain := append(certPEM(der), certPEM(caCert.Raw)...)
	out := []struct {
		name  string
		data  []byte
		mode  os.FileMode
		owner *Owner
	}{
		{ServerKeyFile, srvPEM, 0o600, o.Owner}, // the daemon's, when it runs as another user
		{ServerCertFile, srvChain, 0o644, nil},
		{CRLFile, crl, 0o644, nil},
		{IssuedFile, marshalJSON(c.st), 0o644, nil},
		{CAConfigFile, marshalJSON(cfg), 0o644, nil},
		{CACertFile, chain, 0o644, nil}, // last: its presence marks a finished CA
	}
	var files []string
	for _, f := range out {
		if err := t.putOwned(o.path(f.name), f.data, f.mode, f.owner); err != nil {
			return nil, err
		}
		files = append(files, o.path(f.name))
	}
	return files, nil
}

// leafTemplate is the common part of server and device certificates.
func (c *ca) leafTemplate(o *Options, now time.Time, clamped bool, days int, pub crypto.PublicKey) (*x509.Certificate, error) {
	serial, err := newSerial(*o, c.serials())
	if err != nil {
		return nil, err
	}
	ski, err := subjectKeyID(pub)
	if err != nil {
		return nil, err
	}
	notAfter := now.AddDate(0, 0, days)
	if notAfter.After(c.cert.NotAfter) {
		notAfter = c.cert.NotAfter // never outlive the CA
	}
	return &x509.Certificate{
		SerialNumber:          serial,
		NotBefore:             notBefore(now, clamped),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		SubjectKeyId:          ski,
		AuthorityKeyId:        c.cert.SubjectKeyId,
	}, nil
}

func (c *ca) serials() map[string]bool {
	m := make(map[string]bool, len(c.st.Certs))
	for _, e := range c.st.Certs {
		m[e.Serial] = true
	}
	return m
}

// notBefore backdates by five minutes for clock skew, unless the clock was clamped to the build
// date (then the build date itself is the earliest believable time).
func notBefore(now time.Time, clamped bool) time.Time {
	if clamped {
		return now
	}
	return now.Add(-5 * time.Minute)
}

// newSerial returns a positive random 128-bit serial not in used.
func newSerial(o Options, used map[string]bool) (*big.Int, error) {
	b := make([]byte, 16)
	for {
		if _, err := io.ReadFull(randReader(&o), b); err != nil {
			return nil, fmt.Errorf("reading random serial: %w", err)
		}
		s := new(big.Int).SetBytes(b)
		if s.Sign() > 0 && !used[SerialHex(s)] {
			return s, nil
		}
	}
}

func randReader(o *Options) io.Reader {
	if o.Rand != nil {
		return o.Rand
	}
	return rand.Reader
}

// serverTemplate makes tmpl a serverAuth certificate for hosts (DNS names and IP addresses,
// at least one) and returns its CN: the first DNS name, else the first address.
func serverTemplate(tmpl *x509.Certificate, hosts []string) (cn string) {
	cn = hosts[0]
	for _, h := range hosts {
		if net.ParseIP(h) == nil && h != "" {
			cn = h
			break
		}
	}
	tmpl.Subject = pkix.Name{CommonName: cn}
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, strings.ToLower(h))
		}
	}
	return cn
}
