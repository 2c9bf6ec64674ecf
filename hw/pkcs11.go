//go:build cgo

package hw

import (
	"context"
	"crypto"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/ThalesGroup/crypto11"
	"github.com/miekg/pkcs11"
)

type p11Key struct {
	crypto11.Signer
	ctx  *crypto11.Context
	once sync.Once
}

func (k *p11Key) Close() error {
	var err error
	k.once.Do(func() { err = k.ctx.Close() })
	return err
}

// configurePKCS11 loads the module and logs in to the token. Errors never contain the PIN.
func configurePKCS11(u *PKCS11URI) (*crypto11.Context, error) {
	if _, err := os.Stat(u.ModulePath); err != nil {
		return nil, fmt.Errorf("%w: PKCS#11 module %s: %v", ErrNoDevice, u.ModulePath, errors.Unwrap(err))
	}
	pin, err := readPIN(u)
	if err != nil {
		return nil, err
	}
	cfg := &crypto11.Config{Path: u.ModulePath, TokenLabel: u.Token, TokenSerial: u.Serial, SlotNumber: u.SlotID, Pin: pin}
	ctx, err := crypto11.Configure(cfg)
	if err != nil {
		msg := err.Error()
		if len(pin) > 0 {
			msg = strings.ReplaceAll(msg, pin, "REDACTED")
		}
		var rv pkcs11.Error
		switch {
		case errors.As(err, &rv) && (rv == pkcs11.CKR_PIN_INCORRECT || rv == pkcs11.CKR_PIN_LEN_RANGE || rv == pkcs11.CKR_PIN_INVALID):
			return nil, fmt.Errorf("%w: the token rejected the PIN from pin-source %s (%s)", ErrPIN, u.PINSource, msg)
		case errors.As(err, &rv) && rv == pkcs11.CKR_PIN_LOCKED:
			return nil, fmt.Errorf("%w: the user PIN is locked (%s); the token's SO must reset it", ErrPIN, msg)
		case strings.Contains(msg, "could not find PKCS#11 token"):
			return nil, fmt.Errorf("%w: no such token in %s (list them with `pkcs11-tool --module %s -L` or `softhsm2-util --show-slots`)", ErrNotFound, u.ModulePath, u.ModulePath)
		case strings.Contains(msg, "failed to open module") || strings.Contains(msg, "failed to create module context"):
			return nil, fmt.Errorf("%w: loading PKCS#11 module %s: %s", ErrNoDevice, u.ModulePath, msg)
		}
		return nil, fmt.Errorf("PKCS#11 login: %s", msg)
	}
	return ctx, nil
}

func p11Label(u *PKCS11URI) []byte {
	if u.Object == "" {
		return nil
	}
	return []byte(u.Object)
}

func p11ID(u *PKCS11URI) []byte {
	if len(u.ID) == 0 {
		return nil
	}
	return u.ID
}

func openPKCS11(_ context.Context, u *PKCS11URI) (Key, error) {
	ctx, err := configurePKCS11(u)
	if err != nil {
		return nil, err
	}
	keys, err := ctx.FindKeyPairs(p11ID(u), p11Label(u))
	if err != nil {
		ctx.Close()
		return nil, fmt.Errorf("searching the token: %w", err)
	}
	switch len(keys) {
	case 0:
		ctx.Close()
		return nil, fmt.Errorf("%w: no key pair with that object/id on the token (create it with `edgegw key create`)", ErrNotFound)
	case 1:
	default:
		ctx.Close()
		return nil, fmt.Errorf("%w: %d key pairs match; add id= to pick one", ErrBadURI, len(keys))
	}
	return &p11Key{Signer: keys[0], ctx: ctx}, nil
}

func createPKCS11(_ context.Context, u *PKCS11URI, kt KeyType) (Key, error) {
	ctx, err := configurePKCS11(u)
	if err != nil {
		return nil, err
	}
	existing, err := ctx.FindKeyPairs(p11ID(u), p11Label(u))
	if err != nil {
		ctx.Close()
		return nil, fmt.Errorf("searching the token: %w", err)
	}
	if len(existing) > 0 {
		ctx.Close()
		return nil, fmt.Errorf("%w: a key pair with that object/id is already on the token", ErrExists)
	}
	id := p11ID(u)
	if id == nil {
		id = make([]byte, 16)
		if _, err := rand.Read(id); err != nil {
			ctx.Close()
			return nil, err
		}
	}
	var s crypto11.Signer
	if kt == RSA2048 {
		s, err = ctx.GenerateRSAKeyPairWithLabel(id, p11Label(u), 2048)
	} else {
		s, err = ctx.GenerateECDSAKeyPairWithLabel(id, p11Label(u), elliptic.P256())
	}
	if err != nil {
		ctx.Close()
		return nil, fmt.Errorf("generating key pair on the token: %w", err)
	}
	return &p11Key{Signer: s, ctx: ctx}, nil
}

var _ crypto.Signer = (*p11Key)(nil)

// destroyPKCS11 deletes the key pair at u from its token (Destroy).
func destroyPKCS11(ctx context.Context, u *PKCS11URI) error {
	k, err := openPKCS11(ctx, u)
	if err != nil {
		return err
	}
	pk := k.(*p11Key)
	defer pk.Close()
	if err := pk.Signer.Delete(); err != nil {
		return fmt.Errorf("deleting the key pair from the token: %w", err)
	}
	return nil
}
