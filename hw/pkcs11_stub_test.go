//go:build !cgo

package hw_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/hw"
)

// TestPKCS11Stub: a build without cgo (armhf) says plainly it has no PKCS#11 support.
func TestPKCS11Stub(t *testing.T) {
	uri := "pkcs11:token=gw;object=gw?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/etc/edgegw/pin"
	_, err := hw.Open(context.Background(), uri)
	if !errors.Is(err, hw.ErrUnsupported) || !strings.Contains(err.Error(), "this build has no PKCS#11 support") || !strings.Contains(err.Error(), uri) {
		t.Fatalf("got %v; want the no-PKCS#11 message naming %s", err, uri)
	}
}
