package gatewaytest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// MosquittoConfig is what a test wants of a Debian mosquitto broker: one
// loopback listener on a free port, and the options below. The zero value is
// a plaintext broker with anonymous clients, no persistence, Mosquitto's
// default limits and a log of errors, warnings, notices and information.
type MosquittoConfig struct {
	// PKI makes the listener TLS with the PKI's server certificate
	// (certfile, keyfile); nil is plaintext.
	PKI *PKI
	// ClientCerts asks for a client certificate signed by the PKI's CA
	// (cafile, require_certificate) whose CN is the user name
	// (use_identity_as_username). Needs PKI.
	ClientCerts bool
	// TLSVersion is tls_version, e.g. "tlsv1.2"; "" allows what Mosquitto
	// allows.
	TLSVersion string
	// AllowAnonymous is allow_anonymous: clients without a user name (or,
	// with ClientCerts, any certified client) may connect.
	AllowAnonymous bool
	// PasswordFile is password_file (mosquitto_passwd format); "" for none.
	PasswordFile string
	// ACLFile is acl_file; "" for none.
	ACLFile string
	// Persistence keeps sessions and queued messages in the broker's Dir
	// across Stop and Start (persistence, persistence_location).
	Persistence bool
	// AutosaveInterval is autosave_interval in seconds (with Persistence,
	// so that a session survives Kill); 0 keeps Mosquitto's default.
	AutosaveInterval int
	// MaxQueued is max_queued_messages; 0 writes no line (Mosquitto's
	// default, 1000). NoQueueLimit writes 0 (no limit).
	MaxQueued int
	// MaxInflight is max_inflight_messages (the Receive Maximum it
	// announces); 0 keeps Mosquitto's default (20).
	MaxInflight int
	// QoS0Only is max_qos 0: CONNACK announces Maximum QoS 0.
	QoS0Only bool
	// Extra is appended to the configuration as it is.
	Extra string
}

// NoQueueLimit as MosquittoConfig.MaxQueued writes max_queued_messages 0.
const NoQueueLimit = -1

// Mosquitto is a Debian mosquitto broker a test started with
// StartMosquitto. Tests stop, start and kill it on the same port to make
// outages.
type Mosquitto struct {
	Addr    string // 127.0.0.1:port
	Dir     string // configuration, persistence and log
	Conf    string // the configuration file
	LogPath string

	t      testing.TB
	cmd    *exec.Cmd
	exited chan struct{}
}

// StartMosquitto writes c as a configuration and starts Debian's mosquitto
// with it on a free loopback port, waiting (at most 10 s) until the port
// accepts. At cleanup it is stopped, and its log shown when the test failed.
// As root (a CI container) the configuration says "user root": otherwise
// Mosquitto drops to the user mosquitto and cannot read t.TempDir().
func StartMosquitto(t testing.TB, c MosquittoConfig) *Mosquitto {
	t.Helper()
	Need(t, "mosquitto", "mosquitto")
	if c.ClientCerts && c.PKI == nil {
		t.Fatal("gatewaytest.MosquittoConfig: ClientCerts needs a PKI")
	}
	m := &Mosquitto{t: t, Addr: FreeAddr(t), Dir: t.TempDir()}
	m.LogPath = filepath.Join(m.Dir, "mosquitto.log")
	m.Conf = filepath.Join(m.Dir, "mosquitto.conf")
	WriteFile(t, m.Conf, []byte(m.config(c)), 0o600)
	t.Cleanup(func() {
		m.Stop()
		if t.Failed() {
			t.Logf("mosquitto log (%s), last 4 KiB:\n%s", m.LogPath, LastBytes(m.Log(), 4096))
		}
	})
	m.Start()
	return m
}

