package hw_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/hw"
	"github.com/edgegw/edgegw/hw/hwtest"
)

// TestTPMHung: swtpm stopped with SIGSTOP (a hung TPM: the kernel accepts
// the connection, nothing answers) makes a signature, and the signatures
// waiting behind it, fail with ErrTimeout naming the TPM and what to do,
// instead of blocking for ever; opening a key and creating one fail the
// same way. Once swtpm runs again the same key signs (a new connection).
func TestTPMHung(t *testing.T) {
	defer func(a, b time.Duration) { hw.TPMTimeout, hw.TPMCreateTimeout = a, b }(hw.TPMTimeout, hw.TPMCreateTimeout)
	hw.TPMTimeout, hw.TPMCreateTimeout = 2*time.Second, 2*time.Second
	ctx := context.Background()
	sw := hwtest.StartSWTPM(t)
	uri := sw.URI("handle=0x81000100")
	k, err := hw.Create(ctx, uri, hw.P256)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	digest := sha256.Sum256([]byte("handshake"))
	if _, err := k.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
		t.Fatalf("Sign before the TPM hangs: %v", err)
	}

	sw.Pause()
	const signers = 4 // one talks to the hung TPM, three wait for it
	errs := make([]error, signers)
	var wg sync.WaitGroup
	for i := range signers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = k.Sign(rand.Reader, digest[:], crypto.SHA256)
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second): // a hang bound, not a timing claim
		sw.Resume()
		t.Fatal("Sign on a hung TPM still blocked after 60s (deadline 2s)")
	}
	for i, err := range errs {
		if !errors.Is(err, hw.ErrTimeout) || !strings.Contains(err.Error(), sw.Addr()) || !strings.Contains(err.Error(), "restart it") {
			t.Errorf("signer %d on the hung TPM: %v; want ErrTimeout naming %s and saying to restart swtpm", i, err, sw.Addr())
		}
	}
	if _, err := hw.Open(ctx, uri); !errors.Is(err, hw.ErrTimeout) {
		t.Errorf("Open on the hung TPM: %v; want ErrTimeout", err)
	}
	if _, err := hw.Create(ctx, sw.URI("handle=0x81000101"), hw.P256); !errors.Is(err, hw.ErrTimeout) {
		t.Errorf("Create on the hung TPM: %v; want ErrTimeout", err)
	}
	t.Logf("what a signer says: %v", errs[0])

	sw.Resume()
	sig, err := k.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatalf("Sign once swtpm runs again: %v", err)
	}
	if !ecdsa.VerifyASN1(k.Public().(*ecdsa.PublicKey), digest[:], sig) {
		t.Error("the signature after the TPM came back does not verify")
	}
}
