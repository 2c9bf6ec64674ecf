package pki

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Activate makes the pending certificate serial (see IssueRequest.Pending) active and records
// up in the registry, the way `pki issue` and `pki sign` do; up.Name must be the certificate's
// thing. It refuses (ErrThingActive) when the thing already has another active certificate:
// enrolling by claim never takes over a thing that is in use (revoke its certificate first).
func Activate(ctx context.Context, o Options, serial string, up ThingUpdate) (*Entry, error) {
	c, release, err := lockAndOpenCA(ctx, &o)
	if err != nil {
		return nil, err
	}
	defer release()
	i := c.find(serial)
	if i < 0 {
		return nil, fmt.Errorf("activating %s: %w in %s", serial, ErrNotFound, o.path(IssuedFile))
	}
	e := &c.st.Certs[i]
	if e.Status != StatusPending {
		return nil, fmt.Errorf("activating %s (%s): %w (it is %s)", serial, e.Thing, ErrNotPending, e.Status)
	}
	if up.Name != e.Thing {
		return nil, fmt.Errorf("activating %s: the certificate is for %q, not %q", serial, e.Thing, up.Name)
	}
	for _, other := range c.st.Certs {
		if other.Thing == e.Thing && other.Kind != KindServer && other.Status == StatusActive {
			return nil, fmt.Errorf("%w: %q has serial %s; revoke it before enrolling the thing again", ErrThingActive, e.Thing, other.Serial)
		}
	}
	e.Status = StatusActive
	if up.Type != "" {
		e.Type = up.Type
	}
	var t txn
	defer t.abort()
	if err := t.put(o.path(IssuedFile), marshalJSON(c.st), 0o644); err != nil {
		return nil, err
	}
	if o.Devices != "" {
		old, err := readRegistry(o.Devices)
		if err != nil {
			return nil, fmt.Errorf("reading registry: %w", err)
		}
		up.Attributes = maps.Clone(up.Attributes)
		reg, err := updateRegistry(o.Devices, old, []ThingUpdate{up})
		if err != nil {
			return nil, fmt.Errorf("updating registry: %w", err)
		}
		if err := t.put(o.Devices, reg, 0o644); err != nil {
			return nil, err
		}
	}
	if err := t.commit(); err != nil {
		return nil, err
	}
	o.log().Info("certificate activated", "device", e.Thing, "serial", e.Serial)
	out := *e
	return &out, nil
}

// RevokeSerials revokes every listed certificate that is active or pending with one CRL
// re-signing and one rewrite of issued.json (a sweep after 2,000 renewals is one commit).
// Serials already revoked are skipped; an unknown serial is ErrNotFound and nothing is written.
// It returns ErrAlreadyRevoked when there was nothing left to revoke.
func RevokeSerials(ctx context.Context, o Options, serials []string, reason string) (*RevokeResult, error) {
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
	idx := make([]int, 0, len(serials))
	for _, s := range serials {
		i := c.find(s)
		if i < 0 {
			return nil, fmt.Errorf("revoking %s: %w in %s", s, ErrNotFound, o.path(IssuedFile))
		}
		idx = append(idx, i)
	}
	return c.revokeEntries(&o, idx, now, clamped, reason, func() error {
		return fmt.Errorf("%w: none of %d serials is active", ErrAlreadyRevoked, len(serials))
	})
}

// find returns the index of the entry with serial (hex, any case, colons allowed), or -1.
func (c *ca) find(serial string) int {
	s, ok := new(big.Int).SetString(strings.ToLower(strings.ReplaceAll(serial, ":", "")), 16)
	if !ok {
		return -1
	}
	for i, e := range c.st.Certs {
		if es, ok := new(big.Int).SetString(e.Serial, 16); ok && es.Cmp(s) == 0 {
			return i
		}
	}
	return -1
}

