package hw_test

import (
	"context"
	"crypto"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/hw"
	"github.com/edgegw/edgegw/hw/hwtest"
)

// TestSuccessorAndDestroy rotates a key in each place a key lives (file,
// swtpm persistent handle and blob, SoftHSM2): the successor is a new place
// next to the old one, Create makes a different key there while the old one
// still opens, and Destroy removes the old one for good.
func TestSuccessorAndDestroy(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	sw := hwtest.StartSWTPM(t)
	hsm := hwtest.StartSoftHSM(t, "rot")
	cases := []struct {
		name, uri string
		want      string // in the successor
	}{
		{"file", "file:" + filepath.Join(dir, "gw.key"), "file:" + filepath.Join(dir, "gw-g2.key")},
		{"tpm-handle", sw.URI("handle=0x81000200"), "handle=0x81000201"},
		{"tpm-blob", sw.URI("blob=" + filepath.Join(dir, "gw.tpm2.pem")), "blob=" + filepath.Join(dir, "gw-g2.tpm2.pem")},
		{"pkcs11", hsm.URI("gw"), "object=gw-g2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			old, err := hw.Create(ctx, c.uri, hw.P256)
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			oldPub := old.Public()
			_ = old.Close()
			next, err := hw.Successor(ctx, c.uri)
			if err != nil {
				t.Fatalf("Successor: %v", err)
			}
			if !strings.Contains(next, c.want) || next == c.uri {
				t.Fatalf("Successor(%s) = %s; want it to contain %s", hw.Redact(c.uri), hw.Redact(next), c.want)
			}
			nk, err := hw.Create(ctx, next, hw.P256)
			if err != nil {
				t.Fatalf("Create at the successor: %v", err)
			}
			if oldPub.(interface{ Equal(crypto.PublicKey) bool }).Equal(nk.Public()) {
				t.Fatal("the successor holds the old key")
			}
			_ = nk.Close()
			// The one after the successor is another place again.
			if again, err := hw.Successor(ctx, next); err != nil || again == next || again == c.uri {
				t.Fatalf("Successor of the successor: %s, %v", hw.Redact(again), err)
			}
			k, err := hw.Open(ctx, c.uri)
			if err != nil {
				t.Fatalf("the old key no longer opens before Destroy: %v", err)
			}
			_ = k.Close()
			if err := hw.Destroy(ctx, c.uri); err != nil {
				t.Fatalf("Destroy: %v", err)
			}
			if _, err := hw.Open(ctx, c.uri); !errors.Is(err, hw.ErrNotFound) {
				t.Fatalf("Open after Destroy: %v; want ErrNotFound", err)
			}
			if err := hw.Destroy(ctx, c.uri); !errors.Is(err, hw.ErrNotFound) {
				t.Fatalf("Destroy twice: %v; want ErrNotFound", err)
			}
			k, err = hw.Open(ctx, next)
			if err != nil {
				t.Fatalf("the new key after Destroy of the old: %v", err)
			}
			_ = k.Close()
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "gw.key")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the old key file is still there: %v", err)
	}
}
