package renew

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/edgegw/edgegw/hw"
)

// Swapper is the bridge: SwapIdentity reconnects under cert (and puts the
// old one back when that fails), Connected says whether it is online.
type Swapper interface {
	SwapIdentity(ctx context.Context, cert tls.Certificate) error
	Connected() bool
}

// Source has a new key certified for the identity of cur (leaf first in
// cur.Certificate, its key cur.PrivateKey). It returns the new chain, leaf
// first.
type Source interface {
	Sign(ctx context.Context, cur *tls.Certificate, key crypto.Signer) ([]*x509.Certificate, error)
}

// Event kinds.
const (
	EventRenewed      = "renewed"       // a new certificate is in use; Serial, OldSerial, NotAfter
	EventFailed       = "renew_failed"  // Reason says what; the old identity stays in use
	EventKeyDestroyed = "key_destroyed" // the old key, after the new identity connected; Key
)

// Event is one outcome, for the audit log.
type Event struct {
	Kind      string
	Bridge    string
	Serial    string // the new certificate's (hex)
	OldSerial string
	NotAfter  time.Time
	Key       string // a key URI (redacted)
	Reason    string
}

// Options configure a Renewer.
type Options struct {
	Bridge   string // its name: logs, events, Dir
	StateDir string
	Source   Source
	Swapper  Swapper
	KeyType  hw.KeyType // of the new key; default P-256
	// Before: renew this long before the certificate's NotAfter (default 30
	// days; at most half the certificate's lifetime, so a short-lived
	// certificate is not renewed all the time).
	Before      time.Duration
	RetryMin    time.Duration // default 1m
	RetryMax    time.Duration // default 6h
	SwapTimeout time.Duration // default 1m
	HW          []hw.Option
	Log         *slog.Logger
	OnEvent     func(Event) // may be nil
	Now         func() time.Time
}

// Defaults of Options (and of the config's tls.renew).
const (
	DefaultBefore      = 30 * 24 * time.Hour
	DefaultRetryMin    = time.Minute
	DefaultRetryMax    = 6 * time.Hour
	DefaultSwapTimeout = time.Minute
	// SignTimeout bounds the source's answer (AWS's two calls, EST's
	// request): an upstream that never answers fails the attempt, which is
	// retried, instead of holding renewals for ever.
	SignTimeout = 2 * time.Minute
)