// ServerRequest asks for the LAN listener's server certificate for a key that lives elsewhere
// (file, TPM, PKCS#11): CSR is made with that key, so only its public half reaches the CA.
type ServerRequest struct {
	CSR   []byte   // PEM or DER; its signature must verify (proof of possession)
	Hosts []string // DNS names and IP addresses; the first DNS name (else address) is the CN
	Days  int      // default: the CA's server_days (DefaultServerDays)
	// Out is where the chain (server certificate, then ca.crt's first certificate) is written
	// atomically; "" means DIR/server.crt.
	Out string
	// Renews, instead of CSR, is a server certificate this CA issued: its public key is signed
	// again. For a key the caller cannot use now (a TPM whose only connection the daemon
	// holds); the possession was proved when Renews was issued.
	Renews *x509.Certificate
}

// ErrNoHosts is returned by SignServer without any host name or address.
var ErrNoHosts = errors.New("no host names or addresses for the server certificate")

// SignServer signs a serverAuth certificate for the CSR's key and writes the chain to r.Out
// (temporary file, fsync, rename: the daemon, which reloads a changed server certificate for the
// same key live, never reads half a file). Earlier active server entries for the same CN are
// marked superseded in issued.json (not put on the CRL: they stay valid until they expire, so a
// daemon that has not reloaded yet keeps working).
func SignServer(ctx context.Context, o Options, r ServerRequest) (*Bundle, error) {
	if len(r.Hosts) == 0 {
		return nil, ErrNoHosts
	}
	var pub any
	if r.CSR == nil && r.Renews != nil {
		pub = r.Renews.PublicKey
	} else {
		csr, err := ParseCSR(r.CSR)
		if err != nil {
			return nil, err
		}
		pub = csr.PublicKey
	}
	c, release, err := lockAndOpenCA(ctx, &o)
	if err != nil {
		return nil, err
	}
	defer release()
	if r.CSR == nil && r.Renews != nil {
		if err := renewable(c.cert, r.Renews); err != nil {
			return nil, err
		}
	}
	now, clamped := o.now()
	days := r.Days
	if days <= 0 {
		days = c.cfg.ServerDays
	}
	if days <= 0 {
		days = DefaultServerDays
	}
	tmpl, err := c.leafTemplate(&o, now, clamped, days, pub)
	if err != nil {
		return nil, err
	}
	cn := serverTemplate(tmpl, r.Hosts)
	der, err := x509.CreateCertificate(randReader(&o), tmpl, c.cert, pub, c.key)
	if err != nil {
		return nil, fmt.Errorf("signing server certificate for %q: %w", cn, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	for i := range c.st.Certs {
		e := &c.st.Certs[i]
		if e.Kind == KindServer && e.Thing == cn && e.Status == StatusActive {
			e.Status, e.Reason = StatusSuperseded, "superseded"
		}
	}
	b := &Bundle{Thing: cn, Serial: SerialHex(tmpl.SerialNumber), Cert: cert, CertPEM: certPEM(der), CAPEM: c.chain}
	c.st.Certs = append(c.st.Certs, Entry{
		Serial: b.Serial, Thing: cn, Type: "server", Kind: KindServer, Source: "csr",
		NotBefore: tmpl.NotBefore, NotAfter: tmpl.NotAfter, Status: StatusActive,
	})
	out := r.Out
	if out == "" {
		out = o.path(ServerCertFile)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return nil, fmt.Errorf("creating directory for %s: %w", out, err)
	}
	var t txn
	defer t.abort()
	if err := t.put(o.path(IssuedFile), marshalJSON(c.st), 0o644); err != nil {
		return nil, err
	}
	if err := t.put(out, append(certPEM(der), certPEM(c.cert.Raw)...), 0o644); err != nil {
		return nil, err
	}
	if err := t.commit(); err != nil {
		return nil, err
	}
	b.CertFile = out
	o.log().Info("server certificate issued", "cn", cn, "serial", b.Serial, "not_after", cert.NotAfter, "file", out)
	return b, nil
}

// renewable checks that old, whose key ServerRequest.Renews signs again, is a serverAuth
// certificate signed by ca.
func renewable(ca, old *x509.Certificate) error {
	if err := old.CheckSignatureFrom(ca); err != nil {
		return fmt.Errorf("renewing server certificate serial %s: not issued by this CA (%v); make a CSR with the key instead", SerialHex(old.SerialNumber), err)
	}
	if !slices.Contains(old.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		return fmt.Errorf("renewing certificate serial %s: not a server certificate (no serverAuth)", SerialHex(old.SerialNumber))
	}
	return nil
}
