package config

import (
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// Renew is a bridge's tls.renew: the gateway renews its own upstream
// certificate (gateway/renew) Before its expiry, with a new key made where
// the current one lives, signed by Source:
//
//	aws  AWS IoT's fleet-provisioning MQTT API over the live upstream
//	     connection: $aws/certificates/create-from-csr/json, then the
//	     provisioning Template's RegisterThing with Parameters
//	est  RFC 7030 simplereenroll at EST (https://host[:port]), authenticated
//	     by the current certificate, the server verified against ESTCA
//	     (default tls.ca)
type Renew struct {
	Source     string            `yaml:"source"`     // aws | est
	Before     Duration          `yaml:"before"`     // renew this long before not_after; default 30d
	Template   string            `yaml:"template"`   // aws: the provisioning template (required)
	Parameters map[string]string `yaml:"parameters"` // aws: RegisterThing parameters
	EST        string            `yaml:"est"`        // est: the server's base URL (required)
	ESTLabel   string            `yaml:"est_label"`  // est: the CA label (RFC 7030 3.2.2), optional
	ESTCA      string            `yaml:"est_ca"`     // est: trust for the EST server; default tls.ca
	KeyType    string            `yaml:"key_type"`   // p256 (default) | rsa2048
	// RetryMin and RetryMax bound the backoff after a failed renewal;
	// default 1m and 6h.
	RetryMin Duration `yaml:"retry_min"`
	RetryMax Duration `yaml:"retry_max"`
	// SwapTimeout bounds the reconnection under the new certificate before
	// the old one is put back; default 1m.
	SwapTimeout Duration `yaml:"swap_timeout"`
}

// Renewal sources.
const (
	RenewAWS = "aws"
	RenewEST = "est"
)

// DefaultRenewBefore is tls.renew.before when left out.
const DefaultRenewBefore = Duration(30 * 24 * time.Hour)

func (n *Renew) validate(r *report, p string, t *ClientTLS) {
	p += ".tls.renew"
	if t.Cert == "" {
		r.add(p, "renewal needs tls.cert and tls.key: the identity to renew")
	}
	switch n.Source {
	case RenewAWS:
		if n.Template == "" {
			r.add(p+".template", "required with source aws: the provisioning template's name, e.g. gateway-renewal")
		}
	case RenewEST:
		if u, err := url.Parse(n.EST); err != nil || u.Scheme != "https" || u.Host == "" {
			r.add(p+".est", "%q: want the EST server's https:// base URL, e.g. https://est.example:8443", n.EST)
		}
	default:
		r.add(p+".source", "%q: want aws (AWS IoT's create-from-csr over the upstream connection) or est (RFC 7030 simplereenroll)", n.Source)
	}
	switch n.KeyType {
	case "", "p256", "rsa2048":
	default:
		r.add(p+".key_type", "%q: want p256 or rsa2048", n.KeyType)
	}
	if n.Before < 0 {
		r.add(p+".before", "must not be negative, e.g. 30d")
	}
	if n.RetryMax != 0 && n.RetryMax < n.RetryMin {
		r.add(p+".retry_max", "%s: must not be less than retry_min (%s)", n.RetryMax, n.RetryMin)
	}
}

// BridgeRenewDir is where bridge name keeps its renewed identity
// (gateway/renew: identity.json and the certificates it names).
func (c *Config) BridgeRenewDir(name string) string {
	return filepath.Join(c.StateDir, "renew", name)
}

// renewed reports whether bridge name runs on a renewed identity: then
// tls.cert and tls.key may be gone (the old key is destroyed after a
// renewal) and the identity is checked where it is loaded (uplink.BridgeTLS).
func (c *Config) renewed(name string) bool {
	_, err := os.Stat(filepath.Join(c.BridgeRenewDir(name), "identity.json"))
	return err == nil
}
