package hw

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Key is a private key wherever it lives. Close releases the TPM connection or PKCS#11 session;
// it never destroys the key.
type Key interface {
	crypto.Signer
	Close() error
}

// Sentinel errors; every error from this package wraps one of these or a backend error inside a
// *URIError naming the (PIN-free) URI.
var (
	// ErrNoDevice: the TPM device, simulator or PKCS#11 module cannot be reached.
	ErrNoDevice = errors.New("device not available")
	// ErrNotFound: no key (file, persistent handle, blob, token object) at that place.
	ErrNotFound = errors.New("key not found")
	// ErrExists: Create refused to overwrite an existing key.
	ErrExists = errors.New("key already exists")
	// ErrUnsupported: the scheme, attribute, key type or build cannot do this.
	ErrUnsupported = errors.New("unsupported")
	// ErrBadURI: the URI does not follow the grammar in ParseURI.
	ErrBadURI = errors.New("malformed key URI")
	// ErrPermissions: a key or secret file is readable by group or others.
	ErrPermissions = errors.New("insecure file permissions")
	// ErrWrongTPM: a sealed secret or key blob was made by another TPM (or the TPM was cleared).
	ErrWrongTPM = errors.New("sealed by another TPM or the TPM was cleared")
	// ErrPIN: the PKCS#11 PIN is missing, unreadable or wrong.
	ErrPIN = errors.New("PKCS#11 PIN problem")
	// ErrTimeout: the TPM did not answer a command (or stayed busy) within its deadline: it is
	// hung or stopped (TPMTimeout).
	ErrTimeout = errors.New("no answer from the TPM")
)

// URIError names the URI an operation failed on. URI never contains a PIN.
type URIError struct {
	Op  string // "opening key", "creating key", "reading secret", ...
	URI string // redacted
	Err error
}

func (e *URIError) Error() string { return fmt.Sprintf("%s %q: %v", e.Op, e.URI, e.Err) }
func (e *URIError) Unwrap() error { return e.Err }

func uriErr(op, uri string, err error) error {
	if err == nil {
		return nil
	}
	return &URIError{Op: op, URI: Redact(uri), Err: err}
}

// Redact returns uri with any pin-value attribute value removed, safe for logs and errors.
func Redact(uri string) string {
	lower := strings.ToLower(uri)
	i := strings.Index(lower, "pin-value=")
	for i >= 0 {
		start := i + len("pin-value=")
		end := strings.IndexAny(uri[start:], "&;")
		if end < 0 {
			end = len(uri)
		} else {
			end += start
		}
		uri = uri[:start] + "REDACTED" + uri[end:]
		lower = strings.ToLower(uri)
		next := strings.Index(lower[start+len("REDACTED"):], "pin-value=")
		if next < 0 {
			break
		}
		i = start + len("REDACTED") + next
	}
	return uri
}

// KeyType is the algorithm of a key made by Create.
type KeyType int

const (
	// P256 is ECDSA on NIST P-256, the default and the best choice for TPMs.
	P256 KeyType = iota
	// RSA2048 is RSA with a 2048-bit modulus. TLS 1.3 needs RSA-PSS; FIPS-mode TPMs fix the PSS
	// salt length in a way some peers reject, so prefer P256 with a TPM.
	RSA2048
)

func (t KeyType) String() string {
	switch t {
	case P256:
		return "p256"
	case RSA2048:
		return "rsa2048"
	}
	return fmt.Sprintf("KeyType(%d)", int(t))
}

// ParseKeyType accepts "p256" (also "ecdsa", "ec", "") and "rsa2048" (also "rsa").
func ParseKeyType(s string) (KeyType, error) {
	switch strings.ToLower(s) {
	case "p256", "p-256", "ec", "ecdsa", "":
		return P256, nil
	case "rsa2048", "rsa-2048", "rsa":
		return RSA2048, nil
	}
	return 0, fmt.Errorf("key type %q: %w (use p256 or rsa2048)", s, ErrUnsupported)
}

// Option adjusts Open, Create, Info and Auto.
type Option func(*options)

type options struct {
	stateDir string
	autoTPM  string // "device=/dev/tpmrm0" or "tcp=..."; what auto probes
}

// WithStateDir names the directory where "auto" keeps its key (file or TPM blob).
func WithStateDir(dir string) Option { return func(o *options) { o.stateDir = dir } }

// WithAutoTPM overrides the TPM that "auto" probes, as tpm: attributes such as
// "device=/dev/tpmrm0" (the default) or "tcp=127.0.0.1:2321" (labs and tests).
func WithAutoTPM(attrs string) Option { return func(o *options) { o.autoTPM = attrs } }

