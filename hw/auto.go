package hw

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// Choice is what "auto" resolved to. The caller logs URI and Reason.
type Choice struct {
	URI    string // "tpm:blob=DIR/gateway.tpm2.pem" or "file:DIR/gateway.key" (+ the TPM attrs)
	Reason string
	Exists bool // the key is already there; otherwise Open/Create("auto") makes it
}

// Auto decides where the "auto" key lives, without creating it. Rules, in order:
//  1. an existing file key DIR/gateway.key wins (the identity never silently moves);
//  2. an existing TPM blob DIR/gateway.tpm2.pem wins;
//  3. a TPM that answers (/dev/tpmrm0 by default, see WithAutoTPM) gets a new blob;
//  4. otherwise a new 0600 file key.
//
// DIR is WithStateDir, required.
func Auto(ctx context.Context, opts ...Option) (Choice, error) {
	c, err := auto(ctx, buildOptions(opts))
	return c, uriErr("resolving key", "auto", err)
}

func auto(ctx context.Context, o options) (Choice, error) {
	if o.stateDir == "" {
		return Choice{}, fmt.Errorf("%w: auto needs a state directory (hw.WithStateDir)", ErrBadURI)
	}
	if err := os.MkdirAll(o.stateDir, 0o700); err != nil {
		return Choice{}, fmt.Errorf("creating state directory: %w", err)
	}
	filePath := filepath.Join(o.stateDir, "gateway.key")
	blobPath := filepath.Join(o.stateDir, "gateway.tpm2.pem")
	fileURI := "file:" + filePath
	tpmURI := "tpm:" + o.autoTPM + ";blob=" + blobPath
	if _, err := os.Lstat(filePath); err == nil {
		return Choice{URI: fileURI, Reason: "existing file key " + filePath, Exists: true}, nil
	}
	if _, err := os.Lstat(blobPath); err == nil {
		return Choice{URI: tpmURI, Reason: "existing TPM key blob " + blobPath, Exists: true}, nil
	}
	u, err := ParseURI(tpmURI)
	if err != nil {
		return Choice{}, err
	}
	tu := u.(*TPMURI)
	where := tu.Device
	if tu.TCP != "" {
		where = tu.TCP
	}
	if err := probeTPM(ctx, tu); err != nil {
		return Choice{URI: fileURI, Reason: fmt.Sprintf("no usable TPM (%v); new file key %s (mode 0600)", err, filePath)}, nil
	}
	return Choice{URI: tpmURI, Reason: fmt.Sprintf("TPM at %s answers; new TPM key blob %s", where, blobPath)}, nil
}

func probeTPM(ctx context.Context, u *TPMURI) error {
	if u.TCP == "" {
		if _, err := os.Stat(u.Device); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrNoDevice, u.Device, errors.Unwrap(err))
		}
	}
	c := acquireTPM(u)
	defer c.release()
	return c.do(ctx, func(t transport.TPM) error {
		_, err := tpm2.GetRandom{BytesRequested: 8}.Execute(t)
		return err
	})
}
