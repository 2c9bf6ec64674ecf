package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"strconv"
	"syscall"
	"time"

	"github.com/edgegw/edgegw/bridge"
	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/renew"
	"github.com/edgegw/edgegw/gateway/uplink"
	"github.com/edgegw/edgegw/store"
)

// keyRotateOffline is `edgegw key rotate` with the daemon stopped (a
// maintenance window): the same renewal the daemon does (renew.Renewer),
// over a bridge of the command's own that only makes the renewal's calls.
// That bridge connects as the gateway (its client ID, identity and
// upstream session), sends nothing from the queue and holds every inbound
// message (bridge.Config.HoldInbound): what the upstream queued for the
// gateway stays there for the daemon's next connect. The queue's directory
// lock (badger's flock) is held throughout, so a daemon started meanwhile
// cannot open its queue, and one running refuses this.
func (a *app) keyRotateOffline(ctx context.Context, cfgPath, bridgeName string, wait time.Duration) error {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	var bc *config.BridgeConfig
	var path string
	for i, b := range cfg.BridgeList() {
		if bridgeName == b.BridgeName() || bridgeName == "" && b.TLS != nil && b.TLS.Renew != nil {
			bc, path = b, cfg.BridgePath(i)
			break
		}
	}
	if bc == nil || bc.TLS == nil || bc.TLS.Renew == nil {
		return &exitError{code: 1, err: fmt.Errorf("%s: no bridge %q renews its certificate: set tls.renew under it (source aws or est)", cfgPath, bridgeName)}
	}
	name := bc.BridgeName()
	if err := sameOwner(cfg.StateDir); err != nil {
		return &exitError{code: 1, err: err}
	}
	unlock, err := lockQueueDir(cfg.BridgeQueueDir(name))
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	defer unlock()

	log := slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var aud *audit.Log
	if cfg.Audit.File != "" {
		if aud, err = audit.New(audit.Options{File: cfg.Audit.File, Site: cfg.Site, Log: log}); err != nil {
			return &exitError{code: 1, err: fmt.Errorf("audit.file: %w", err)}
		}
		defer aud.Close()
	}
	tc, key, err := uplink.BridgeTLS(ctx, cfg, bc, path, log)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	bcfg, err := uplink.BridgeConfigFromConfig(bc, tc)
	if err != nil {
		_ = key.Close()
		return &exitError{code: 1, err: err}
	}
	bcfg.HoldInbound = true
	b, err := bridge.New(bcfg, idleQueue{}, heldPublisher{}, log)
	if err != nil {
		_ = key.Close()
		return &exitError{code: 1, err: err}
	}
	var events []renew.Event
	r, err := uplink.NewRenewer(ctx, cfg, bc, b, tc, key, log, func(e renew.Event) {
		events = append(events, e)
		if aud != nil {
			aud.Record(uplink.RenewAudit(e))
		}
	})
	if err != nil {
		_ = key.Close()
		return &exitError{code: 1, err: err}
	}
	defer r.Close()

	bctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = b.Run(bctx) }()
	defer func() { stop(); <-done }()

	before := r.State()
	fmt.Fprintf(a.stderr, "bridge %s: the daemon is not running; renewing certificate serial %s (not after %s) from here...\n",
		name, before.Serial, before.NotAfter.UTC().Format(time.RFC3339))
	rctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if err := r.Renew(rctx); err != nil {
		return &exitError{code: 1, err: fmt.Errorf("bridge %s: renewal failed, serial %s stays in use: %w", name, before.Serial, err)}
	}
	s := r.State()
	fmt.Fprintf(a.stdout, "bridge %s: renewed: serial %s, not after %s (was %s)\n", name, s.Serial, s.NotAfter.UTC().Format(time.RFC3339), before.Serial)
	for _, e := range events {
		if e.Kind == renew.EventRenewed {
			fmt.Fprintf(a.stderr, "bridge %s: new key %s; the daemon uses it at its next start\n", name, e.Key)
		}
	}
	return nil
}

// idleQueue is a queue with nothing to send: the rotating bridge leaves
// the gateway's queue to the daemon.
type idleQueue struct{}

func (idleQueue) Next(ctx context.Context) (store.Message, error) {
	<-ctx.Done()
	return store.Message{}, ctx.Err()
}
func (idleQueue) Ack(uint64) error                { return nil }
func (idleQueue) DeadLetter(uint64, string) error { return nil }
func (idleQueue) Rewind()                         {}

// heldPublisher is never called (HoldInbound); should it be, the message is
// left for redelivery.
type heldPublisher struct{}

func (heldPublisher) PublishLocal(string, []byte, bool, byte) error {
	return bridge.ErrLocalUnavailable
}

// lockQueueDir takes the lock badger holds on a queue directory (flock of
// the directory) while the daemon runs, so the daemon and the offline
// rotation never use the gateway's identity at once. A queue directory
// that does not exist yet (the daemon never ran) is not created.
func lockQueueDir(dir string) (unlock func(), err error) {
	d, err := os.Open(dir)
	if errors.Is(err, os.ErrNotExist) {
		return func() {}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("opening the queue directory %s: %w", dir, err)
	}
	if err := syscall.Flock(int(d.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = d.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("the queue %s is in use (the daemon runs, but its admin socket does not answer, or an `edgegw queue` command runs): stop it, or rotate through the running daemon", dir)
		}
		return nil, fmt.Errorf("locking the queue directory %s: %w", dir, err)
	}
	return func() { _ = d.Close() }, nil
}

// sameOwner refuses to write the gateway's state (new key, certificate,
// identity.json) as another user than the one owning state_dir: as root,
// those files would be root's and the daemon could not read them.
func sameOwner(stateDir string) error {
	fi, err := os.Stat(stateDir)
	if err != nil {
		return fmt.Errorf("state_dir: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || int(st.Uid) == os.Geteuid() {
		return nil
	}
	owner := strconv.Itoa(int(st.Uid))
	if u, err := user.LookupId(owner); err == nil {
		owner = u.Username
	}
	return fmt.Errorf("state_dir %s belongs to %s: rotate as that user (sudo -u %s edgegw key rotate ...), so the new key and certificate are the daemon's", stateDir, owner, owner)
}
