package bridge

// Test helper: a Debian Mosquitto upstream whose clients authenticate with
// a user name and password (mosquitto_passwd file) over server-only TLS, the
// setup of many older brokers a 3.1.1 bridge meets. It is the mosquitto type
// of mosq_test.go (start, stop, kill, PKI) with its own config.

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// Passwords of the two users the password upstream knows.
const (
	gatewayPassword = "gw-secret-\u00e9-1"
	cloudPassword   = "cloud-secret-2"
)

type authMosqOpts struct {
	// autosave makes Mosquitto save its persistence every second, so the
	// test subscriber's session survives a kill -9 (SIGTERM saves anyway).
	autosave bool
	// certificates: clients log in with their certificate (CN as user
	// name, as startMosquitto) instead of the password file.
	certificates bool
	// topics the gateway may use (ACL patterns); default sites/plant-7/#.
	gatewayTopics []string
}

// startMosquittoAuth starts Mosquitto (gatewaytest.StartMosquitto) with a
// TLS listener (server certificate only), password_file with users gatewayCN
// and cloudCN, and the same ACL as startMosquitto, persistence, no limit on
// queued messages and max_inflight_messages 1000; see authMosqOpts for the
// variants.
func startMosquittoAuth(t testing.TB, o authMosqOpts) *mosquitto {
	t.Helper()
	passwdBin := gatewaytest.Need(t, "mosquitto_passwd", "mosquitto")
	pki := gatewaytest.NewPKI(t, "upstream")
	dir := t.TempDir()
	pw := filepath.Join(dir, "passwd")
	for i, u := range [][2]string{{gatewayCN, gatewayPassword}, {cloudCN, cloudPassword}} {
		args := []string{"-b", pw, u[0], u[1]}
		if i == 0 {
			args = append([]string{"-c"}, args...)
		}
		if out, err := exec.Command(passwdBin, args...).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd %s: %v: %s", u[0], err, out)
		}
	}
	gwTopics := o.gatewayTopics
	if len(gwTopics) == 0 {
		gwTopics = []string{"sites/plant-7/#"}
	}
	var acl strings.Builder
	fmt.Fprintf(&acl, "user %s\n", gatewayCN)
	for _, tp := range gwTopics {
		fmt.Fprintf(&acl, "topic readwrite %s\n", tp)
	}
	fmt.Fprintf(&acl, "\nuser %s\ntopic readwrite sites/#\ntopic readwrite devices/#\n", cloudCN)
	aclPath := filepath.Join(dir, "acl")
	gatewaytest.WriteFile(t, aclPath, []byte(acl.String()), 0o600)
	c := gatewaytest.MosquittoConfig{
		PKI: pki, ACLFile: aclPath, PasswordFile: pw,
		Persistence: true, MaxQueued: gatewaytest.NoQueueLimit, MaxInflight: 1000,
	}
	if o.certificates {
		c.ClientCerts, c.PasswordFile = true, ""
	}
	if o.autosave {
		c.AutosaveInterval = 1
	}
	return newMosquitto(gatewaytest.StartMosquitto(t, c), pki, pki.Issue(t, gatewayCN), pki.Issue(t, cloudCN))
}

// serverTLS is the client TLS config that trusts the upstream's server
// certificate, without a client certificate.
func (m *mosquitto) serverTLS() *tls.Config {
	return &tls.Config{RootCAs: m.pool, MinVersion: tls.VersionTLS12}
}

// startCloudPassword connects the cloud-side subscriber with its user name
// and password; parse reads the bridge's envelope.
func startCloudPassword(t testing.TB, m *mosquitto, filter string, env Envelope) *cloud {
	t.Helper()
	return startCloudAs(t, cloudIdentity{
		dial: func(ctx context.Context) (net.Conn, error) {
			d := tls.Dialer{Config: m.serverTLS()}
			return d.DialContext(ctx, "tcp", m.url().Host)
		},
		user: cloudCN, password: []byte(cloudPassword),
		parse: envelopeParser(env),
	}, filter)
}

// writePasswordFile writes the gateway's password in a 0600 file.
func writePasswordFile(t testing.TB, password string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "upstream.pass")
	gatewaytest.WriteFile(t, p, []byte(password+"\n"), 0o600)
	return p
}

// config311 is testConfig for the password upstream over MQTT 3.1.1.
func config311(t testing.TB, m *mosquitto, env Envelope, routes ...Route) Config {
	cfg := testConfig(m, routes...)
	cfg.Protocol = MQTT311
	cfg.Envelope = env
	cfg.TLS = m.serverTLS()
	cfg.Username = gatewayCN
	cfg.PasswordFile = writePasswordFile(t, gatewayPassword)
	return cfg
}

// spokeMQTT311 reports whether Mosquitto's log shows clientID connected
// with protocol 3.1.1 (Mosquitto logs "p2" for 3.1.1, "p5" for 5).
func (m *mosquitto) spokeMQTT311(clientID string) bool {
	return strings.Contains(string(m.Log()), " as "+clientID+" (p2,")
}
