package gatewaytest

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The client certificates of an Upstream, by common name (the ACL user).
const (
	GatewayCN = "plant-7-gw" // the gateway's bridge: may use sites/plant-7/#
	CloudCN   = "cloud"      // a cloud-side application: may use sites/#
)

// Upstream is Debian's mosquitto as the cloud broker of the bridge tests
// (bridge, cmd/edgegw): mutual TLS with its own throwaway PKI (CN is the
// user name), an ACL, and persistence, so that the cloud subscriber's session
// and the messages queued for it survive Stop and Start. Tests stop and start
// it on the same port to make outages.
type Upstream struct {
	PKI     *PKI
	Gateway *Client // CN GatewayCN
	Cloud   *Client // CN CloudCN
	Addr    string  // 127.0.0.1:port
	Dir     string  // config, ACL, persistence and log
	LogPath string

	t      testing.TB
	conf   string
	cmd    *exec.Cmd
	exited chan struct{}
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

// NewUpstream writes the PKI, ACL and config and starts the broker on a free
// loopback port; it is stopped (and its log shown on failure) at cleanup.
func NewUpstream(t testing.TB, o UpstreamOptions) *Upstream {
	t.Helper()
	Need(t, "mosquitto", "mosquitto")
	u := &Upstream{t: t, PKI: NewPKI(t, "upstream"), Addr: FreeAddr(t), Dir: t.TempDir()}
	u.Gateway = u.PKI.Issue(t, GatewayCN)
	u.Cloud = u.PKI.Issue(t, CloudCN)
	acl := filepath.Join(u.Dir, "acl")
	var more string
	for _, tp := range o.Topics {
		more += "topic readwrite " + tp + "\n"
	}
	WriteFile(t, acl, fmt.Appendf(nil, "user %s\ntopic readwrite sites/plant-7/#\n%s\nuser %s\ntopic readwrite sites/#\n%s", GatewayCN, more, CloudCN, more), 0o600)
	_, port, _ := net.SplitHostPort(u.Addr)
	u.LogPath = filepath.Join(u.Dir, "mosquitto.log")
	var c strings.Builder
	fmt.Fprintf(&c, "per_listener_settings false\nlistener %s 127.0.0.1\n", port)
	fmt.Fprintf(&c, "cafile %s\ncertfile %s\nkeyfile %s\n", u.PKI.CAFile, u.PKI.ServerCert, u.PKI.ServerKey)
	c.WriteString("require_certificate true\nuse_identity_as_username true\nallow_anonymous false\n")
	if o.TLSVersion != "" {
		fmt.Fprintf(&c, "tls_version %s\n", o.TLSVersion)
	}
	fmt.Fprintf(&c, "acl_file %s\npersistence true\npersistence_location %s/\n", acl, u.Dir)
	fmt.Fprintf(&c, "max_queued_messages %d\n", o.MaxQueued)
	if o.MaxInflight > 0 {
		fmt.Fprintf(&c, "max_inflight_messages %d\n", o.MaxInflight)
	}
	if o.QoS0Only {
		c.WriteString("max_qos 0\n")
	}
	fmt.Fprintf(&c, "log_dest file %s\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\n", u.LogPath)
	if os.Geteuid() == 0 {
		c.WriteString("user root\n") // otherwise it drops to "mosquitto" and cannot read t.TempDir()
	}
	c.WriteString(o.Extra)
	u.conf = filepath.Join(u.Dir, "mosquitto.conf")
	WriteFile(t, u.conf, []byte(c.String()), 0o600)
	t.Cleanup(func() {
		u.Stop()
		if t.Failed() {
			b, _ := os.ReadFile(u.LogPath)
			t.Logf("upstream mosquitto log (%s), last 4 KiB:\n%s", u.LogPath, LastBytes(b, 4096))
		}
	})
	u.Start()
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

// PID is the broker's process ID (0 while stopped).
func (u *Upstream) PID() int {
	if u.cmd == nil {
		return 0
	}
	return u.cmd.Process.Pid
}

// Start runs the broker and waits (at most 10 s) until its port accepts.
func (u *Upstream) Start() {
	u.t.Helper()
	if u.cmd != nil {
		u.t.Fatal("upstream mosquitto already running")
	}
	cmd := exec.Command(Need(u.t, "mosquitto", "mosquitto"), "-c", u.conf)
	if err := cmd.Start(); err != nil {
		u.t.Fatalf("starting mosquitto: %v", err)
	}
	u.cmd, u.exited = cmd, make(chan struct{})
	go func(ch chan struct{}) { _ = cmd.Wait(); close(ch) }(u.exited)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", u.Addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-u.exited:
			b, _ := os.ReadFile(u.LogPath)
			u.t.Fatalf("upstream mosquitto exited at start; log:\n%s", LastBytes(b, 4096))
		default:
		}
		if time.Now().After(deadline) {
			u.t.Fatalf("upstream mosquitto not listening on %s after 10s", u.Addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop sends SIGTERM (Mosquitto saves its persistence file) and waits,
// killing it after 10 s: then it saved nothing, so what it held for the
// cloud subscriber is gone, and the test fails (a harness fault, not the
// gateway's).
func (u *Upstream) Stop() {
	if u.cmd == nil {
		return
	}
	if !Terminate(u.cmd.Process, u.exited, 10*time.Second) {
		u.t.Errorf("upstream mosquitto did not exit within 10s of SIGTERM and was killed: it saved no persistence (harness, not the gateway)")
	}
	u.cmd = nil
}

// LastBytes is the end of b, at most n bytes (a log tail for a failure message).
func LastBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