// State is a Renewer's figures for metrics and status.
type State struct {
	Bridge      string    `json:"bridge"`
	Serial      string    `json:"serial"`
	NotAfter    time.Time `json:"not_after"`
	DaysLeft    float64   `json:"days_left"`
	Due         time.Time `json:"due"` // when the next renewal is attempted
	LastRenewal time.Time `json:"last_renewal,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	Renewals    uint64    `json:"renewals"`
	Failures    uint64    `json:"failures"`
}

// Renewer renews one bridge's identity. Create it with New; Run keeps it
// renewed, Renew renews now.
type Renewer struct {
	o        Options
	renewMu  sync.Mutex // one renewal at a time
	wake     chan struct{}
	mu       sync.Mutex
	cur      *tls.Certificate // in use
	curKey   hw.Key
	curURI   string
	st       State
	failures int // in a row, for the backoff

	closing context.Context // cancelled by Close: ends a renewal in progress
	cancel  context.CancelFunc
}

// New returns a Renewer of the identity cur, whose private key is key (at
// keyURI, "auto" already resolved). The Renewer owns key from now on: it
// closes it when it is replaced, and at Close.
func New(o Options, cur tls.Certificate, key hw.Key, keyURI string) (*Renewer, error) {
	if o.Source == nil || o.Swapper == nil {
		return nil, errors.New("renew: Source and Swapper are required")
	}
	if cur.Leaf == nil {
		if len(cur.Certificate) == 0 {
			return nil, errors.New("renew: no current certificate")
		}
		leaf, err := x509.ParseCertificate(cur.Certificate[0])
		if err != nil {
			return nil, fmt.Errorf("renew: the current certificate: %w", err)
		}
		cur.Leaf = leaf
	}
	if o.KeyType == 0 {
		o.KeyType = hw.P256
	}
	if o.Before <= 0 {
		o.Before = DefaultBefore
	}
	if o.RetryMin <= 0 {
		o.RetryMin = DefaultRetryMin
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = max(DefaultRetryMax, o.RetryMin)
	}
	if o.SwapTimeout <= 0 {
		o.SwapTimeout = DefaultSwapTimeout
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	o.Log = o.Log.With("component", "renew", "bridge", o.Bridge)
	if o.Now == nil {
		o.Now = time.Now
	}
	r := &Renewer{o: o, wake: make(chan struct{}, 1), cur: &cur, curKey: key, curURI: keyURI}
	r.closing, r.cancel = context.WithCancel(context.Background())
	r.st.Bridge = o.Bridge
	r.setCurrentLocked()
	return r, nil
}

// setCurrentLocked updates the state's figures of the certificate in use.
func (r *Renewer) setCurrentLocked() {
	l := r.cur.Leaf
	r.st.Serial = l.SerialNumber.Text(16)
	r.st.NotAfter = l.NotAfter
	r.st.Due = r.dueLocked()
}

// dueLocked is when the next attempt is: Before the expiry (at most half
// the lifetime), or the backoff after failures.
func (r *Renewer) dueLocked() time.Time {
	l := r.cur.Leaf
	before := min(r.o.Before, l.NotAfter.Sub(l.NotBefore)/2)
	due := l.NotAfter.Add(-before)
	if r.failures > 0 {
		back := r.o.RetryMin << min(r.failures-1, 20)
		if back > r.o.RetryMax || back <= 0 {
			back = r.o.RetryMax
		}
		back = back/2 + rand.N(back/2+1) // jitter: a fleet does not retry in step
		due = r.st.LastErrorAt.Add(back)
	}
	return due
}

// State returns the current figures.
func (r *Renewer) State() State {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.st
	s.DaysLeft = s.NotAfter.Sub(r.o.Now()).Hours() / 24
	return s
}

// Run renews when due and retries failures with backoff until ctx ends. At
// start it finishes a renewal a restart interrupted: the old key named in
// identity.json is destroyed once the bridge is connected.
func (r *Renewer) Run(ctx context.Context) {
	r.finishPrevious(ctx)
	for {
		r.mu.Lock()
		due := r.st.Due
		r.mu.Unlock()
		wait := max(due.Sub(r.o.Now()), 0)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-r.wake:
			t.Stop()
			continue
		case <-t.C:
		}
		if !r.waitConnected(ctx) { // Renew would wait too, but a stop is no failure
			return
		}
		_ = r.Renew(ctx) // logged, recorded and evented
	}
}

// finishPrevious destroys the key identity.json still names as previous,
// once the bridge is connected (under the identity in use: Current chose
// it).
func (r *Renewer) finishPrevious(ctx context.Context) {
	dir := Dir(r.o.StateDir, r.o.Bridge)
	s, err := loadStored(dir)
	if err != nil || s == nil || s.Previous == "" || s.Key != r.curURI {
		return
	}
	if !r.waitConnected(ctx) {
		return
	}
	r.renewMu.Lock()
	defer r.renewMu.Unlock()
	r.destroyOld(ctx, dir, s, "")
}

// waitConnected waits until the bridge is connected; false when ctx ended
// first.
func (r *Renewer) waitConnected(ctx context.Context) bool {
	for !r.o.Swapper.Connected() {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(200 * time.Millisecond):
		}
	}
	return true
}

// Renew renews the identity now (serialised with Run's renewals), once the
// bridge is connected upstream (it waits for that until ctx ends). On error
// the old identity is still in use and Run retries with backoff.
func (r *Renewer) Renew(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(r.closing, cancel)()
	r.renewMu.Lock()
	defer r.renewMu.Unlock()
	if r.closing.Err() != nil {
		return errors.New("renew: closed")
	}
	r.mu.Lock()
	old := r.cur
	r.mu.Unlock()
	oldSerial := old.Leaf.SerialNumber.Text(16)
	var err error
	// Both sources need the bridge online (AWS signs over its connection,
	// the swap proves the new identity on it): a renewal asked for while
	// the bridge is still connecting (`edgegw key rotate` right after a
	// start) waits for it, as Run's due ones do.
	if !r.waitConnected(ctx) {
		err = fmt.Errorf("the bridge did not connect upstream: %w (see its log and `edgegw status`)", context.Cause(ctx))
	} else {
		r.o.Log.Info("renewing the upstream certificate", "serial", oldSerial, "not_after", old.Leaf.NotAfter.UTC().Format(time.RFC3339))
		_, err = r.renew(ctx, old)
	}
	r.mu.Lock()
	defer func() {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}()
	if err != nil {
		r.failures++
		r.st.Failures++
		r.st.LastError = err.Error()
		r.st.LastErrorAt = r.o.Now()
		r.st.Due = r.dueLocked()
		due := r.st.Due
		r.mu.Unlock()
		r.o.Log.Error("renewing the upstream certificate failed; the current one stays in use", "err", err, "retry_at", due.UTC().Format(time.RFC3339))
		r.event(Event{Kind: EventFailed, OldSerial: oldSerial, Reason: err.Error()})
		return err
	}
	r.failures = 0
	r.st.Renewals++
	r.st.LastRenewal = r.o.Now()
	r.st.LastError = ""
	r.setCurrentLocked()
	r.mu.Unlock()
	return nil
}

// renew does one renewal; on success the new identity is in use (r.cur)
// and the old key destroyed (or left named in identity.json when that
// failed, for the next start to retry).
func (r *Renewer) renew(ctx context.Context, old *tls.Certificate) (*tls.Certificate, error) {
	r.mu.Lock()
	oldURI, oldKey := r.curURI, r.curKey
	r.mu.Unlock()
	newURI, err := hw.Successor(ctx, oldURI, r.o.HW...)
	if err != nil {
		return nil, err
	}
	key, err := hw.Create(ctx, newURI, r.o.KeyType, r.o.HW...)
	if err != nil {
		return nil, err
	}
	abandon := func(err error) (*tls.Certificate, error) {
		_ = key.Close()
		if derr := hw.Destroy(context.WithoutCancel(ctx), newURI); derr != nil {
			r.o.Log.Warn("destroying the unused new key failed", "key", hw.Redact(newURI), "err", derr)
		}
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, SignTimeout)
	chain, err := r.o.Source.Sign(sctx, old, key)
	cancel()
	if err != nil {
		return abandon(err)
	}
	if len(chain) == 0 || !samePublic(chain[0].PublicKey, key.Public()) {
		return abandon(errors.New("the signed certificate is not for the new key"))
	}
	leaf := chain[0]
	dir := Dir(r.o.StateDir, r.o.Bridge)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return abandon(err)
	}
	prev, err := loadStored(dir)
	if err != nil {
		return abandon(err)
	}
	certPath := filepath.Join(dir, "cert-"+leaf.SerialNumber.Text(16)+".pem")
	if err := hw.WriteFileAtomic(certPath, chainPEM(chain), 0o600); err != nil {
		return abandon(fmt.Errorf("writing the new certificate: %w", err))
	}
	rec := &stored{Cert: certPath, Key: newURI, Previous: oldURI, Renewed: r.o.Now().UTC()}
	if err := rec.save(dir); err != nil {
		_ = os.Remove(certPath)
		return abandon(fmt.Errorf("recording the new identity: %w", err))
	}
	tc := &tls.Certificate{PrivateKey: key, Leaf: leaf}
	for _, c := range chain {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	sctx, cancel = context.WithTimeout(ctx, r.o.SwapTimeout)
	err = r.o.Swapper.SwapIdentity(sctx, *tc)
	cancel()
	if err != nil {
		// Back to the record as it was: the old identity is the current one.
		if prev != nil {
			err = errors.Join(err, prev.save(dir))
		} else {
			_ = os.Remove(statePath(dir))
		}
		_ = os.Remove(certPath)
		return abandon(err)
	}
	r.mu.Lock()
	r.cur, r.curKey, r.curURI = tc, key, newURI
	r.mu.Unlock()
	_ = oldKey.Close()
	r.o.Log.Info("upstream certificate renewed and in use", "serial", leaf.SerialNumber.Text(16),
		"not_after", leaf.NotAfter.UTC().Format(time.RFC3339), "key", hw.Redact(newURI), "old_serial", old.Leaf.SerialNumber.Text(16))
	r.event(Event{Kind: EventRenewed, Serial: leaf.SerialNumber.Text(16), OldSerial: old.Leaf.SerialNumber.Text(16), NotAfter: leaf.NotAfter, Key: hw.Redact(newURI)})
	oldCert := ""
	if prev != nil {
		oldCert = prev.Cert
	}
	r.destroyOld(ctx, dir, rec, oldCert)
	return tc, nil
}

// destroyOld destroys rec.Previous (the new identity has connected) and
// removes oldCert when it is a renewed certificate of ours; identity.json
// keeps naming the key when that fails, for the next start.
func (r *Renewer) destroyOld(ctx context.Context, dir string, rec *stored, oldCert string) {
	uri := rec.Previous
	if err := hw.Destroy(ctx, uri); err != nil && !errors.Is(err, hw.ErrNotFound) {
		r.o.Log.Error("destroying the old upstream key failed; retried at the next start", "key", hw.Redact(uri), "err", err)
		return
	}
	rec.Previous = ""
	if err := rec.save(dir); err != nil {
		r.o.Log.Error("recording the old key's destruction", "err", err)
	}
	if oldCert != "" && filepath.Dir(oldCert) == dir && oldCert != rec.Cert {
		_ = os.Remove(oldCert)
	}
	r.o.Log.Info("old upstream key destroyed", "key", hw.Redact(uri))
	r.event(Event{Kind: EventKeyDestroyed, Key: hw.Redact(uri)})
}

func (r *Renewer) event(e Event) {
	if r.o.OnEvent != nil {
		e.Bridge = r.o.Bridge
		r.o.OnEvent(e)
	}
}

// Close ends a renewal in progress and closes the key in use.
func (r *Renewer) Close() error {
	r.cancel() // a renewal in progress ends (the old identity stays)
	r.renewMu.Lock()
	defer r.renewMu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.curKey == nil {
		return nil
	}
	err := r.curKey.Close()
	r.curKey = nil
	return err
}

func samePublic(a, b crypto.PublicKey) bool {
	e, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(b)
}

// Install swaps to an identity installed by hand (SIGHUP with a new
// tls.cert and tls.key): the bridge reconnects under cert, whose key is
// key at uri, and the Renewer adopts it. The old key is closed, not
// destroyed (it is the operator's). On error nothing changed and key is
// still the caller's.
func (r *Renewer) Install(ctx context.Context, cert tls.Certificate, key hw.Key, uri string) error {
	if cert.Leaf == nil {
		return errors.New("renew: Install needs the parsed leaf")
	}
	r.renewMu.Lock()
	defer r.renewMu.Unlock()
	if err := r.o.Swapper.SwapIdentity(ctx, cert); err != nil {
		return err
	}
	r.mu.Lock()
	old := r.curKey
	r.cur, r.curKey, r.curURI = &cert, key, uri
	r.failures = 0
	r.st.LastError = ""
	r.setCurrentLocked()
	r.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return nil
}
