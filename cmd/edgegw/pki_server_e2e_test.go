package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/cmd/edgegw/pkicmd"
	"github.com/edgegw/edgegw/gateway/gatewaytest"
	"github.com/edgegw/edgegw/gateway/pki"
	"github.com/edgegw/edgegw/hw"
	"github.com/edgegw/edgegw/hw/hwtest"
)

const renewSensorPolicy = `{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"},
 {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": "arn:aws:iot:*:*:topic/sensors/*"},
 {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "arn:aws:iot:*:*:topicfilter/sensors/*"}
]}`

// The LAN listener's key lives in swtpm; `edgegw pki server --key tpm:...` issues its
// certificate; a real `edgegw run` serves it; a sensor (Debian's mosquitto_sub over mTLS) stays
// connected while `edgegw pki server --reuse-key` renews it beside the running daemon; a new
// connection (openssl s_client) sees the new serial and notAfter, and a new sensor connection
// (mosquitto_pub) verifies it and reaches the sensor that never reconnected.
//
// swtpm serves one connection at a time and the daemon holds it, so the renewal signs the
// public key of the existing certificate (--reuse-key) instead of opening the key. (On a Pi,
// /dev/tpmrm0's resource manager would let the plain `pki server` run beside the daemon too.)
func TestE2EServerCertRenewalTPM(t *testing.T) {
	mosqSub := hwtest.Require(t, "mosquitto_sub", "mosquitto-clients")
	mosqPub := hwtest.Require(t, "mosquitto_pub", "mosquitto-clients")
	openssl := hwtest.Require(t, "openssl", "openssl")
	stdbuf := hwtest.Require(t, "stdbuf", "coreutils")
	site := newTPMListenerSite(t, "--ip", "127.0.0.1")
	root, conf, addr, certs, issued := site.root, site.conf, site.addr, site.certs, site.issued
	_, port, _ := net.SplitHostPort(addr)
	startRun(t, conf, addr)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	caFile := filepath.Join(root, "pki", pki.CACertFile)
	tlsArgs := func(thing string) []string {
		return []string{"-h", "127.0.0.1", "-p", port, "--cafile", caFile, "--cert", filepath.Join(certs, thing+".crt"),
			"--key", filepath.Join(certs, thing+".key"), "-i", thing, "-V", "mqttv311"}
	}
	// served is the serial (lower-case hex) and notAfter of the certificate a new TLS
	// connection gets, as openssl s_client shows it.
	served := func() (string, time.Time) {
		t.Helper()
		cmd := exec.CommandContext(ctx, openssl, "s_client", "-connect", addr, "-servername", "127.0.0.1", "-CAfile", caFile,
			"-cert", filepath.Join(certs, "sensor-b.crt"), "-key", filepath.Join(certs, "sensor-b.key"), "-verify_return_error")
		cmd.Stdin = strings.NewReader("")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("openssl s_client -connect %s: %v\n%s", addr, err, out)
		}
		x := exec.CommandContext(ctx, openssl, "x509", "-noout", "-serial", "-enddate")
		x.Stdin = bytes.NewReader(out)
		fields, err := x.Output()
		if err != nil {
			t.Fatalf("openssl x509 on the served certificate: %v\n%s", err, out)
		}
		var serial, end string
		for _, l := range strings.Split(strings.TrimSpace(string(fields)), "\n") {
			if v, ok := strings.CutPrefix(l, "serial="); ok {
				serial = strings.TrimLeft(strings.ToLower(v), "0")
			}
			if v, ok := strings.CutPrefix(l, "notAfter="); ok {
				end = v
			}
		}
		na, err := time.Parse("Jan _2 15:04:05 2006 MST", end)
		if err != nil {
			t.Fatalf("openssl x509 -enddate %q: %v", fields, err)
		}
		return serial, na
	}
	if s, _ := served(); s != strings.TrimLeft(issued.Serial, "0") {
		t.Fatalf("the daemon serves serial %s; want the one pki server issued, %s", s, issued.Serial)
	}

	// sensor-a subscribes and stays connected across the renewal: it gets a reading from before
	// and one from after, and the audit log has one connect of it.
	sub := startMosqSub(ctx, t, stdbuf, append([]string{mosqSub}, append(tlsArgs("sensor-a"), "-t", "sensors/#", "-C", "2", "-q", "1", "-v", "-d")...)...)
	publish := func(msg string) {
		t.Helper()
		if out, err := exec.CommandContext(ctx, mosqPub, append(tlsArgs("sensor-b"), "-t", "sensors/a/t", "-m", msg, "-q", "1")...).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_pub %s: %v\n%s", msg, err, out)
		}
	}
	publish("before-renewal")
	sub.waitLine(ctx, t, "sensors/a/t before-renewal")

	// pki server without --reuse-key opens the key: swtpm, held by the daemon, accepts the
	// connection and never answers. It gives up after pkicmd.ServerKeyWait (2 s here), saying what to do,
	// and writes nothing.
	defer func(w time.Duration) { pkicmd.ServerKeyWait = w }(pkicmd.ServerKeyWait)
	pkicmd.ServerKeyWait = 2 * time.Second
	lanBefore, _ := os.ReadFile(filepath.Join(root, "lan.crt"))
	if code, _, errOut := edgegw(t, "pki", "server", "-c", conf); code != 1 || !strings.Contains(errOut, "--reuse-key") || !strings.Contains(errOut, "held by the running daemon") {
		t.Errorf("pki server opening the TPM the daemon holds: exit %d, %q; want exit 1 pointing to --reuse-key", code, errOut)
	}
	if lanAfter, _ := os.ReadFile(filepath.Join(root, "lan.crt")); string(lanAfter) != string(lanBefore) {
		t.Error("the pki server that gave up rewrote lan.crt")
	}

	// The renewal, by the command a site engineer (or edgegw-server-cert.timer) runs, beside
	// the daemon; bounded: opening the key instead would wait for the daemon to stop.
	pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
	defer pcancel()
	out, err := exec.CommandContext(pctx, gatewaytest.Edgegw(t), "pki", "server", "-c", conf, "--reuse-key", "--days", "30", "-o", "json").Output()
	var renewed pkicmd.ServerJSON
	if err != nil || json.Unmarshal(out, &renewed) != nil || renewed.Action != "renewed" {
		t.Fatalf("pki server --reuse-key beside the daemon: %v, %q; want a renewal", err, out)
	}
	var serial string
	var notAfter time.Time
	for i := 0; i < 100; i++ { // the daemon polls its files every 250 ms
		if serial, notAfter = served(); serial == strings.TrimLeft(renewed.Serial, "0") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if serial != strings.TrimLeft(renewed.Serial, "0") || !notAfter.Equal(renewed.NotAfter.Truncate(time.Second)) {
		t.Fatalf("a new connection gets serial %s, notAfter %s; want the renewal's %s, %s", serial, notAfter, renewed.Serial, renewed.NotAfter)
	}
	if left := time.Until(notAfter); left > 31*24*time.Hour || left < 29*24*time.Hour {
		t.Errorf("renewed notAfter %s is %s away; want --days 30", notAfter, left)
	}
	publish("after-renewal") // a new sensor connection verifies the new certificate
	lines, err := sub.wait()
	if err != nil || !slices.Contains(lines, "sensors/a/t after-renewal") {
		t.Fatalf("the sensor connected before the renewal: %v, got %q; want it to receive after-renewal", err, lines)
	}
	connects := 0
	b, _ := os.ReadFile(filepath.Join(root, "audit.log"))
	for _, l := range strings.Split(string(b), "\n") {
		var ev struct {
			Event    string `json:"event"`
			ClientID string `json:"client_id"`
		}
		if json.Unmarshal([]byte(l), &ev) == nil && ev.Event == "connect" && ev.ClientID == "sensor-a" {
			connects++
		}
	}
	if connects != 1 {
		t.Errorf("sensor-a connected %d times; want once (it stays connected through the renewal)", connects)
	}
}

