package uplink

// The gateway's own upstream identity, live: renewal (tls.renew, package
// renew) and SIGHUP reload of tls.cert and tls.key. Kept apart from
// uplink.go so that file stays the durable path.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/edgegw/edgegw/bridge"
	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/gateway/broker/listen"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/est"
	"github.com/edgegw/edgegw/gateway/renew"
	"github.com/edgegw/edgegw/hw"
)

// openRenewer makes l's renewer when bc has tls.renew and an identity
// (tc's certificate and key, from BridgeTLS). The renewer owns the key from
// then on.
func (u *Uplink) openRenewer(ctx context.Context, l *link, bc *config.BridgeConfig, tc *tls.Config, key hw.Key, aud Auditor) error {
	r, err := NewRenewer(ctx, u.cfg, bc, l.bridge, tc, key, u.log, func(e renew.Event) { aud.Record(RenewAudit(e)) })
	if err != nil || r == nil {
		return err
	}
	l.renewer, l.key = r, nil
	return nil
}

// NewRenewer makes the renewer of bridge bc's identity (tc's certificate
// and key, from BridgeTLS) over b, which signs (AWS) and swaps to the new
// identity; nil, nil when bc has no tls.renew or no identity. The renewer
// owns key from then on. The daemon's bridges use it, and `edgegw key
// rotate` with the daemon stopped.
func NewRenewer(ctx context.Context, cfg *config.Config, bc *config.BridgeConfig, b *bridge.Bridge, tc *tls.Config, key hw.Key, log *slog.Logger, onEvent func(renew.Event)) (*renew.Renewer, error) {
	if bc.TLS == nil || bc.TLS.Renew == nil || key == nil || len(tc.Certificates) == 0 {
		return nil, nil
	}
	name := bc.BridgeName()
	uri, err := identityKeyURI(ctx, cfg, bc)
	if err != nil {
		return nil, fmt.Errorf("bridge %s: tls.key: %w", name, err)
	}
	rc := bc.TLS.Renew
	var src renew.Source
	switch rc.Source {
	case config.RenewAWS:
		src = &renew.AWS{Caller: b, Template: rc.Template, Parameters: rc.Parameters}
	case config.RenewEST:
		c := est.Client{Server: rc.EST, Label: rc.ESTLabel}
		caFile := rc.ESTCA
		if caFile == "" {
			caFile = bc.TLS.CA
		}
		if caFile != "" {
			pool, err := readPool(caFile)
			if err != nil {
				return nil, fmt.Errorf("bridge %s: tls.renew.est_ca: %w", name, err)
			}
			c.RootCAs = pool
		}
		src = &renew.EST{Client: c}
	default:
		return nil, fmt.Errorf("bridge %s: tls.renew.source %q", name, rc.Source)
	}
	kt := hw.P256
	if rc.KeyType == "rsa2048" {
		kt = hw.RSA2048
	}
	before := rc.Before.D()
	if before == 0 {
		before = config.DefaultRenewBefore.D()
	}
	return renew.New(renew.Options{
		Bridge: name, StateDir: cfg.StateDir, Source: src, Swapper: b, KeyType: kt,
		Before: before, RetryMin: rc.RetryMin.D(), RetryMax: rc.RetryMax.D(), SwapTimeout: rc.SwapTimeout.D(),
		Log: log, OnEvent: onEvent,
	}, tc.Certificates[0], key, uri)
}

// RenewAudit is the audit event of a renewal's event.
func RenewAudit(e renew.Event) audit.Event {
	ev := audit.Event{Resource: "bridge/" + e.Bridge, Serial: e.Serial, Reason: e.Reason}
	switch e.Kind {
	case renew.EventRenewed:
		ev.Event = audit.EventIdentityRenewed
		ev.Reason = fmt.Sprintf("replaces serial %s; not after %s", e.OldSerial, e.NotAfter.UTC().Format(time.RFC3339))
	case renew.EventFailed:
		ev.Event, ev.Serial = audit.EventIdentityRenewFailed, e.OldSerial
	case renew.EventKeyDestroyed:
		ev.Event, ev.Reason = audit.EventIdentityKeyDestroyed, "key "+e.Key
	}
	return ev
}

