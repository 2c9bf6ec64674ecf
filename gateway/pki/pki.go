package pki

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/edgegw/edgegw/gateway/authz"
	"github.com/edgegw/edgegw/hw"
)

// File names inside the PKI directory.
const (
	CACertFile     = "ca.crt"
	CAKeyFile      = "ca.key"
	CAConfigFile   = "ca.json"
	CACSRFile      = "ca.csr"
	ServerCertFile = "server.crt"
	ServerKeyFile  = "server.key"
	CRLFile        = "crl.pem"
	IssuedFile     = "issued.json"
)

// Defaults (days).
const (
	DefaultCADays     = 3650
	DefaultDeviceDays = 365
	DefaultServerDays = 825
	DefaultCRLDays    = 30
)

// Sentinel errors callers branch on.
var (
	ErrExists         = errors.New("a CA already exists")
	ErrNoCA           = errors.New("no CA")
	ErrThingActive    = errors.New("thing already has an active certificate")
	ErrBadCSR         = errors.New("CSR refused")
	ErrNotFound       = errors.New("no such certificate")
	ErrAlreadyRevoked = errors.New("already revoked")
	ErrBadThing       = errors.New("invalid thing name")
	ErrNotPending     = errors.New("certificate is not pending activation")
	ErrNotRenewable   = errors.New("certificate cannot be renewed")
)

// Key is a private key wherever it lives; hw.Key satisfies it.
type Key interface {
	crypto.Signer
	Close() error
}

// KeyOpener opens a key by URI (hw.Open). It is used for every URI that is not "file:".
type KeyOpener func(ctx context.Context, uri string) (Key, error)

// Options say where the PKI lives and what clock and key backend it uses. The zero value of
// every field but Dir is usable.
type Options struct {
	Dir string // the PKI directory
	// Devices is the registry (devices.yaml) that issue and sign add things to; "" leaves
	// no registry touched.
	Devices string
	// Now is the wall clock (default time.Now). NotBefore is the floor for "now": a Pi has no
	// RTC and may boot in 1970; when Now() is before NotBefore, NotBefore is used instead and
	// the result says so (ClockClamped).
	Now       func() time.Time
	NotBefore time.Time
	OpenKey   KeyOpener // opens key URIs; nil means hw.Open
	// Owner hands DIR and server.key to the daemon's user (see Owner, DaemonOwner); nil
	// leaves every file with the caller, DIR 0700.
	Owner  *Owner
	Logger *slog.Logger
	Rand   io.Reader // default crypto/rand
}

func (o *Options) now() (t time.Time, clamped bool) {
	n := time.Now
	if o.Now != nil {
		n = o.Now
	}
	t = n().UTC().Truncate(time.Second)
	if !o.NotBefore.IsZero() && t.Before(o.NotBefore) {
		return o.NotBefore.UTC().Truncate(time.Second), true
	}
	return t, false
}

func (o *Options) log() *slog.Logger {
	if o.Logger != nil {
		return o.Logger.With("component", "pki")
	}
	return slog.New(slog.DiscardHandler)
}

func (o *Options) path(name string) string { return filepath.Join(o.Dir, name) }

// Status of an issued certificate.
type Status string

const (
	StatusActive     Status = "active"
	StatusRevoked    Status = "revoked"
	StatusSuperseded Status = "superseded"
	// StatusPending is a certificate signed for a device enrolling by claim that has not been
	// activated yet (AWS IoT's PENDING_ACTIVATION): no registry entry until Activate.
	StatusPending Status = "pending"
)

