package uplink

// The config translations of the durable path and the links: queue
// options, routes, the bridges' TLS and bridge.Config, and the check of the
// bridges that `edgegw check` and the daemon share.

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"

	"github.com/edgegw/edgegw/bridge"
	"github.com/edgegw/edgegw/gateway/broker/listen"
	"github.com/edgegw/edgegw/gateway/clock"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/renew"
	"github.com/edgegw/edgegw/gateway/shadowrun"
	"github.com/edgegw/edgegw/hw"
	"github.com/edgegw/edgegw/store"
)

// StoreOptionsFromConfig translates the store section and the out routes of
// the bridge named default into the options of the queue in store.dir (the
// `edgegw queue` commands' queue). The encryption key is read through
// hw.OpenSecret (file: or tpm-sealed:, created on first use in the TPM case).
func StoreOptionsFromConfig(ctx context.Context, cfg *config.Config) (store.Options, error) {
	var def *config.BridgeConfig
	for _, b := range cfg.BridgeList() {
		if b.BridgeName() == config.DefaultBridgeName {
			def = b
		}
	}
	return StoreOptionsForBridge(ctx, cfg, def)
}

// StoreOptionsForBridge is the queue options of bridge b (nil: a queue with
// no routes in store.dir): its own directory (config.BridgeQueueDir), its
// out routes, and the store section's limits and key, which every bridge's
// queue shares (store.max_bytes caps each queue; store.min_free guards the
// one disk).
func StoreOptionsForBridge(ctx context.Context, cfg *config.Config, b *config.BridgeConfig) (store.Options, error) {
	o := store.Options{
		Dir:          cfg.Store.Dir,
		MaxBytes:     cfg.Store.MaxBytes.Bytes(),
		MinFreeBytes: uint64(max(cfg.Store.MinFree.Bytes(), 0)),
		Clock:        clock.Process().AgeNow,
	}
	if b != nil {
		o.Dir = cfg.BridgeQueueDir(b.BridgeName())
		o.Routes = RouteLimitsFromConfig(b.Routes)
		if shadowBridge(cfg, b) {
			o.Routes = append(o.Routes, shadowrun.RouteLimits(cfg)...)
		}
	}
	if uri := cfg.Store.EncryptionKey; uri != "" {
		k, err := hw.OpenSecret(ctx, uri)
		if err != nil {
			return store.Options{}, fmt.Errorf("store.encryption_key: %w", err)
		}
		o.EncryptionKey = k
	}
	return o, nil
}

// EnsureQueueKey creates the queue's encryption key on the daemon's first
// start: only when no bridge's queue directory exists yet or all are empty,
// so a lost key file next to an existing queue stays an error (a fresh key
// could not read it) instead of being silently replaced. The edgegw queue
// commands never create a key; they use StoreOptionsFromConfig alone.
func EnsureQueueKey(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	uri := cfg.Store.EncryptionKey
	if uri == "" {
		return nil
	}
	dirs := []string{cfg.Store.Dir}
	for _, b := range cfg.BridgeList() {
		dirs = append(dirs, cfg.BridgeQueueDir(b.BridgeName()))
	}
	for _, dir := range dirs {
		if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
			return nil
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("store.dir: %w", err)
		}
	}
	_, created, err := hw.OpenOrCreateSecret(ctx, uri)
	if err != nil {
		return fmt.Errorf("store.encryption_key: %w", err)
	}
	if created {
		log.Info("created a new queue encryption key; back it up with the queue if you move it", "component", "queue", "key", hw.Redact(uri))
	}
	return nil
}

// RouteLimitsFromConfig returns the queue limits of the routes that own a
// queue (direction out or both).
func RouteLimitsFromConfig(routes []config.Route) []store.RouteLimits {
	var out []store.RouteLimits
	for _, r := range routes {
		if r.Direction != config.DirectionOut && r.Direction != config.DirectionBoth {
			continue
		}
		ov := store.DropOldest
		if r.Overflow == config.OverflowReject {
			ov = store.Reject
		}
		out = append(out, store.RouteLimits{
			Name: r.ID(), MaxBytes: r.MaxBytes.Bytes(), MaxMessages: r.MaxMessages,
			MaxAge: r.MaxAge.D(), Overflow: ov, Priority: r.Priority,
		})
	}
	return out
}

// BridgeRoutesFromConfig translates config routes into bridge routes.
func BridgeRoutesFromConfig(routes []config.Route) ([]bridge.Route, error) {
	out := make([]bridge.Route, 0, len(routes))
	for i, r := range routes {
		d, err := bridge.ParseDirection(r.Direction)
		if err != nil {
			return nil, fmt.Errorf("bridge.routes[%d]: %w", i, err)
		}
		out = append(out, bridge.Route{
			Name: r.ID(), Topic: r.Topic, Direction: d, QoS: byte(min(max(r.QoS, 0), 2)),
			LocalPrefix: r.LocalPrefix, RemotePrefix: r.RemotePrefix, Priority: r.Priority,
		})
	}
	return out, nil
}

