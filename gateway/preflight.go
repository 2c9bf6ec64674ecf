package gateway

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/gateway/authz"
	"github.com/edgegw/edgegw/gateway/broker"
	"github.com/edgegw/edgegw/gateway/brokerconf"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/enrolrun"
	"github.com/edgegw/edgegw/gateway/observe"
	"github.com/edgegw/edgegw/gateway/uplink"
)

// Preflight runs every check Run makes before it binds anything, for a cfg
// that passed config.Check: the registry and the policies compile (strict),
// each listener's server certificate belongs to its key (file, TPM or
// PKCS#11) and its CA bundle, CRL and password file parse, the bridge
// certificate belongs to the bridge key, the audit file can be opened, and
// the directories the daemon writes (store, state) exist or can be created,
// the admin socket path fits, the enrolment section's CA, policies and hooks
// exist. It binds nothing and writes nothing. (The
// admin socket's directory, which systemd's RuntimeDirectory= makes, is
// checked by the edgegw command before it, for run and check alike.)
//
// `edgegw check` calls it after config.Check, and Run calls it first, so a
// config that check accepts is not refused by run for any of these reasons,
// and each refusal reads the same in both. The error joins every problem.
func Preflight(ctx context.Context, cfg *config.Config) error {
	var errs []error
	var policies *authz.Engine // as the broker's preflight loaded them; nil if they did not load
	o, keys, err := brokerconf.Options(ctx, cfg)
	if err != nil {
		errs = append(errs, err)
	} else {
		policies, err = broker.Preflight(o)
		errs = append(errs, err)
		for _, k := range keys {
			_ = k.Close()
		}
	}
	if cfg.Bridge != nil {
		_, key, err := uplink.UpstreamTLS(ctx, cfg, nil)
		if key != nil {
			_ = key.Close()
		}
		errs = append(errs, err)
	}
	// Every configuration opens the store: without a bridge it holds the
	// offline sessions (gateway/localstate).
	errs = append(errs, creatableDir("store.dir", cfg.Store.Dir))
	errs = append(errs, preflightQueueKey(ctx, cfg))
	errs = append(errs, audit.CheckFile(cfg.Audit.File))
	errs = append(errs, enrolrun.Preflight(cfg, policies)) // gateway/enrolrun
	if cfg.Admin.Socket != "" {
		// Its directory: edgegw run and check check it first (they know
		// the service's RuntimeDirectory).
		errs = append(errs, observe.CheckAdminSocket(cfg.Admin.Socket))
	}
	if cfg.StateDir != "" {
		errs = append(errs, creatableDir("state_dir", cfg.StateDir))
	}
	return errors.Join(errs...)
}

// preflightQueueKey is uplink.EnsureQueueKey without creating anything: with a
// queue on disk its key must open; before the first start a file key that
// is not there yet must be creatable, and one that is there must open.
func preflightQueueKey(ctx context.Context, cfg *config.Config) error {
	uri := cfg.Store.EncryptionKey
	if uri == "" {
		return nil
	}
	if ents, err := os.ReadDir(cfg.Store.Dir); err == nil && len(ents) > 0 {
		_, err := uplink.StoreOptionsFromConfig(ctx, cfg) // reads the key, as Run does
		return err
	}
	path, isFile := strings.CutPrefix(uri, "file:")
	if !isFile {
		return nil // tpm-sealed: made in the TPM at the first start
	}
	if _, err := os.Stat(path); err == nil {
		_, err := uplink.StoreOptionsFromConfig(ctx, cfg)
		return err
	}
	return creatableDir("store.encryption_key", filepath.Dir(path))
}

// creatableDir checks that dir exists and is writable, or that its nearest
// existing ancestor is (so the daemon can create it).
func creatableDir(key, dir string) error {
	if dir == "" {
		return nil
	}
	p := dir
	for {
		st, err := os.Stat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
			parent := filepath.Dir(p)
			if parent == p {
				return fmt.Errorf("%s %s: no existing parent directory", key, dir)
			}
			p = parent
			continue
		case err != nil:
			return fmt.Errorf("%s %s: %w", key, dir, err)
		case !st.IsDir():
			return fmt.Errorf("%s %s: %s is not a directory", key, dir, p)
		}
		if err := syscall.Access(p, 2|1 /* W_OK|X_OK */); err != nil {
			if p == dir {
				return fmt.Errorf("%s %s: not writable by uid %d (the daemon's user must own it): %w", key, dir, os.Getuid(), err)
			}
			return fmt.Errorf("%s %s: does not exist and %s is not writable by uid %d: create it for the daemon's user: %w", key, dir, p, os.Getuid(), err)
		}
		return nil
	}
}