// Entry is one certificate in issued.json.
type Entry struct {
	Serial    string     `json:"serial"` // lower-case hex, no separators
	Thing     string     `json:"thing"`
	Type      string     `json:"type,omitempty"`
	Kind      string     `json:"kind"`             // "device" or "server"
	Source    string     `json:"source,omitempty"` // "key" (issue) or "csr" (sign)
	NotBefore time.Time  `json:"not_before"`
	NotAfter  time.Time  `json:"not_after"`
	Status    Status     `json:"status"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	Reason    string     `json:"reason,omitempty"`
	// Renews is the serial of the certificate this one renews while both are active (a
	// renewal over MQTT); the old one is revoked as superseded once this one connects.
	Renews string `json:"renews,omitempty"`
}

// Kinds of entries.
const (
	KindDevice = "device"
	KindServer = "server"
	// KindClaim is a claim certificate (`edgegw pki claim`): it may only enrol devices. Its
	// SAN URI is urn:edgegw:claim:<name> (ClaimURIPrefix), so the broker can tell it apart.
	KindClaim = "claim"
)

// ClaimURIPrefix starts the SAN URI of every claim certificate; IsClaimCert tests for it.
const ClaimURIPrefix = "urn:edgegw:claim:"

type state struct {
	Version   int     `json:"version"`
	CRLNumber int64   `json:"crl_number"`
	Certs     []Entry `json:"certs"`
}

type caConfig struct {
	Version    int      `json:"version"`
	Key        string   `json:"key"` // key URI; "file:ca.key" is relative to DIR
	CN         string   `json:"cn,omitempty"`
	Hosts      []string `json:"hosts,omitempty"`
	ServerDays int      `json:"server_days,omitempty"`
	CRLDays    int      `json:"crl_days,omitempty"`
}

// ValidThing reports whether name can be a thing name in the registry
// (authz.ValidThingName, the one rule).
func ValidThing(name string) error {
	if !authz.ValidThingName(name) {
		return fmt.Errorf("%w %q: use 1-128 characters from a-z A-Z 0-9 : _ -", ErrBadThing, name)
	}
	return nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func marshalJSON(v any) []byte {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		panic(err) // plain structs only
	}
	return append(b, '\n')
}

// ca is an opened CA: certificate (chain) and signer. Close releases the key.
type ca struct {
	cfg   caConfig
	cert  *x509.Certificate
	chain []byte // ca.crt as is (CA cert first, then its issuers)
	key   Key
	st    state
}

func (c *ca) Close() error {
	if c.key != nil {
		return c.key.Close()
	}
	return nil
}

// lockAndOpenCA takes the PKI directory's lock and opens the CA under it,
// the start of every command that changes issued state. release closes the
// CA, then drops the lock.
func lockAndOpenCA(ctx context.Context, o *Options) (c *ca, release func(), err error) {
	unlock, err := lockDir(ctx, o.Dir)
	if err != nil {
		return nil, nil, err
	}
	if c, err = openCA(ctx, o); err != nil {
		unlock()
		return nil, nil, err
	}
	return c, func() { c.Close(); unlock() }, nil
}

// openCA loads ca.json, ca.crt, the key and issued.json. The lock must be held.
func openCA(ctx context.Context, o *Options) (*ca, error) {
	c := &ca{}
	if err := readJSON(o.path(CAConfigFile), &c.cfg); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w in %s: run `edgegw pki init --dir %s` first", ErrNoCA, o.Dir, o.Dir)
		}
		return nil, fmt.Errorf("reading CA settings: %w", err)
	}
	b, err := os.ReadFile(o.path(CACertFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && exists(o.path(CACSRFile)) {
			return nil, fmt.Errorf("%w in %s yet: have %s signed by your root CA, then run `edgegw pki import-ca CERT`", ErrNoCA, o.Dir, o.path(CACSRFile))
		}
		return nil, fmt.Errorf("reading CA certificate: %w", err)
	}
	certs, err := parseCerts(b)
	if err != nil || len(certs) == 0 {
		return nil, fmt.Errorf("reading CA certificate %s: no certificate found (%v)", o.path(CACertFile), err)
	}
	c.cert, c.chain = certs[0], b
	if err := readJSON(o.path(IssuedFile), &c.st); err != nil {
		return nil, fmt.Errorf("reading registry of issued certificates: %w", err)
	}
	c.key, err = openKey(ctx, o, c.cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("opening CA key: %w", err)
	}
	if !samePublicKey(c.key.Public(), c.cert.PublicKey) {
		_ = c.key.Close()
		return nil, fmt.Errorf("CA key %s does not match %s", c.cfg.Key, o.path(CACertFile))
	}
	return c, nil
}

// resolveKeyURI makes a "file:" URI (or bare path) relative to DIR absolute.
func resolveKeyURI(dir, uri string) (path string, isFile bool) {
	p, ok := strings.CutPrefix(uri, "file:")
	if !ok && strings.Contains(uri, ":") {
		return "", false
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	return p, true
}

// openKey opens the CA key. File keys (relative to DIR) and every other URI go through hw.Open
// (which also refuses a key file readable by group or others) unless Options.OpenKey is set.
func openKey(ctx context.Context, o *Options, uri string) (Key, error) {
	if p, ok := resolveKeyURI(o.Dir, uri); ok {
		uri = "file:" + p
	}
	if o.OpenKey != nil {
		return o.OpenKey(ctx, uri)
	}
	k, err := hw.Open(ctx, uri)
	if err != nil {
		return nil, err
	}
	return k, nil
}

type fileKey struct{ crypto.Signer }

func (fileKey) Close() error { return nil }

func parseKeyPEM(b []byte) (crypto.Signer, error) {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, errors.New("no private key PEM block")
		}
		var k any
		var err error
		switch blk.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(blk.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported key type %T", k)
		}
		return s, nil
	}
}

func marshalKeyPEM(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func parseCerts(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return out, nil
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
}

func samePublicKey(a, b crypto.PublicKey) bool {
	type eq interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(eq)
	return ok && e.Equal(b)
}

// subjectKeyID is a stable key identifier: SHA-1 over the DER SubjectPublicKeyInfo (a variant
// of RFC 5280 4.2.1.2; the value only has to be unique per key).
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	h := sha1.Sum(der)
	return h[:], nil
}

// keyDescription names a public key for messages: "ECDSA P-256", "RSA 2048".
func keyDescription(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	case ed25519.PublicKey:
		return "Ed25519"
	default:
		return fmt.Sprintf("%T", pub)
	}
}

// SerialHex formats a serial the way issued.json and `pki list` show it.
func SerialHex(s interface{ Text(int) string }) string { return s.Text(16) }
