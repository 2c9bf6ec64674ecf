package gatewaytest

import (
	"crypto/tls"
	"fmt"
	"net/url"
	"path/filepath"
	"testing"
)

// The client certificates of an Upstream, by common name (the ACL user).
const (
	GatewayCN = "plant-7-gw" // the gateway's bridge: may use sites/plant-7/#
	CloudCN   = "cloud"      // a cloud-side application: may use sites/#
)

// Upstream is Debian's mosquitto as the cloud broker of the bridge tests
// (bridge, cmd/edgegw), started with StartMosquitto: mutual TLS with its own
// throwaway PKI (CN is the user name), an ACL, and persistence, so that the
// cloud subscriber's session and the messages queued for it survive Stop and
// Start. Tests stop and start it on the same port to make outages.
type Upstream struct {
	*Mosquitto // Addr, Dir, LogPath; Start, Stop, Kill, PID
	PKI        *PKI
	Gateway    *Client // CN GatewayCN
	Cloud      *Client // CN CloudCN
}

// UpstreamOptions tune the broker's config.
type UpstreamOptions struct {
	// MaxQueued is max_queued_messages for the cloud subscriber; 0 means no
	// limit to Mosquitto, but Mosquitto 2.0.11 with 0 closes a client's
	// connection right after a PUBACK 0x87 (its quota check then always
	// trips): use a large number where refused messages must not turn into
	// reconnects.
	MaxQueued int
	// MaxInflight is max_inflight_messages (the Receive Maximum it
	// announces); 0 keeps Mosquitto's default (20).
	MaxInflight int
	QoS0Only    bool   // max_qos 0: CONNACK announces Maximum QoS 0
	TLSVersion  string // tls_version, e.g. "tlsv1.2"; "" allows what Mosquitto allows
	Extra       string // appended to the config
	// Topics are more ACL topic patterns both users may read and write
	// (e.g. "$aws/things/#" for shadow sync).
	Topics []string
}

// NewUpstream writes the PKI and ACL and starts the broker on a free
// loopback port; it is stopped (and its log shown on failure) at cleanup.
func NewUpstream(t testing.TB, o UpstreamOptions) *Upstream {
	t.Helper()
	Need(t, "mosquitto", "mosquitto")
	u := &Upstream{PKI: NewPKI(t, "upstream")}
	u.Gateway = u.PKI.Issue(t, GatewayCN)
	u.Cloud = u.PKI.Issue(t, CloudCN)
	acl := filepath.Join(t.TempDir(), "acl")
	var more string
	for _, tp := range o.Topics {
		more += "topic readwrite " + tp + "\n"
	}
	WriteFile(t, acl, fmt.Appendf(nil, "user %s\ntopic readwrite sites/plant-7/#\n%s\nuser %s\ntopic readwrite sites/#\n%s", GatewayCN, more, CloudCN, more), 0o600)
	maxQueued := o.MaxQueued
	if maxQueued == 0 {
		maxQueued = NoQueueLimit
	}
	u.Mosquitto = StartMosquitto(t, MosquittoConfig{
		PKI: u.PKI, ClientCerts: true, TLSVersion: o.TLSVersion,
		ACLFile: acl, Persistence: true,
		MaxQueued: maxQueued, MaxInflight: o.MaxInflight, QoS0Only: o.QoS0Only,
		Extra: o.Extra,
	})
	return u
}

// URL is the broker's mqtts:// URL.
func (u *Upstream) URL() *url.URL { return &url.URL{Scheme: "mqtts", Host: u.Addr} }

// TLSFor is a client TLS config with c's certificate, trusting the
// upstream's CA, with no ServerName (the dialer sets it).
func (u *Upstream) TLSFor(c *Client) *tls.Config {
	tc := u.PKI.ClientTLS(c)
	tc.ServerName = ""
	return tc
}
