package listen

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/edgegw/edgegw/gateway/clock"
	"github.com/edgegw/edgegw/hw"
)

// TLSFiles is one listener's TLS material, paths already resolved.
type TLSFiles struct {
	CA         string // PEM bundle of client CAs (trust anchors)
	Cert       string // server certificate chain (PEM)
	CRL        string // optional PEM (or DER) CRL(s); "" = no revocation list
	MinVersion uint16 // tls.VersionTLS12 or tls.VersionTLS13
	// RequireClientCert is true unless client_auth: none (allowed only on loopback).
	RequireClientCert bool
}

// saneNow is the time certificate validity is judged at: the clock guard
// (gateway/clock) returns the build date while the system clock is before it (a Pi
// without a real-time clock boots in 1970 until NTP answers).
func saneNow() time.Time { return clock.Process().Now() }

// tls12Suites are the TLS 1.2 cipher suites offered: forward secret ECDHE with
// AEAD ciphers only. TLS 1.3 suites are not configurable in Go and are all AEAD.
var tls12Suites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// ErrRevoked is returned by the handshake verifier for a revoked certificate.
var ErrRevoked = errors.New("certificate revoked")

// TrustState is an immutable snapshot of the trust anchors and revocation list.
type TrustState struct {
	pool    *x509.CertPool
	revoked map[string]struct{} // revocationKey(issuer, serial)
	crls    int                 // number of CRLs loaded
	tlsConf *tls.Config
}

func revocationKey(rawIssuer []byte, serial fmt.Stringer) string {
	return string(rawIssuer) + "\x00" + serial.String()
}

// isRevoked reports whether any certificate of the chain is on a loaded CRL.
func (st *TrustState) isRevoked(chain []*x509.Certificate) bool {
	if len(st.revoked) == 0 {
		return false
	}
	for _, c := range chain {
		if _, ok := st.revoked[revocationKey(c.RawIssuer, c.SerialNumber)]; ok {
			return true
		}
	}
	return false
}

// Trust holds the reloadable trust of one TLS listener. The server key is
// fixed for the life of the process (it may live in a TPM); the server
// certificate for it, the client CA bundle and the CRL are swapped
// atomically by Reload, so every handshake after Reload returns sees the new
// state and none sees half of it. A renewed server certificate for the same
// key is thus picked up without a restart; one for another key is refused
// and the running one stays.
type Trust struct {
	files TLSFiles
	key   crypto.Signer
	cur   atomic.Pointer[TrustState]
}

// NewTrust loads the listener's certificate (signing with key), the CA bundle
// and the CRL. key is typically an hw.Key (file, TPM or PKCS#11).
func NewTrust(files TLSFiles, key crypto.Signer) (*Trust, error) {
	t := &Trust{files: files, key: key}
	st, err := t.build()
	if err != nil {
		return nil, err
	}
	t.cur.Store(st)
	return t, nil
}

// serverCert reads the listener's certificate chain and pairs it with the
// key.
func (t *Trust) serverCert() (tls.Certificate, error) {
	chain, err := ReadCertChain(t.files.Cert)
	if err != nil {
		return tls.Certificate{}, err
	}
	if !publicKeysEqual(chain[0].PublicKey, t.key.Public()) {
		return tls.Certificate{}, fmt.Errorf("server certificate %q: does not match the configured key", t.files.Cert)
	}
	cert := tls.Certificate{PrivateKey: t.key, Leaf: chain[0]}
	for _, c := range chain {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	return cert, nil
}

// Reload rebuilds the server certificate, the CA pool and the CRL from disk
// and swaps them in. On error the old state stays in force.
func (t *Trust) Reload() error {
	st, err := t.build()
	if err != nil {
		return err
	}
	t.cur.Store(st)
	return nil
}

// Prepare builds a new state without installing it; Commit installs it. Used
// by the reload path so that trust, registry and policies swap together.
func (t *Trust) Prepare() (*TrustState, error) { return t.build() }

// Commit installs a state Prepare built.
func (t *Trust) Commit(st *TrustState) { t.cur.Store(st) }

// TLSConfig returns the server config for new handshakes (current trust).
func (t *Trust) TLSConfig() *tls.Config { return t.cur.Load().tlsConf }

// Revoked reports whether the verified chain contains a certificate on the
// current CRL.
func (t *Trust) Revoked(chain []*x509.Certificate) bool { return t.cur.Load().isRevoked(chain) }

// Verify reports whether a chain verified at handshake time is still trusted
// by the current state: it chains to a CA in the current bundle and is not
// revoked. Used to re-evaluate connected clients after a reload.
func (t *Trust) Verify(chain []*x509.Certificate) error {
	st := t.cur.Load()
	if len(chain) == 0 {
		return errors.New("no certificate")
	}
	if st.isRevoked(chain) {
		return ErrRevoked
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{
		Roots: st.pool, Intermediates: inter, CurrentTime: saneNow(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return fmt.Errorf("no longer trusted: %w", err)
	}
	return nil
}

func (t *Trust) build() (*TrustState, error) {
	cert, err := t.serverCert()
	if err != nil {
		return nil, err
	}
	cas, err := ReadCertChain(t.files.CA)
	if err != nil {
		return nil, err
	}
	st := &TrustState{pool: x509.NewCertPool(), revoked: map[string]struct{}{}}
	for _, c := range cas {
		st.pool.AddCert(c)
	}
	if t.files.CRL != "" {
		if err := st.loadCRL(t.files.CRL, cas); err != nil {
			return nil, err
		}
	}
	minV := t.files.MinVersion
	if minV < tls.VersionTLS12 {
		minV = tls.VersionTLS12
	}
	cfg := &tls.Config{
		MinVersion:   minV,
		Certificates: []tls.Certificate{cert},
		CipherSuites: tls12Suites,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    st.pool,
		Time:         saneNow,
		VerifyConnection: func(cs tls.ConnectionState) error {
			for _, chain := range cs.VerifiedChains {
				if st.isRevoked(chain) {
					return &RevokedError{Cert: cs.PeerCertificates[0]} // refusals.go
				}
			}
			return nil
		},
	}
	if !t.files.RequireClientCert {
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	st.tlsConf = cfg
	return st, nil
}

// loadCRL reads every CRL in path (hw.ReadCRLs: PEM blocks "X509 CRL", or
// one DER CRL), checks each is signed by a CA of the bundle and records its
// serials.
func (st *TrustState) loadCRL(path string, cas []*x509.Certificate) error {
	rls, err := hw.ReadCRLs(path)
	if err != nil {
		return err
	}
	for i, rl := range rls {
		var signer *x509.Certificate
		for _, ca := range cas {
			if bytes.Equal(ca.RawSubject, rl.RawIssuer) && rl.CheckSignatureFrom(ca) == nil {
				signer = ca
				break
			}
		}
		if signer == nil {
			return fmt.Errorf("CRL %q (#%d): not signed by any CA in the trust bundle", path, i+1)
		}
		for _, e := range rl.RevokedCertificateEntries {
			st.revoked[revocationKey(rl.RawIssuer, e.SerialNumber)] = struct{}{}
		}
		st.crls++
	}
	return nil
}

// ReadCertChain reads the CERTIFICATE blocks of a PEM file, leaf first.
func ReadCertChain(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading certificates: %w", err)
	}
	out, err := hw.ParseCertChain(data)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", path, err)
	}
	return out, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	ea, ok := a.(equaler)
	return ok && ea.Equal(b)
}