func (m *Mosquitto) config(c MosquittoConfig) string {
	_, port, _ := net.SplitHostPort(m.Addr)
	var b strings.Builder
	fmt.Fprintf(&b, "per_listener_settings false\nlistener %s 127.0.0.1\n", port)
	if c.PKI != nil {
		fmt.Fprintf(&b, "certfile %s\nkeyfile %s\n", c.PKI.ServerCert, c.PKI.ServerKey)
		if c.ClientCerts {
			fmt.Fprintf(&b, "cafile %s\nrequire_certificate true\nuse_identity_as_username true\n", c.PKI.CAFile)
		}
	}
	if c.TLSVersion != "" {
		fmt.Fprintf(&b, "tls_version %s\n", c.TLSVersion)
	}
	fmt.Fprintf(&b, "allow_anonymous %t\n", c.AllowAnonymous)
	if c.PasswordFile != "" {
		fmt.Fprintf(&b, "password_file %s\n", c.PasswordFile)
	}
	if c.ACLFile != "" {
		fmt.Fprintf(&b, "acl_file %s\n", c.ACLFile)
	}
	if c.Persistence {
		fmt.Fprintf(&b, "persistence true\npersistence_location %s/\n", m.Dir)
	} else {
		b.WriteString("persistence false\n")
	}
	if c.AutosaveInterval > 0 {
		fmt.Fprintf(&b, "autosave_interval %d\n", c.AutosaveInterval)
	}
	switch {
	case c.MaxQueued == NoQueueLimit:
		b.WriteString("max_queued_messages 0\n")
	case c.MaxQueued > 0:
		fmt.Fprintf(&b, "max_queued_messages %d\n", c.MaxQueued)
	}
	if c.MaxInflight > 0 {
		fmt.Fprintf(&b, "max_inflight_messages %d\n", c.MaxInflight)
	}
	if c.QoS0Only {
		b.WriteString("max_qos 0\n")
	}
	fmt.Fprintf(&b, "log_dest file %s\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\n", m.LogPath)
	if os.Geteuid() == 0 {
		b.WriteString("user root\n")
	}
	b.WriteString(c.Extra)
	return b.String()
}

// Log is the broker's log so far.
func (m *Mosquitto) Log() []byte {
	b, _ := os.ReadFile(m.LogPath)
	return b
}

// PID is the broker's process ID (0 while stopped).
func (m *Mosquitto) PID() int {
	if m.cmd == nil {
		return 0
	}
	return m.cmd.Process.Pid
}

// Start runs the broker and waits (at most 10 s) until its port accepts.
func (m *Mosquitto) Start() {
	m.t.Helper()
	if m.cmd != nil {
		m.t.Fatal("mosquitto already running")
	}
	cmd := exec.Command(Need(m.t, "mosquitto", "mosquitto"), "-c", m.Conf)
	if err := cmd.Start(); err != nil {
		m.t.Fatalf("starting mosquitto: %v", err)
	}
	m.cmd, m.exited = cmd, make(chan struct{})
	go func(ch chan struct{}) { _ = cmd.Wait(); close(ch) }(m.exited)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", m.Addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-m.exited:
			m.cmd = nil
			m.t.Fatalf("mosquitto exited at start; log:\n%s", LastBytes(m.Log(), 4096))
		default:
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("mosquitto not listening on %s after 10s", m.Addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop sends SIGTERM (Mosquitto saves its persistence file) and waits,
// killing it after 10 s: then it saved nothing, so what it held for a
// subscriber is gone, and the test fails (a harness fault, not the code
// under test).
func (m *Mosquitto) Stop() {
	if m.cmd == nil {
		return
	}
	if !Terminate(m.cmd.Process, m.exited, 10*time.Second) {
		m.t.Errorf("mosquitto did not exit within 10s of SIGTERM and was killed: it saved no persistence (harness, not the code under test)")
	}
	m.cmd = nil
}

// Kill ends the broker with SIGKILL: no persistence save, no goodbye.
func (m *Mosquitto) Kill() {
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

// LastBytes is the end of b, at most n bytes (a log tail for a failure message).
func LastBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
