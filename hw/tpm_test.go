package hw_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/edgegw/edgegw/hw"
	"github.com/edgegw/edgegw/hw/hwtest"
)

// TestTPMKeys creates a persistent-handle key and a key blob in one swtpm, uses both for
// TLS 1.2 and 1.3 client authentication, and reopens both after a swtpm restart.
func TestTPMKeys(t *testing.T) {
	ctx := context.Background()
	sw := hwtest.StartSWTPM(t)
	blobPath := filepath.Join(t.TempDir(), "gw.tpm2.pem")
	uris := func() map[string]string {
		return map[string]string{
			"handle": sw.URI("handle=0x81000100"),
			"blob":   sw.URI("blob=" + blobPath),
		}
	}
	before := map[string]string{}
	for name, uri := range uris() {
		k, err := hw.Create(ctx, uri, hw.P256)
		if err != nil {
			t.Fatalf("%s: Create: %v", name, err)
		}
		t.Run(name+"/tls", func(t *testing.T) { bothTLS(t, k) })
		if err := k.Close(); err != nil {
			t.Fatalf("%s: Close: %v", name, err)
		}
		if _, err := hw.Create(ctx, uri, hw.P256); !errors.Is(err, hw.ErrExists) {
			t.Fatalf("%s: second Create: got %v; want ErrExists", name, err)
		}
		info, err := hw.Info(ctx, uri)
		if err != nil {
			t.Fatalf("%s: Info: %v", name, err)
		}
		if info.Type != "ECDSA P-256" || len(info.PublicSHA256) != 64 {
			t.Fatalf("%s: Info = %+v", name, info)
		}
		before[name] = info.PublicSHA256
	}

	sw.Restart()
	for name, uri := range uris() {
		k, err := hw.Open(ctx, uri)
		if err != nil {
			t.Fatalf("%s after restart: Open: %v", name, err)
		}
		sum, _ := hw.PublicKeySHA256(k.Public())
		if sum != before[name] {
			t.Fatalf("%s after restart: public key %s; want %s", name, sum, before[name])
		}
		t.Run(name+"/tls-after-restart", func(t *testing.T) { bothTLS(t, k) })
		k.Close()
	}

	t.Run("concurrent-signers", func(t *testing.T) {
		// Two keys on one swtpm (one connection at a time), signed from many goroutines.
		var keys []hw.Key
		for _, uri := range uris() {
			k, err := hw.Open(ctx, uri)
			if err != nil {
				t.Fatal(err)
			}
			defer k.Close()
			keys = append(keys, k)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func(k hw.Key) {
				defer wg.Done()
				for j := 0; j < 3; j++ {
					d := sha256.Sum256([]byte{byte(j)})
					sig, err := k.Sign(rand.Reader, d[:], crypto.SHA256)
					if err == nil && !ecdsa.VerifyASN1(k.Public().(*ecdsa.PublicKey), d[:], sig) {
						err = errors.New("signature does not verify")
					}
					if err != nil {
						errs <- err
						return
					}
				}
			}(keys[i%len(keys)])
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	t.Run("rsa2048-blob", func(t *testing.T) {
		uri := sw.URI("blob=" + filepath.Join(t.TempDir(), "rsa.tpm2.pem"))
		k, err := hw.Create(ctx, uri, hw.RSA2048)
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		defer k.Close()
		bothTLS(t, k)
	})

	t.Run("missing-handle", func(t *testing.T) {
		uri := sw.URI("handle=0x81000199")
		_, err := hw.Open(ctx, uri)
		if !errors.Is(err, hw.ErrNotFound) || !strings.Contains(err.Error(), uri) {
			t.Fatalf("got %v; want ErrNotFound naming %s", err, uri)
		}
	})

	t.Run("csr-openssl", func(t *testing.T) {
		k, err := hw.Open(ctx, sw.URI("handle=0x81000100"))
		if err != nil {
			t.Fatal(err)
		}
		defer k.Close()
		csr, err := hw.CSR(k, "plant-7-gw", []string{"gw.plant-7.example", "10.0.0.7"})
		if err != nil {
			t.Fatal(err)
		}
		checkCSRWithOpenSSL(t, csr, before["handle"])
	})
}

// TestSealedSecret seals a queue key in one swtpm, unseals it after a restart, and fails
// clearly on a different (fresh) swtpm.
func TestSealedSecret(t *testing.T) {
	ctx := context.Background()
	sw := hwtest.StartSWTPM(t)
	path := filepath.Join(t.TempDir(), "queue.key.tpm")
	first, created, err := hw.OpenOrCreateSecret(ctx, "tpm-sealed:"+path+";tcp="+sw.Addr())
	if err != nil || !created {
		t.Fatalf("first OpenOrCreateSecret: got created %v, err %v; want created true, no error", created, err)
	}
	if len(first) != 32 {
		t.Fatalf("got %d bytes; want 32", len(first))
	}
	assertMode0600(t, path)
	sw.Restart()
	again, created, err := hw.OpenOrCreateSecret(ctx, "tpm-sealed:"+path+";tcp="+sw.Addr())
	if err != nil || created {
		t.Fatalf("OpenOrCreateSecret after restart: got created %v, err %v; want created false, no error", created, err)
	}
	if viaOpen, err := hw.OpenSecret(ctx, "tpm-sealed:"+path+";tcp="+sw.Addr()); err != nil || string(viaOpen) != string(first) {
		t.Fatalf("OpenSecret after restart: got err %v or a different secret; want the sealed one", err)
	}
	if string(again) != string(first) {
		t.Fatalf("unsealed a different secret after restart")
	}
	other := hwtest.StartSWTPM(t)
	uri := "tpm-sealed:" + path + ";tcp=" + other.Addr()
	_, err = hw.OpenSecret(ctx, uri)
	if !errors.Is(err, hw.ErrWrongTPM) || !strings.Contains(err.Error(), "sealed by another TPM or the TPM was cleared") || !strings.Contains(err.Error(), path) {
		t.Fatalf("on another TPM: got %v; want ErrWrongTPM naming %s", err, path)
	}
	t.Logf("on another TPM: %v", err)
}

// TestAuto checks the auto choice: no TPM means a file key; a TPM that answers means a blob;
// an existing key is always kept.
func TestAuto(t *testing.T) {
	ctx := context.Background()
	t.Run("no-tpm", func(t *testing.T) {
		dir := t.TempDir()
		opts := []hw.Option{hw.WithStateDir(dir), hw.WithAutoTPM("device=" + filepath.Join(dir, "no-tpmrm0"))}
		c, err := hw.Auto(ctx, opts...)
		if err != nil || !strings.HasPrefix(c.URI, "file:") || c.Exists || !strings.Contains(c.Reason, "no usable TPM") {
			t.Fatalf("got %+v, %v; want a new file key", c, err)
		}
		k, err := hw.Open(ctx, "auto", opts...)
		if err != nil {
			t.Fatalf("Open(auto): %v", err)
		}
		k.Close()
		assertMode0600(t, filepath.Join(dir, "gateway.key"))
		c, err = hw.Auto(ctx, opts...)
		if err != nil || !c.Exists || !strings.HasPrefix(c.URI, "file:") {
			t.Fatalf("second Auto: got %+v, %v; want the existing file key", c, err)
		}
	})
	t.Run("tpm", func(t *testing.T) {
		sw := hwtest.StartSWTPM(t)
		dir := t.TempDir()
		opts := []hw.Option{hw.WithStateDir(dir), hw.WithAutoTPM("tcp=" + sw.Addr())}
		c, err := hw.Auto(ctx, opts...)
		if err != nil || !strings.HasPrefix(c.URI, "tpm:") || c.Exists {
			t.Fatalf("got %+v, %v; want a new TPM blob", c, err)
		}
		k, err := hw.Create(ctx, "auto", hw.P256, opts...)
		if err != nil {
			t.Fatalf("Create(auto): %v", err)
		}
		k.Close()
		if _, err := hw.Create(ctx, "auto", hw.P256, opts...); !errors.Is(err, hw.ErrExists) {
			t.Fatalf("second Create(auto): got %v; want ErrExists", err)
		}
		info, err := hw.Info(ctx, "auto", opts...)
		if err != nil || !strings.Contains(info.Location, "key blob") {
			t.Fatalf("Info(auto): %+v, %v", info, err)
		}
	})
}
