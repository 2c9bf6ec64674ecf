package hw

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// SecretSize is the length of the queue encryption key (AES-256).
const SecretSize = 32

// OpenSecret returns the 32-byte queue encryption key named by uri:
//
//	file:PATH
//	    exactly 32 raw bytes (not hex, no newline), mode 0600 or stricter. OpenSecret never
//	    creates it (an inspection tool must not invent a key for an existing queue);
//	    OpenOrCreateSecret does. By hand: (umask 077; head -c 32 /dev/urandom > PATH)
//	tpm-sealed:PATH[;device=/dev/tpmrm0|;tcp=HOST:PORT[;platform=HOST:PORT]]
//	    PATH is a TSS2 PEM sealed-data blob (OID 2.23.133.10.1.5). On first use 32 random bytes
//	    are sealed under this TPM's storage root key (fixedTPM, fixedParent, empty auth) and the
//	    blob is written 0600 atomically; later calls unseal it. The blob is useless on any other
//	    TPM, or after the TPM was cleared (ErrWrongTPM).
func OpenSecret(ctx context.Context, uri string) ([]byte, error) {
	s, _, err := openSecret(ctx, uri, false)
	return s, uriErr("reading secret", uri, err)
}

// OpenOrCreateSecret is OpenSecret for the daemon, which owns the queue: a file: secret that
// does not exist yet is created too, as 32 random bytes with mode 0600, written to a temporary
// file in PATH's directory, fsynced and linked into place (never replacing a file another
// process made first: then that one is read and used), then the directory is fsynced.
// created reports whether this call made the secret (file: or tpm-sealed:), so the caller can
// say so in its log; hw logs nothing. An existing file of the wrong size or with a mode looser
// than 0600 is an error, as with OpenSecret.
func OpenOrCreateSecret(ctx context.Context, uri string) (secret []byte, created bool, err error) {
	s, created, err := openSecret(ctx, uri, true)
	return s, created, uriErr("reading secret", uri, err)
}

func openSecret(ctx context.Context, uri string, create bool) (secret []byte, created bool, err error) {
	scheme, rest, ok := strings.Cut(uri, ":")
	if !ok {
		return nil, false, fmt.Errorf("%w: no scheme (want file:PATH or tpm-sealed:PATH)", ErrBadURI)
	}
	switch scheme {
	case "file":
		if rest == "" {
			return nil, false, fmt.Errorf("%w: file: needs a path", ErrBadURI)
		}
		return fileSecret(rest, create)
	case "tpm-sealed":
		path, attrs, _ := strings.Cut(rest, ";")
		if path == "" {
			return nil, false, fmt.Errorf("%w: tpm-sealed: needs a path, e.g. tpm-sealed:/var/lib/edgegw/queue.key.tpm", ErrBadURI)
		}
		pairs, err := splitAttrs(attrs, ";")
		if err != nil {
			return nil, false, err
		}
		u := &TPMURI{}
		err = tpmTransportAttrs(pairs, u, func(name, _ string) error {
			return fmt.Errorf("%w: unknown tpm-sealed: attribute %q (want device, tcp, platform)", ErrBadURI, name)
		})
		if err != nil {
			return nil, false, err
		}
		return sealedSecret(ctx, path, u)
	}
	return nil, false, fmt.Errorf("%w: unknown secret scheme %q (want file: or tpm-sealed:)", ErrUnsupported, scheme)
}

// fileSecret reads the raw 32-byte secret at path and, with create, makes it when path does
// not exist. Losing a creation race to another process is not an error: its file is read.
func fileSecret(path string, create bool) (secret []byte, created bool, err error) {
	data, err := readPrivateFile(path)
	if errors.Is(err, ErrNotFound) && create {
		secret = make([]byte, SecretSize)
		if _, err := rand.Read(secret); err != nil {
			return nil, false, err
		}
		err = writeFileExclusive(path, secret)
		if err == nil {
			return secret, true, nil
		}
		if !errors.Is(err, ErrExists) {
			return nil, false, fmt.Errorf("creating %s: %w", path, err)
		}
		data, err = readPrivateFile(path) // another process made it first: use theirs
	}
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, false, fmt.Errorf("%w; create it with: (umask 077; head -c 32 /dev/urandom > %s)", err, path)
		}
		return nil, false, err
	}
	if len(data) != SecretSize {
		return nil, false, fmt.Errorf("%s holds %d bytes; want exactly %d raw bytes: (umask 077; head -c 32 /dev/urandom > %s)", path, len(data), SecretSize, path)
	}
	return data, false, nil
}

