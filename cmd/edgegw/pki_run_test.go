package main

// Issue-4 acceptance against the real daemon: mosquitto_pub with an issued
// bundle connects to `edgegw run`, and is cut off after `edgegw pki revoke`.

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
	"github.com/edgegw/edgegw/hw/hwtest"
)

// mosquitto_pub with a bundle from `edgegw pki issue` connects to `edgegw run`, and is cut
// off after `edgegw pki revoke` without a restart (the gateway reloads crl.pem).
func TestPKIBundleConnectsToEdgegwRun(t *testing.T) {
	pub := needTool(t, "mosquitto_pub", "mosquitto-clients")
	root := t.TempDir()
	port := hwtest.FreePorts(t, 1)
	conf := filepath.Join(root, "edgegw.yaml")
	cfg := fmt.Sprintf(`version: 1
site: lab
state_dir: state
listeners:
  - name: lan
    address: "127.0.0.1:%d"
    tls: {ca: pki/ca.crt, cert: pki/server.crt, key: "file:pki/server.key", crl: pki/crl.pem}
devices: devices.yaml
policies: policies/
store: {dir: state/queue}
metrics: {address: ""}
admin: {socket: state/admin.sock}
audit: {file: ""}
`, port)
	policy := `{"Version": "2012-10-17", "Statement": [
  {"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"},
  {"Effect": "Allow", "Action": "iot:Publish", "Resource": "arn:aws:iot:*:*:topic/building/*"}]}`
	if err := os.MkdirAll(filepath.Join(root, "policies"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "policies", "sensor.json"), []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	mustRun(t, "pki", "init", "-c", conf, "--host", "127.0.0.1", "--host", "localhost")
	mustRun(t, "pki", "issue", "-c", conf, "s-1", "--type", "temperature", "--policy", "sensor", "--out", out)

	ctx, cancel := context.WithCancel(context.Background())
	var stderr gatewaytest.Buffer
	done := make(chan int, 1)
	go func() { done <- execute(ctx, []string{"--log-format", "json", "run", "-c", conf}, &stderr, &stderr) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("edgegw run did not stop within 30s")
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stderr.String(), `"msg":"gateway started"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no \"gateway started\" within 30s:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := 0; ; i++ { // "gateway started" may precede the listener's accept loop
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			break
		}
		if i == 100 {
			t.Fatalf("gateway does not listen on %d: %v", port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	publish := func() error {
		c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		b, err := exec.CommandContext(c, pub, "-h", "127.0.0.1", "-p", fmt.Sprint(port), "--cafile", filepath.Join(out, "ca.crt"),
			"--cert", filepath.Join(out, "s-1.crt"), "--key", filepath.Join(out, "s-1.key"), "-i", "s-1",
			"-t", "building/t", "-m", "21.5", "-q", "1").CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, b)
		}
		return nil
	}
	if err := publish(); err != nil {
		t.Fatalf("mosquitto_pub with the issued bundle: %v\ngateway log:\n%s", err, stderr.String())
	}
	mustRun(t, "pki", "revoke", "-c", conf, "s-1", "--reason", "keyCompromise")
	// The gateway reloads crl.pem on change; poll (bounded) until the device is refused.
	var err error
	for range 40 {
		if err = publish(); err != nil {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err == nil {
		t.Fatalf("mosquitto_pub still connects 10s after revoke\ngateway log:\n%s", stderr.String())
	}
}