func readPool(file string) (*x509.CertPool, error) {
	certs, err := listen.ReadCertChain(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// identityKeyURI is the URI of the key BridgeTLS opens for b: the renewed
// identity's or tls.key, "auto" resolved as BridgeTLS resolves it.
func identityKeyURI(ctx context.Context, cfg *config.Config, b *config.BridgeConfig) (string, error) {
	id, err := renew.Current(cfg.StateDir, b.BridgeName(), b.TLS.Cert, b.TLS.Key)
	if err != nil {
		return "", err
	}
	if id.Key != "" && id.Key != "auto" {
		return id.Key, nil
	}
	c, err := hw.Auto(ctx, hw.WithStateDir(cfg.StateDir))
	if err != nil {
		return "", err
	}
	return c.URI, nil
}

// startRenewers runs the links' renewers until ctx ends (u.wg).
func (u *Uplink) startRenewers(ctx context.Context) {
	for _, l := range u.links {
		if l.renewer == nil {
			continue
		}
		u.wg.Add(1)
		go func() {
			defer u.wg.Done()
			l.renewer.Run(ctx)
		}()
	}
}

// Renewals returns the state of every bridge whose certificate renews
// itself (tls.renew), in config order.
func (u *Uplink) Renewals() []renew.State {
	if u == nil {
		return nil
	}
	var out []renew.State
	for _, l := range u.links {
		if l.renewer != nil {
			out = append(out, l.renewer.State())
		}
	}
	return out
}

// ErrNoRenewal: the bridge has no tls.renew.
var ErrNoRenewal = errors.New("no tls.renew for this bridge")

// RenewIdentity renews bridge's certificate now (`edgegw key rotate`); ""
// is the first bridge.
func (u *Uplink) RenewIdentity(ctx context.Context, bridgeName string) error {
	if u == nil {
		return errors.New("gateway not running with a bridge")
	}
	for i, l := range u.links {
		if bridgeName == l.name || bridgeName == "" && i == 0 {
			if l.renewer == nil {
				return fmt.Errorf("bridge %s: %w", l.name, ErrNoRenewal)
			}
			return l.renewer.Renew(ctx)
		}
	}
	return fmt.Errorf("no bridge %q", bridgeName)
}

// reloadIdentities is the SIGHUP reload of the bridges' identities (nc's
// tls.cert and tls.key, or a renewed identity): a bridge whose certificate
// on disk is not the one it presents swaps to it in the background (one
// reconnect; the old one stays on failure, logged). Links and nc's bridges
// are the same ones, in order (ReloadRoutes checked).
func (u *Uplink) reloadIdentities(nc *config.Config) {
	for i, bc := range nc.BridgeList() {
		l := u.links[i]
		if bc.TLS == nil || bc.TLS.Cert == "" {
			continue
		}
		log := u.log.With("component", "upstream", "bridge", l.name)
		ctx := context.Background()
		tc, key, err := BridgeTLS(ctx, nc, bc, nc.BridgePath(i), slog.New(slog.DiscardHandler))
		if err != nil {
			log.Error("reload: the bridge's identity on disk is unusable, keeping the one in use", "err", err)
			continue
		}
		cur := l.bridge.Identity()
		if key == nil || cur != nil && cur.Leaf != nil && cur.Leaf.Equal(tc.Certificates[0].Leaf) {
			if key != nil {
				_ = key.Close()
			}
			continue
		}
		uri, err := identityKeyURI(ctx, nc, bc)
		if err != nil {
			_ = key.Close()
			log.Error("reload: the bridge's identity on disk is unusable, keeping the one in use", "err", err)
			continue
		}
		cert := tc.Certificates[0]
		log.Info("reload: a new upstream certificate; reconnecting under it", "serial", cert.Leaf.SerialNumber.Text(16), "key", hw.Redact(uri))
		u.wg.Add(1)
		go func() {
			defer u.wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var err error
			if l.renewer != nil {
				err = l.renewer.Install(ctx, cert, key, uri)
			} else if err = l.bridge.SwapIdentity(ctx, cert); err == nil {
				u.mu.Lock()
				old := l.key
				l.key = key
				u.mu.Unlock()
				if old != nil {
					_ = old.Close()
				}
			}
			if err != nil {
				_ = key.Close()
				log.Error("reload: the new upstream certificate did not connect; the old one stays in use", "err", err)
			}
		}()
	}
}

// liveTLS is t without what reloadIdentities applies live (cert, key), for
// comparing what needs a restart.
func liveTLS(t *config.ClientTLS) *config.ClientTLS {
	if t == nil {
		return nil
	}
	c := *t
	c.Cert, c.Key = "", ""
	return &c
}