// tpmListenerSite is a site whose LAN listener's key is in swtpm (handle
// 0x81000124): the site CA (pki init), the key, its server certificate
// (pki server with serverArgs) and sensors sensor-a and sensor-b in certs.
type tpmListenerSite struct {
	root, conf, addr, uri, certs string
	sw                           *hwtest.SWTPM
	issued                       pkicmd.ServerJSON
}

func newTPMListenerSite(t *testing.T, serverArgs ...string) *tpmListenerSite {
	t.Helper()
	root := t.TempDir()
	sw := hwtest.StartSWTPM(t)
	uri := sw.URI("handle=0x81000124")
	addr := gatewaytest.FreeAddr(t)
	conf := filepath.Join(root, "edgegw.yaml")
	cfg := fmt.Sprintf(`version: 1
site: e2e
state_dir: %[1]s/state
listeners:
  - name: lan
    address: %[2]q
    tls: {ca: pki/ca.crt, cert: lan.crt, key: %[3]q, crl: pki/crl.pem}
devices: devices.yaml
policies: policies/
store: {dir: %[1]s/state/queue}
metrics: {address: ""}
admin: {socket: %[1]s/state/admin.sock}
audit: {file: %[1]s/audit.log}
`, root, addr, uri)
	gatewaytest.WriteFile(t, conf, []byte(cfg), 0o644)
	gatewaytest.WriteFile(t, filepath.Join(root, "policies", "sensor.json"), []byte(renewSensorPolicy), 0o644)
	if err := os.MkdirAll(filepath.Join(root, "state"), 0o700); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "pki", "init", "-c", conf, "--host", "localhost")
	mustRun(t, "key", "create", "--key", uri)
	var issued pkicmd.ServerJSON
	args := append([]string{"pki", "server", "-c", conf, "--key", uri, "-o", "json"}, serverArgs...)
	if err := json.Unmarshal([]byte(mustRun(t, args...)), &issued); err != nil || issued.Action != "issued" {
		t.Fatalf("pki server --key %s: %+v, %v; want issued", uri, issued, err)
	}
	certs := filepath.Join(root, "certs")
	mustRun(t, "pki", "issue", "-c", conf, "sensor-a", "sensor-b", "--policy", "sensor", "--out", certs)
	return &tpmListenerSite{root: root, conf: conf, addr: addr, uri: uri, certs: certs, sw: sw, issued: issued}
}

