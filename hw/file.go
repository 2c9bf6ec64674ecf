package hw

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

type fileKey struct{ crypto.Signer }

func (fileKey) Close() error { return nil }

// readPrivateFile reads a file that must not be readable by group or others.
func readPrivateFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s does not exist", ErrNotFound, path)
		}
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o, readable by group or others: run `chmod 600 %s`", ErrPermissions, path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, 1<<20+1))
	if err != nil {
		return nil, err
	}
	if len(data) > 1<<20 {
		return nil, fmt.Errorf("%s is larger than 1 MiB", path)
	}
	return data, nil
}

func openFile(path string) (Key, error) {
	data, err := readPrivateFile(path)
	if err != nil {
		return nil, err
	}
	s, err := parsePrivatePEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return fileKey{s}, nil
}

// parsePrivatePEM accepts PKCS#8 ("PRIVATE KEY"), SEC1 ("EC PRIVATE KEY") and PKCS#1
// ("RSA PRIVATE KEY"); other blocks such as "EC PARAMETERS" are skipped.
func parsePrivatePEM(data []byte) (crypto.Signer, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("no PEM private key (want PKCS#8 PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY)")
		}
		if _, enc := b.Headers["Proc-Type"]; enc {
			return nil, fmt.Errorf("%w: encrypted PEM key; store it unencrypted with mode 0600, or in a TPM/HSM", ErrUnsupported)
		}
		var key any
		var err error
		switch b.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, fmt.Errorf("%w: encrypted PKCS#8 key; store it unencrypted with mode 0600, or in a TPM/HSM", ErrUnsupported)
		case "TSS2 PRIVATE KEY":
			return nil, fmt.Errorf("%w: this is a TPM key blob: use tpm:blob=PATH", ErrUnsupported)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("parsing %s: %w", b.Type, err)
		}
		s, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("%w: %T is not a signing key", ErrUnsupported, key)
		}
		return s, nil
	}
}

func createFile(path string, kt KeyType) (Key, error) {
	if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("%w: %s", ErrExists, path)
	}
	var s crypto.Signer
	var err error
	switch kt {
	case RSA2048:
		s, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		s, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		return nil, fmt.Errorf("generating key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(s)
	if err != nil {
		return nil, err
	}
	if err := writeFileExclusive(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
		return nil, err
	}
	return fileKey{s}, nil
}

// writeFileExclusive writes data to path with mode 0600, atomically (a reader sees the whole
// file or none) and without ever replacing an existing file (ErrExists).
func writeFileExclusive(path string, data []byte) error {
	return writeAtomic(path, data, 0o600, true)
}

// WriteFileAtomic replaces path with data (mode applied before the file is visible): written
// to a temporary file in the same directory, fsynced, renamed over path, and the directory
// fsynced, so a reader or a crash sees the old file or the new one, never a part. It is the
// one atomic writer for the key files here and for edgegw's password and CSR files.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	return writeAtomic(path, data, mode, false)
}

// writeAtomic writes via a temporary file; exclusive links it into place (link(2) fails if
// path exists: atomic and never overwrites) instead of renaming over path.
func writeAtomic(path string, data []byte, mode os.FileMode, exclusive bool) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if exclusive {
		if err := os.Link(tmp.Name(), path); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%w: %s", ErrExists, path)
			}
			return err
		}
	} else if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
