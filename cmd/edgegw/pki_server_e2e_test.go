package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// The LAN listener's key lives in swtpm; `pki server` issues its certificate; the running
// daemon picks up a renewed certificate for the same key while a sensor (mosquitto_sub) stays
// connected, and new handshakes (mosquitto_pub) get and verify the new certificate.
//
// swtpm serves one connection at a time and the daemon holds it, so the renewal's CSR is made
// with the TPM key before the daemon starts and signed while it runs (pki.SignServer, what
// `pki server` calls). On a Pi, /dev/tpmrm0's resource manager lets `pki server` itself run
// beside the daemon.
func TestE2EServerCertRenewalTPM(t *testing.T) {
	mosqSub := hwtest.Require(t, "mosquitto_sub", "mosquitto-clients")
	mosqPub := hwtest.Require(t, "mosquitto_pub", "mosquitto-clients")
	root := t.TempDir()
	sw := hwtest.StartSWTPM(t)
	uri := sw.URI("handle=0x81000124")
	addr := gatewaytest.FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
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
	mustRun(t, "pki", "server", "-c", conf, "--ip", "127.0.0.1")
	certs := filepath.Join(root, "certs")
	mustRun(t, "pki", "issue", "-c", conf, "sensor-a", "sensor-b", "--policy", "sensor", "--out", certs)

	key, err := hw.Open(context.Background(), uri)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := hw.CSR(key, "127.0.0.1", []string{"127.0.0.1"})
	key.Close()
	if err != nil {
		t.Fatal(err)
	}

	startRun(t, conf, addr)

	caFile := filepath.Join(root, "pki", pki.CACertFile)
	tlsArgs := func(thing string) []string {
		return []string{"-h", "127.0.0.1", "-p", port, "--cafile", caFile, "--cert", filepath.Join(certs, thing+".crt"),
			"--key", filepath.Join(certs, thing+".key"), "-i", thing, "-V", "mqttv311"}
	}
	serial := func() string {
		roots := x509.NewCertPool()
		b, _ := os.ReadFile(caFile)
		roots.AppendCertsFromPEM(b)
		cert, err := tls.LoadX509KeyPair(filepath.Join(certs, "sensor-b.crt"), filepath.Join(certs, "sensor-b.key"))
		if err != nil {
			t.Fatal(err)
		}
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", Certificates: []tls.Certificate{cert}})
		if err != nil {
			t.Fatalf("handshake with the daemon: %v", err)
		}
		defer c.Close()
		return pki.SerialHex(c.ConnectionState().PeerCertificates[0].SerialNumber)
	}
	first := serial()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sub := exec.CommandContext(ctx, mosqSub, append(tlsArgs("sensor-a"), "-t", "sensors/#", "-C", "1", "-q", "1")...)
	var subOut bytes.Buffer
	sub.Stdout, sub.Stderr = &subOut, &subOut
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the subscriber is connected (the audit log records the connect).
	for i := 0; ; i++ {
		if b, _ := os.ReadFile(filepath.Join(root, "audit.log")); strings.Contains(string(b), "sensor-a") {
			break
		}
		if i > 200 {
			t.Fatalf("mosquitto_sub did not connect: %s", subOut.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // the SUBSCRIBE follows the CONNECT

	b, err := pki.SignServer(context.Background(), pki.Options{Dir: filepath.Join(root, "pki")}, pki.ServerRequest{CSR: csr, Hosts: []string{"127.0.0.1"}, Out: filepath.Join(root, "lan.crt")})
	if err != nil {
		t.Fatal(err)
	}
	var now string
	for i := 0; i < 100; i++ { // the daemon polls its files every 250 ms
		if now = serial(); now == b.Serial {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if now != b.Serial || now == first {
		t.Fatalf("the daemon serves serial %s; want the renewed %s (was %s)", now, b.Serial, first)
	}
	if out, err := exec.CommandContext(ctx, mosqPub, append(tlsArgs("sensor-b"), "-t", "sensors/a/t", "-m", "after-renewal", "-q", "1")...).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub after the renewal: %v\n%s", err, out)
	}
	if err := sub.Wait(); err != nil || !strings.Contains(subOut.String(), "after-renewal") {
		t.Fatalf("the sensor connected before the renewal: %v, got %q; want it to receive after-renewal", err, subOut.String())
	}
}
