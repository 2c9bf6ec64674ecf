//go:build !cgo

package hw

import (
	"context"
	"fmt"
)

func errNoPKCS11() error {
	return fmt.Errorf("%w: pkcs11: this build has no PKCS#11 support (built without cgo, e.g. the 32-bit armhf package); use file: or tpm:", ErrUnsupported)
}

func openPKCS11(context.Context, *PKCS11URI) (Key, error) { return nil, errNoPKCS11() }

func createPKCS11(context.Context, *PKCS11URI, KeyType) (Key, error) { return nil, errNoPKCS11() }

func destroyPKCS11(context.Context, *PKCS11URI) error { return errNoPKCS11() }