// UpstreamTLS is BridgeTLS for the first bridge (bridge: or bridges[0]).
func UpstreamTLS(ctx context.Context, cfg *config.Config, log *slog.Logger) (*tls.Config, hw.Key, error) {
	bs := cfg.BridgeList()
	if len(bs) == 0 {
		return nil, nil, nil
	}
	return BridgeTLS(ctx, cfg, bs[0], cfg.BridgePath(0), log)
}

// BridgeTLS builds bridge b's client TLS config towards its upstream: the
// gateway's certificate (chain) from tls.cert with its private key behind
// the key URI (file, TPM, PKCS#11, or "auto": TPM when one answers, else a
// 0600 file in state_dir; the choice and its reason are logged), the
// upstream CA bundle (system roots when tls.ca is empty), TLS 1.2 at least,
// and the clock guard for certificate validity. Without tls.cert (a bridge
// that logs in with a username) the config only verifies the server.
// ServerName is set per upstream by the bridge. p is the key path in
// errors (bridge or bridges[i]). The returned key (nil without a
// certificate) must be closed by the caller.
// The identity is tls.cert and tls.key, or the renewed one in state_dir
// when it is newer (renew.Current).
func BridgeTLS(ctx context.Context, cfg *config.Config, b *config.BridgeConfig, p string, log *slog.Logger) (*tls.Config, hw.Key, error) {
	if b == nil || b.TLS == nil {
		return nil, nil, nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := b.TLS
	tc := &tls.Config{MinVersion: tls.VersionTLS12, Time: clock.Process().Now}
	if t.CA != "" {
		data, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, nil, fmt.Errorf("%s.tls.ca: %w", p, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(data) {
			return nil, nil, fmt.Errorf("%s.tls.ca: %s holds no PEM certificate", p, t.CA)
		}
		tc.RootCAs = pool
	}
	if t.Cert == "" {
		return tc, nil, nil
	}
	id, err := renew.Current(cfg.StateDir, b.BridgeName(), t.Cert, t.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("%s.tls: %w", p, err)
	}
	if id.Renewed {
		t = &config.ClientTLS{CA: t.CA, Cert: id.Cert, Key: id.Key}
		log.Info("upstream identity: the renewed one", "bridge", b.BridgeName(), "cert", id.Cert)
	}
	certs, err := listen.ReadCertChain(t.Cert)
	if err != nil {
		return nil, nil, fmt.Errorf("%s.tls.cert: %w", p, err)
	}
	leaf := certs[0]
	chain := make([][]byte, len(certs))
	for i, c := range certs {
		chain[i] = c.Raw
	}
	uri := t.Key
	if uri == "" {
		uri = "auto"
	}
	opts := []hw.Option{hw.WithStateDir(cfg.StateDir)}
	if uri == "auto" {
		c, err := hw.Auto(ctx, opts...)
		if err != nil {
			return nil, nil, fmt.Errorf("%s.tls.key: %w", p, err)
		}
		log.Info("upstream key: auto", "bridge", b.BridgeName(), "key", hw.Redact(c.URI), "reason", c.Reason, "exists", c.Exists)
		if !c.Exists {
			// No key yet, so the certificate on disk cannot be its. Not
			// created here: `edgegw check` runs this too (the gateway's Preflight),
			// often as root, and a key root made is one the daemon cannot read.
			return nil, nil, fmt.Errorf("%s.tls.key: auto: there is no key yet (it will be %s), so %s cannot belong to it: make the key and its CSR as the daemon's user (sudo -u edgegw edgegw key csr --key auto --cn %s), have the upstream's CA sign it and install the certificate as %s",
				p, hw.Redact(c.URI), t.Cert, b.ClientID, t.Cert)
		}
		uri = c.URI
	}
	key, err := hw.Open(ctx, uri, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("%s.tls.key: %w", p, err)
	}
	if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(leaf.PublicKey) {
		_ = key.Close()
		return nil, nil, fmt.Errorf("%s.tls: the certificate %s (CN %q) does not belong to the key %s: install the certificate issued for this key (its CSR: `edgegw key csr --key %s --cn %s`)",
			p, t.Cert, leaf.Subject.CommonName, hw.Redact(uri), hw.Redact(t.Key), b.ClientID)
	}
	tc.Certificates = []tls.Certificate{{Certificate: chain, PrivateKey: key, Leaf: leaf}}
	log.Info("upstream identity", "bridge", b.BridgeName(), "cert", t.Cert, "cn", leaf.Subject.CommonName, "serial", leaf.SerialNumber.Text(16),
		"not_after", leaf.NotAfter.UTC().Format("2006-01-02"), "key", hw.Redact(uri))
	return tc, key, nil
}

// BridgeConfigFromConfig translates a bridge section (tc from BridgeTLS).
// What the file left out stays zero: the bridge and its profile own the
// defaults.
func BridgeConfigFromConfig(b *config.BridgeConfig, tc *tls.Config) (bridge.Config, error) {
	bc := bridge.Config{
		Name:           b.Name,
		ClientID:       b.ClientID,
		TLS:            tc,
		KeepAlive:      b.Keepalive.D(),
		ConnectTimeout: b.ConnectTimeout.D(),
		BackoffMin:     b.Backoff.Min.D(),
		BackoffMax:     b.Backoff.Max.D(),
		Inflight:       b.Inflight,
		DrainRate:      float64(b.DrainRate),
		UserProps:      bridge.UserProps{DeviceKey: b.UserProperties.Device, SeqKey: b.UserProperties.Seq},
		Username:       b.Username,
		PasswordFile:   b.PasswordFile,
		Envelope:       bridge.Envelope(b.Envelope),
		ALPN:           b.ALPN,
		MaxPayload:     int(b.MaxPayload.Bytes()),
		MaxRate:        float64(b.MaxRate),
	}
	name := b.BridgeName()
	if b.Profile != "" {
		pr, err := bridge.ParseProfile(b.Profile)
		if err != nil {
			return bridge.Config{}, fmt.Errorf("bridge %s: %w", name, err)
		}
		bc.Profile = pr
	}
	if b.Protocol != "" {
		pr, err := bridge.ParseProtocol(b.Protocol)
		if err != nil {
			return bridge.Config{}, fmt.Errorf("bridge %s: %w", name, err)
		}
		bc.Protocol = pr
	}
	if b.Proxy != "" {
		pu, err := url.Parse(b.Proxy)
		if err != nil {
			return bridge.Config{}, fmt.Errorf("bridge %s: proxy: %w", name, err)
		}
		bc.Proxy = pu
	}
	for i, u := range b.Upstreams {
		pu, err := url.Parse(u.URL)
		if err != nil {
			return bridge.Config{}, fmt.Errorf("bridge %s: upstreams[%d].url: %w", name, i, err)
		}
		bc.Upstreams = append(bc.Upstreams, bridge.Upstream{URL: pu, ServerName: u.ServerName, ALPN: u.ALPN})
	}
	routes, err := BridgeRoutesFromConfig(b.Routes)
	if err != nil {
		return bridge.Config{}, err
	}
	bc.Routes = routes
	return bc, nil
}

// CheckBridges is what `edgegw check` (and `edgegw run`, before it opens
// anything) asks package bridge about the config's bridges: together
// (bridge.CheckBridges: unique names, route names, client IDs per
// upstream), then each one's Check (the profile's defaults, settings and
// routes the cloud would refuse, naming its rule, and the password file's
// mode). Nothing is opened: the TLS identity is not loaded here
// (config.CheckFiles checks its files). It returns a *config.Error with the
// file:line of each bridge's section, or nil, and the bridges' warnings
// (bridge.Config.Warnings).
func CheckBridges(cfg *config.Config) (warnings []string, err error) {
	var cfgs []bridge.Config
	var fes []*config.FieldError
	add := func(p string, e error) {
		var ce *config.Error
		if errors.As(cfg.Errorf(p, "%v", e), &ce) {
			fes = append(fes, ce.Errors...)
		}
	}
	for i, b := range cfg.BridgeList() {
		p := cfg.BridgePath(i)
		var tc *tls.Config
		if b.TLS != nil {
			tc = &tls.Config{} // the identity's files are config.CheckFiles'
		}
		bc, err := BridgeConfigFromConfig(b, tc)
		if err != nil {
			add(p, err)
			continue
		}
		cfgs = append(cfgs, bc)
		if err := bc.Check(); err != nil {
			add(p, err)
			continue
		}
		warnings = append(warnings, bc.Warnings()...)
	}
	for _, e := range bridge.CheckBridges(cfgs) {
		add("bridges", e)
	}
	if w := strandedQueue(cfg); w != "" {
		warnings = append(warnings, w)
	}
	if len(fes) > 0 {
		return warnings, &config.Error{Errors: fes}
	}
	return warnings, nil
}

// strandedQueue warns when store.dir holds a queue (a site that had a
// bridge section, or a bridge named default) and no bridge is named
// default any more: nothing would send its messages.
func strandedQueue(cfg *config.Config) string {
	bs := cfg.BridgeList()
	if len(bs) == 0 {
		return ""
	}
	for _, b := range bs {
		if b.BridgeName() == config.DefaultBridgeName {
			return ""
		}
	}
	if ents, err := os.ReadDir(cfg.Store.Dir); err != nil || len(ents) == 0 {
		return ""
	}
	return fmt.Sprintf("store.dir %s holds the queue of the bridge named default (a bridge section's), but no bridge is named default: its messages are not sent; name the bridge that takes its place default", cfg.Store.Dir)
}

// shadowBridge reports whether b is the bridge that carries shadow sync: the
// first of the config's bridges.
func shadowBridge(cfg *config.Config, b *config.BridgeConfig) bool {
	bl := cfg.BridgeList()
	return len(bl) > 0 && bl[0] == b
}
