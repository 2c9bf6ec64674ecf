//go:build cgo

package hw_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/hw"
	"github.com/edgegw/edgegw/hw/hwtest"
)

// TestPKCS11 creates a P-256 key on a real SoftHSM2 token, uses it for TLS 1.2 and 1.3 client
// authentication and a CSR checked by openssl, and checks PIN errors never show the PIN.
func TestPKCS11(t *testing.T) {
	ctx := context.Background()
	h := hwtest.StartSoftHSM(t, "gw")
	uri := h.URI("gateway")
	k, err := hw.Create(ctx, uri, hw.P256)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	bothTLS(t, k)
	if _, err := hw.Create(ctx, uri, hw.P256); !errors.Is(err, hw.ErrExists) {
		t.Fatalf("second Create: got %v; want ErrExists", err)
	}
	sum, _ := hw.PublicKeySHA256(k.Public())
	csr, err := hw.CSR(k, "plant-7-gw", []string{"gw.plant-7.example"})
	if err != nil {
		t.Fatal(err)
	}
	checkCSRWithOpenSSL(t, csr, sum)
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}

	k, err = hw.Open(ctx, uri)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	mutualTLS(t, k, 0x0304)
	info, err := hw.Info(ctx, uri)
	if err != nil || info.PublicSHA256 != sum || info.Type != "ECDSA P-256" || !strings.Contains(info.Location, `token "gw"`) {
		t.Fatalf("Info = %+v, %v; want P-256 on token gw with SHA-256 %s", info, err, sum)
	}
	k.Close()

	t.Run("rsa2048", func(t *testing.T) {
		k, err := hw.Create(ctx, h.URI("rsa"), hw.RSA2048)
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		defer k.Close()
		bothTLS(t, k)
	})

	// The bad cases run with no context open: a logged-in session would hide a wrong PIN.
	wrongPIN := filepath.Join(t.TempDir(), "wrong-pin")
	if err := os.WriteFile(wrongPIN, []byte("0000-wrong-PIN\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	loosePIN := filepath.Join(t.TempDir(), "loose-pin")
	if err := os.WriteFile(loosePIN, []byte(h.PIN), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(loosePIN, 0o644)
	base := "pkcs11:token=gw;object=gateway?module-path=" + h.Module + "&pin-source="
	for _, tc := range []struct {
		name, uri, want string
		is              error
	}{
		{"wrong-pin", base + wrongPIN, "rejected the PIN", hw.ErrPIN},
		{"unreadable-pin-source", base + filepath.Join(t.TempDir(), "no-pin"), "does not exist", hw.ErrPIN},
		{"loose-pin-source", base + loosePIN, "chmod 600", hw.ErrPIN},
		{"no-pin-source", "pkcs11:token=gw;object=gateway?module-path=" + h.Module, "no pin-source", hw.ErrPIN},
		{"unknown-token", "pkcs11:token=nope;object=gateway?module-path=" + h.Module + "&pin-source=" + h.PINFile, "no such token", hw.ErrNotFound},
		{"unknown-object", h.URI("nope"), "no key pair", hw.ErrNotFound},
		{"no-module", "pkcs11:token=gw;object=gateway?module-path=/nonexistent/p11.so&pin-source=" + h.PINFile, "PKCS#11 module", hw.ErrNoDevice},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := hw.Open(ctx, tc.uri)
			if err == nil || !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.uri) {
				t.Fatalf("got %v; want %v naming %q and saying %q", err, tc.is, tc.uri, tc.want)
			}
			if strings.Contains(err.Error(), "0000-wrong-PIN") || strings.Contains(err.Error(), h.PIN) {
				t.Fatalf("error leaks a PIN: %v", err)
			}
			t.Logf("%v", err)
		})
	}
}