// serverCertUnitCommand is the command edgegw-server-cert.service runs (its
// ExecStart, with its Environment= values expanded), as arguments to
// edgegw, with the config path replaced by conf.
func serverCertUnitCommand(t *testing.T, conf string) []string {
	t.Helper()
	unit, err := os.ReadFile(filepath.Join("..", "..", "packaging", "edgegw-server-cert.service"))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	var exec []string
	for _, l := range strings.Split(string(unit), "\n") {
		if v, ok := strings.CutPrefix(l, "Environment="); ok {
			k, val, _ := strings.Cut(v, "=")
			env[k] = val
		}
		if v, ok := strings.CutPrefix(l, "ExecStart="); ok {
			exec = strings.Fields(v)
		}
	}
	if len(exec) < 2 || exec[0] != "/usr/bin/edgegw" {
		t.Fatalf("edgegw-server-cert.service: ExecStart %q; want /usr/bin/edgegw ...", exec)
	}
	args := exec[1:]
	for i, a := range args {
		a = os.Expand(a, func(k string) string { return env[k] })
		if a == "/etc/edgegw/edgegw.yaml" {
			a = conf
		} else if strings.HasPrefix(a, "/") {
			t.Fatalf("edgegw-server-cert.service: ExecStart names %s: this test knows only the config path", a)
		}
		args[i] = a
	}
	return args
}

// TestServerCertUnitBesideDaemon: the command edgegw-server-cert.timer runs
// (read from the packaged unit) renews a due LAN certificate whose key is in
// swtpm while the daemon, which holds swtpm's one connection, runs; the
// daemon serves it without a restart, and a second run finds nothing due.
// The periodic renewal keeps the key (--reuse-key): a new key would need the
// config's tls.key changed and a restart, and a TPM or HSM key never leaves
// its device; so the renewal needs only the public key of the certificate
// the CA issued, and does not open (or wait for) the TPM at all. Without
// --reuse-key in the unit, it opened the key and gave up (after 30 s).
func TestServerCertUnitBesideDaemon(t *testing.T) {
	site := newTPMListenerSite(t, "--ip", "127.0.0.1", "--days", "10") // due: the unit renews 30 days before
	startRun(t, site.conf, site.addr)
	defer func(w, tw time.Duration) { pkicmd.ServerKeyWait, hw.TPMTimeout = w, tw }(pkicmd.ServerKeyWait, hw.TPMTimeout)
	pkicmd.ServerKeyWait, hw.TPMTimeout = 2*time.Second, 2*time.Second // opening the key fails fast here

	args := serverCertUnitCommand(t, site.conf)
	code, out, errOut := edgegw(t, args...)
	if code != 0 || !strings.Contains(out, "renewed") {
		t.Fatalf("edgegw %s (the timer's command) beside the daemon: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	caPEM, err := os.ReadFile(filepath.Join(site.root, "pki", pki.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	var served *x509.Certificate
	for range 100 { // the daemon watches its files
		c, err := tls.Dial("tcp", site.addr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
		if err == nil {
			served = c.ConnectionState().PeerCertificates[0]
			_ = c.Close()
		}
		if served != nil && time.Until(served.NotAfter) > 11*24*time.Hour {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if served == nil || time.Until(served.NotAfter) < 11*24*time.Hour {
		t.Fatalf("the daemon serves %v; want the renewed certificate (the CA's server_days)", served)
	}
	if code, out, errOut := edgegw(t, args...); code != 0 || !strings.Contains(out, "not due") {
		t.Errorf("the timer's command again: exit %d\n%s%s; want not due", code, out, errOut)
	}
}
