package bridge

// Test helper: a Debian Mosquitto upstream whose clients authenticate with
// a user name and password (mosquitto_passwd file) over server-only TLS, the
// setup of many older brokers a 3.1.1 bridge meets. It reuses the mosquitto
// type of mosq_test.go (start, stop, PKI) with its own config.

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// startMosquittoAuth starts Mosquitto with a TLS listener (server
// certificate only), password_file with users gatewayCN and cloudCN, and
// the same ACL as startMosquitto; see authMosqOpts for the variants.
func startMosquittoAuth(t testing.TB, o authMosqOpts) *mosquitto {
	t.Helper()
	if _, err := os.Stat("/usr/sbin/mosquitto"); err != nil {
		t.Fatalf("mosquitto not found: run `make deps` (apt-get install mosquitto mosquitto-clients): %v", err)
	}
	passwdBin, err := exec.LookPath("mosquitto_passwd")
	if err != nil {
		t.Fatalf("mosquitto_passwd not found: run `make deps` (apt-get install mosquitto): %v", err)
	}
	m := &mosquitto{t: t, dir: t.TempDir(), certs: map[string]tls.Certificate{}}
	m.writePKI()
	m.port = freePort(t)
	m.logPath = filepath.Join(m.dir, "mosquitto.log")
	pw := m.path("passwd")
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
	writeFile(t, m.path("acl"), acl.String(), 0o600)
	var conf strings.Builder
	fmt.Fprintf(&conf, "per_listener_settings false\nlistener %d 127.0.0.1\n", m.port)
	fmt.Fprintf(&conf, "certfile %s\nkeyfile %s\n", m.path("server.crt"), m.path("server.key"))
	if o.certificates {
		fmt.Fprintf(&conf, "cafile %s\nrequire_certificate true\nuse_identity_as_username true\n", m.path("ca.crt"))
		fmt.Fprintf(&conf, "allow_anonymous false\nacl_file %s\n", m.path("acl"))
	} else {
		fmt.Fprintf(&conf, "allow_anonymous false\npassword_file %s\nacl_file %s\n", pw, m.path("acl"))
	}
	fmt.Fprintf(&conf, "persistence true\npersistence_location %s/\nmax_queued_messages 0\nmax_inflight_messages 1000\n", m.dir)
	if o.autosave {
		conf.WriteString("autosave_interval 1\n")
	}
	fmt.Fprintf(&conf, "log_dest file %s\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\n", m.logPath)
	if os.Geteuid() == 0 {
		conf.WriteString("user root\n")
	}
	m.conf = m.path("mosquitto.conf")
	writeFile(t, m.conf, conf.String(), 0o600)
	t.Cleanup(func() {
		m.stop()
		if t.Failed() {
			b, _ := os.ReadFile(m.logPath)
			t.Logf("mosquitto log (%s), last 4 KiB:\n%s", m.logPath, tail(b, 4096))
		}
	})
	m.start()
	return m
}

// kill ends Mosquitto with SIGKILL: no persistence save, no goodbye.
func (m *mosquitto) kill() {
	m.t.Helper()
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Kill()
	select {
	case <-m.exited:
	case <-time.After(10 * time.Second):
		m.t.Fatalf("mosquitto did not exit within 10s of SIGKILL")
	}
	m.cmd = nil
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
	writeFile(t, p, password+"\n", 0o600)
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
	b, _ := os.ReadFile(m.logPath)
	return strings.Contains(string(b), " as "+clientID+" (p2,")
}
