package renew

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/edgegw/edgegw/hw"
)

// stored is identity.json: the renewed identity and the key it replaced
// while that one is not yet destroyed.
type stored struct {
	Cert     string    `json:"cert"`               // the certificate chain (PEM)
	Key      string    `json:"key"`                // its key URI
	Previous string    `json:"previous,omitempty"` // the old key URI, until destroyed
	Renewed  time.Time `json:"renewed"`
}

// Dir is where bridge's renewed identities are kept (config.BridgeRenewDir,
// which edgegw check asks).
func Dir(stateDir, bridge string) string { return filepath.Join(stateDir, "renew", bridge) }

func statePath(dir string) string { return filepath.Join(dir, "identity.json") }

func loadStored(dir string) (*stored, error) {
	data, err := os.ReadFile(statePath(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s stored
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("%s: %w (move it away to use tls.cert and tls.key)", statePath(dir), err)
	}
	return &s, nil
}

func (s *stored) save(dir string) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return hw.WriteFileAtomic(statePath(dir), append(data, '\n'), 0o600)
}

// Identity names a certificate and its key.
type Identity struct {
	Cert string // PEM chain, leaf first
	Key  string // key URI
	// Renewed is set when the identity is a renewed one (identity.json).
	Renewed bool
}

// Current returns the identity bridge uses: the renewed one in
// Dir(stateDir, bridge) when it is newer than the configured certificate
// (cert, key), else the configured one. A renewed identity whose files are
// gone is an error naming them (identity.json is the record of which key
// is in use: the configured key may already be destroyed).
func Current(stateDir, bridge, cert, key string) (Identity, error) {
	cfg := Identity{Cert: cert, Key: key}
	s, err := loadStored(Dir(stateDir, bridge))
	if err != nil || s == nil {
		return cfg, err
	}
	rl, err := readLeaf(s.Cert)
	if err != nil {
		return cfg, fmt.Errorf("the renewed identity in %s: %w (its key is %s)", statePath(Dir(stateDir, bridge)), err, hw.Redact(s.Key))
	}
	if cl, err := readLeaf(cert); err == nil && cl.NotBefore.After(rl.NotBefore) {
		return cfg, nil // the configured certificate is newer: installed by hand
	}
	return Identity{Cert: s.Cert, Key: s.Key, Renewed: true}, nil
}

func readLeaf(path string) (*x509.Certificate, error) {
	chain, err := readChain(path)
	if err != nil {
		return nil, err
	}
	return chain[0], nil
}

func readChain(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	chain, err := hw.ParseCertChain(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return chain, nil
}

func chainPEM(chain []*x509.Certificate) []byte {
	var out []byte
	for _, c := range chain {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}
