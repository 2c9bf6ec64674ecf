package config

import (
	"net"

	"github.com/edgegw/edgegw/gateway/loopback"
)

// MetricsTLS serves the metrics listener (/metrics, /healthz and the status
// page) over TLS and asks for a client certificate from CA: the site CA, so
// the site engineer's laptop gets one with `edgegw pki issue LAPTOP --type
// operator`. The status page then admits only a certificate whose thing the
// registry lists with type "operator" (or basic auth, see BasicAuthFile).
//
//	metrics:
//	  address: "0.0.0.0:9641"
//	  tls: {ca: pki/ca.crt, cert: pki/server.crt, key: "file:pki/server.key"}
//	  basic_auth_file: status.passwd   # optional: bcrypt user:hash lines (edgegw passwd)
type MetricsTLS struct {
	CA   string `yaml:"ca"`   // client certificates must chain to it
	Cert string `yaml:"cert"` // server certificate chain (PEM)
	Key  string `yaml:"key"`  // key URI (see hw.ResolveURI)
}

// OperatorType is the thing type whose certificate opens the status page.
const OperatorType = "operator"

// StatusPageOpen reports whether the status page may be served without
// authentication: on a loopback metrics address without TLS. On a LAN
// address without metrics.tls the page is refused (metrics and /healthz are
// served as before).
func (m *MetricsConfig) StatusPageOpen() bool {
	if m.TLS != nil {
		return false
	}
	host, _, err := net.SplitHostPort(m.Address)
	return err == nil && host != "" && loopback.Host(host)
}

func (m *MetricsConfig) validatePage(r *report, p string) {
	if t := m.TLS; t != nil {
		if t.CA == "" {
			r.add(p+".tls.ca", "required: the CA client certificates must chain to (the site CA, e.g. pki/ca.crt)")
		}
		if t.Cert == "" {
			r.add(p+".tls.cert", "required: the server certificate, e.g. pki/server.crt")
		}
		validateKeyURI(r, p+".tls.key", t.Key, true)
	}
	if m.BasicAuthFile != "" && m.TLS == nil {
		r.add(p+".basic_auth_file", "needs metrics.tls: a password is never sent over plain HTTP")
	}
}
