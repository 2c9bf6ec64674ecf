package brokerconf

import (
	"context"
	"crypto/tls"
	"fmt"
	"math"

	"github.com/edgegw/edgegw/gateway/broker"
	"github.com/edgegw/edgegw/gateway/broker/listen"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/hw"
)

// Options translates the config into broker options. Keys are opened
// through hw (file, TPM, PKCS#11) and returned for closing. The caller adds
// the runtime parts (logger, audit log, presence, outbound path).
func Options(ctx context.Context, cfg *config.Config) (broker.Options, []hw.Key, error) {
	o := broker.Options{Registry: cfg.Devices, Policies: cfg.Policies}
	var keys []hw.Key
	fail := func(err error) (broker.Options, []hw.Key, error) {
		for _, k := range keys {
			_ = k.Close()
		}
		return broker.Options{}, nil, err
	}
	for i, l := range cfg.Listeners {
		src, err := listen.ParseIdentitySource(l.Identity)
		if err != nil {
			return fail(fmt.Errorf("listeners[%d] (%s): %w", i, l.Name, err))
		}
		lo := broker.ListenerOptions{Name: l.Name, Address: l.Address, Identity: src, PasswordFile: l.PasswordFile, Thing: l.Thing}
		if t := l.TLS; t != nil {
			k, err := hw.Open(ctx, t.Key, hw.WithStateDir(cfg.StateDir))
			if err != nil {
				return fail(fmt.Errorf("listeners[%d] (%s): opening server key: %w", i, l.Name, err))
			}
			keys = append(keys, k)
			minV := uint16(tls.VersionTLS12)
			if t.MinVersion == "1.3" {
				minV = tls.VersionTLS13
			}
			lo.Key = k
			lo.TLS = &listen.TLSFiles{CA: t.CA, Cert: t.Cert, CRL: t.CRL, MinVersion: minV, RequireClientCert: t.ClientAuth != "none"}
		}
		if l.Authorizer != nil {
			ac := Authorizer(l.Authorizer)
			lo.Authorizer = &ac
		}
		o.Listeners = append(o.Listeners, lo)
	}
	o.Limits = Limits(cfg.Limits)
	return o, keys, nil
}

// Limits is the broker's defaults (broker.DefaultLimits) with the limits
// the config file sets (validated: more than 0 when set).
func Limits(lc config.LimitsConfig) broker.Limits {
	l := broker.DefaultLimits()
	override(&l.HandshakeTimeout, int64(lc.HandshakeTimeout), math.MaxInt64)
	override(&l.MaxPendingHandshakes, int64(lc.MaxPendingHandshakes), math.MaxInt)
	override(&l.MaxPacketSize, lc.MaxPacketSize.Bytes(), 256<<20)
	override(&l.MaxClients, int64(lc.MaxClients), math.MaxInt64)
	override(&l.ClientWriteQueue, int64(lc.ClientWriteQueue), 1<<20)
	override(&l.ReceiveMaximum, int64(lc.ReceiveMaximum), 65535)
	override(&l.SessionExpiryMax, int64(lc.SessionExpiryMax), math.MaxInt64)
	override(&l.SessionMaxMessages, int64(lc.SessionMaxMessages), math.MaxInt)
	override(&l.SessionMaxBytes, lc.SessionMaxBytes.Bytes(), math.MaxInt64)
	override(&l.RetainedMaxMessages, int64(lc.RetainedMaxMessages), math.MaxInt)
	override(&l.RetainedMaxBytes, lc.RetainedMaxBytes.Bytes(), math.MaxInt64)
	override(&l.MaxTopicLength, int64(lc.MaxTopicLength), math.MaxInt)
	override(&l.MaxTopicLevels, int64(lc.MaxTopicLevels), math.MaxInt)
	return l
}

// override sets *dst to v, at most most, when the config set it (v > 0).
func override[T ~int | ~int32 | ~int64 | ~uint16 | ~uint32](dst *T, v, most int64) {
	if v > 0 {
		*dst = T(min(v, most))
	}
}