func buildOptions(opts []Option) options {
	o := options{autoTPM: "device=" + defaultTPMDevice}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// Open opens an existing key. "auto" resolves as Auto does and creates a P-256 key on first use.
func Open(ctx context.Context, uri string, opts ...Option) (Key, error) {
	k, err := open(ctx, uri, buildOptions(opts))
	return k, uriErr("opening key", uri, err)
}

func open(ctx context.Context, uri string, o options) (Key, error) {
	if uri == "auto" {
		c, err := auto(ctx, o)
		if err != nil {
			return nil, err
		}
		if !c.Exists {
			return create(ctx, c.URI, P256, o)
		}
		uri = c.URI
	}
	u, err := ParseURI(uri)
	if err != nil {
		return nil, err
	}
	switch u := u.(type) {
	case *FileURI:
		return openFile(u.Path)
	case *TPMURI:
		return openTPM(ctx, u)
	case *PKCS11URI:
		return openPKCS11(ctx, u)
	}
	return nil, fmt.Errorf("%w: scheme", ErrUnsupported)
}

// Create makes a new key of type kt at uri and returns it opened. It refuses (ErrExists) to
// replace anything already there: file, persistent handle, blob or token object.
func Create(ctx context.Context, uri string, kt KeyType, opts ...Option) (Key, error) {
	o := buildOptions(opts)
	if uri == "auto" {
		c, err := auto(ctx, o)
		if err != nil {
			return nil, uriErr("creating key", uri, err)
		}
		if c.Exists {
			return nil, uriErr("creating key", uri, fmt.Errorf("%w at %s", ErrExists, c.URI))
		}
		uri = c.URI
	}
	k, err := create(ctx, uri, kt, o)
	return k, uriErr("creating key", uri, err)
}

func create(ctx context.Context, uri string, kt KeyType, _ options) (Key, error) {
	if kt != P256 && kt != RSA2048 {
		return nil, fmt.Errorf("key type %v: %w", kt, ErrUnsupported)
	}
	u, err := ParseURI(uri)
	if err != nil {
		return nil, err
	}
	switch u := u.(type) {
	case *FileURI:
		return createFile(u.Path, kt)
	case *TPMURI:
		return createTPM(ctx, u, kt)
	case *PKCS11URI:
		return createPKCS11(ctx, u, kt)
	}
	return nil, fmt.Errorf("%w: scheme", ErrUnsupported)
}

// KeyInfo describes a key without revealing it.
type KeyInfo struct {
	URI          string // redacted; for "auto", the URI it resolved to
	Type         string // "ECDSA P-256", "RSA-2048", "Ed25519"
	Location     string // human description of where the key lives
	PublicSHA256 string // hex SHA-256 of the DER SubjectPublicKeyInfo (openssl pkey -pubin -outform DER | sha256sum)
}

// Info opens the key at uri and describes it.
func Info(ctx context.Context, uri string, opts ...Option) (KeyInfo, error) {
	o := buildOptions(opts)
	resolved := uri
	if uri == "auto" {
		c, err := auto(ctx, o)
		if err != nil {
			return KeyInfo{}, uriErr("describing key", uri, err)
		}
		if !c.Exists {
			return KeyInfo{}, uriErr("describing key", uri, fmt.Errorf("%w: auto would use %s (%s); run `edgegw key create --key auto`", ErrNotFound, c.URI, c.Reason))
		}
		resolved = c.URI
	}
	k, err := open(ctx, resolved, o)
	if err != nil {
		return KeyInfo{}, uriErr("describing key", uri, err)
	}
	defer k.Close()
	info := KeyInfo{URI: Redact(resolved), Location: describe(resolved)}
	info.Type = publicType(k.Public())
	info.PublicSHA256, err = PublicKeySHA256(k.Public())
	if err != nil {
		return KeyInfo{}, uriErr("describing key", uri, err)
	}
	return info, nil
}

// PublicKeySHA256 is the hex SHA-256 of the DER SubjectPublicKeyInfo of pub.
func PublicKeySHA256(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("encoding public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

func publicType(pub crypto.PublicKey) string {
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + p.Curve.Params().Name
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d", p.N.BitLen())
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", pub)
}

func describe(uri string) string {
	u, err := ParseURI(uri)
	if err != nil {
		return uri
	}
	switch u := u.(type) {
	case *FileURI:
		return "file " + u.Path
	case *TPMURI:
		where := "TPM " + u.Device
		if u.TCP != "" {
			where = "TPM simulator at " + u.TCP
		}
		if u.Blob != "" {
			return where + ", key blob " + u.Blob
		}
		return fmt.Sprintf("%s, persistent handle 0x%08x", where, u.Handle)
	case *PKCS11URI:
		s := "PKCS#11 module " + u.ModulePath
		switch {
		case u.Token != "":
			s += fmt.Sprintf(", token %q", u.Token)
		case u.Serial != "":
			s += fmt.Sprintf(", token serial %q", u.Serial)
		case u.SlotID != nil:
			s += fmt.Sprintf(", slot %d", *u.SlotID)
		}
		if u.Object != "" {
			s += fmt.Sprintf(", object %q", u.Object)
		}
		if len(u.ID) > 0 {
			s += fmt.Sprintf(", id %x", u.ID)
		}
		return s
	}
	return uri
}