func sealTemplate() tpm2.TPMTPublic {
	return tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgKeyedHash,
		NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{
			FixedTPM:     true,
			FixedParent:  true,
			UserWithAuth: true,
			NoDA:         true,
		},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgKeyedHash, &tpm2.TPMSKeyedHashParms{
			Scheme: tpm2.TPMTKeyedHashScheme{Scheme: tpm2.TPMAlgNull},
		}),
	}
}

func sealedSecret(ctx context.Context, path string, u *TPMURI) (secret []byte, created bool, err error) {
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return sealNew(ctx, path, u)
	case err != nil:
		return nil, false, err
	}
	blob, err := parseTSSKey(data)
	if err != nil {
		return nil, false, fmt.Errorf("sealed blob %s: %w", path, err)
	}
	if !blob.Type.Equal(oidSealedData) {
		return nil, false, fmt.Errorf("%w: %s is not a sealed-data blob (OID %v)", ErrUnsupported, path, blob.Type)
	}
	c := acquireTPM(u)
	defer c.release()
	err = c.do(ctx, func(t transport.TPM) error {
		h, err := loadBlob(t, blob)
		if err != nil {
			return err
		}
		defer flush(t, h.Handle)
		rsp, err := tpm2.Unseal{ItemHandle: tpm2.AuthHandle{Handle: h.Handle, Name: h.Name, Auth: tpm2.PasswordAuth(nil)}}.Execute(t)
		if err != nil {
			return fmt.Errorf("TPM2_Unseal: %w", err)
		}
		secret = rsp.OutData.Buffer
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("unsealing %s: %w", path, err)
	}
	if len(secret) != SecretSize {
		return nil, false, fmt.Errorf("unsealing %s: got %d bytes, want %d", path, len(secret), SecretSize)
	}
	return secret, false, nil
}

func sealNew(ctx context.Context, path string, u *TPMURI) (secret []byte, created bool, err error) {
	secret = make([]byte, SecretSize)
	if _, err := rand.Read(secret); err != nil {
		return nil, false, err
	}
	c := acquireTPM(u)
	defer c.release()
	err = c.do(ctx, func(t transport.TPM) error {
		srk, err := createSRK(t)
		if err != nil {
			return err
		}
		defer flush(t, srk.Handle)
		rsp, err := tpm2.Create{
			ParentHandle: tpm2.AuthHandle{Handle: srk.Handle, Name: srk.Name, Auth: tpm2.PasswordAuth(nil)},
			InSensitive: tpm2.TPM2BSensitiveCreate{Sensitive: &tpm2.TPMSSensitiveCreate{
				Data: tpm2.NewTPMUSensitiveCreate(&tpm2.TPM2BSensitiveData{Buffer: secret}),
			}},
			InPublic: tpm2.New2B(sealTemplate()),
		}.Execute(t)
		if err != nil {
			return fmt.Errorf("sealing (TPM2_Create): %w", err)
		}
		blob := &tssKey{Type: oidSealedData, EmptyAuth: true, Parent: tpmOwner,
			Public: tpm2.Marshal(rsp.OutPublic), Private: tpm2.Marshal(rsp.OutPrivate)}
		return writeFileExclusive(path, blob.marshalPEM())
	})
	if errors.Is(err, ErrExists) {
		// Another process sealed it first: use theirs.
		return sealedSecret(ctx, path, u)
	}
	if err != nil {
		return nil, false, fmt.Errorf("sealing a new secret to %s: %w", path, err)
	}
	return secret, true, nil
}
