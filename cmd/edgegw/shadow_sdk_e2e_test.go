package main

// The AWS IoT Device SDK for JavaScript (aws-iot-device-sdk from npm, its
// thingShadow class, run by Debian's nodejs) against `edgegw run`, over
// mutual TLS with a device certificate from `edgegw pki issue`.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// sdkDir holds device.js and package.json; npm installs the SDK into its
// node_modules at test time (not committed).
const sdkDir = "testdata/shadowsdk"

// installSDK installs the pinned SDK unless it is there, and returns node
// and the script directory. Without node or npm, or without the npm
// registry, the test fails with the command to run.
func installSDK(t *testing.T) (node, dir string) {
	t.Helper()
	node = gatewaytest.Need(t, "node", "nodejs")
	npm := gatewaytest.Need(t, "npm", "npm")
	dir, err := filepath.Abs(sdkDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "aws-iot-device-sdk", "package.json")); err == nil {
		return node, dir
	}
	args := []string{"install", "--no-save", "--no-package-lock", "--no-audit", "--no-fund", "--prefix", dir}
	if out, err := gatewaytest.Run(t, 5*time.Minute, npm, args...); err != nil {
		t.Fatalf("installing the AWS IoT Device SDK for JavaScript: %v\n%s\nrun: npm %s (npm from `make deps`; needs the npm registry)",
			err, out, strings.Join(args, " "))
	}
	return node, dir
}

// TestShadowE2ESDK: a device written for AWS IoT, unchanged, registers its
// shadow, gets it (404: none yet), reports its state (accepted) and receives
// the delta of a desired change the site engineer makes with edgegw shadow
// update.
func TestShadowE2ESDK(t *testing.T) {
	node, dir := installSDK(t)
	bin := gatewaytest.Edgegw(t)
	root := t.TempDir()
	addr := gatewaytest.FreeAddr(t)
	conf := filepath.Join(root, "edgegw.yaml")
	gatewaytest.WriteFile(t, conf, fmt.Appendf(nil, `version: 1
site: lab
state_dir: state
listeners:
  - name: lan
    address: %q
    tls: {ca: pki/ca.crt, cert: pki/server.crt, key: "file:pki/server.key", crl: pki/crl.pem}
devices: devices.yaml
policies: policies/
store: {dir: state/queue}
metrics: {address: ""}
admin: {socket: state/admin.sock}
audit: {file: ""}
shadows: {}
`, addr), 0o644)
	gatewaytest.WriteFile(t, filepath.Join(root, "policies", "device.json"), []byte(shadowDevicePolicy), 0o644)
	run := func(args ...string) string {
		t.Helper()
		out, err := gatewaytest.Run(t, 60*time.Second, bin, args...)
		if err != nil {
			t.Fatalf("edgegw %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	certs := t.TempDir()
	run("pki", "init", "-c", conf, "--host", "127.0.0.1", "--host", "localhost")
	run("pki", "issue", "-c", conf, "lamp-1", "--policy", "device", "--out", certs)

	g := &bridgeGW{t: t, bin: bin, dir: root, conf: conf, addr: addr, log: new(gatewaytest.Buffer)}
	t.Cleanup(func() {
		g.stop()
		if t.Failed() {
			t.Logf("edgegw log (last 6 KiB):\n%s", gatewaytest.LastBytes([]byte(g.log.String()), 6144))
		}
	})
	if err := os.MkdirAll(filepath.Join(root, "state"), 0o700); err != nil {
		t.Fatal(err)
	}
	g.start()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	host, port, _ := strings.Cut(addr, ":")
	dev := exec.CommandContext(ctx, node, filepath.Join(dir, "device.js"), host, port,
		filepath.Join(certs, "ca.crt"), filepath.Join(certs, "lamp-1.crt"), filepath.Join(certs, "lamp-1.key"), "lamp-1")
	dev.WaitDelay = time.Second
	stdout, err := dev.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr gatewaytest.Buffer
	dev.Stderr = &stderr
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	type event struct {
		Ev, Op, Stat, Msg string
		Doc               map[string]any
	}
	events := make(chan event, 100)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var e event
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				e = event{Ev: "bad line", Msg: sc.Text()}
			}
			events <- e
		}
	}()
	next := func(want string) event {
		t.Helper()
		for {
			select {
			case e, ok := <-events:
				if !ok {
					t.Fatalf("device.js ended before %q (stderr: %s)", want, stderr.String())
				}
				if e.Ev == "error" || e.Ev == "timeout" || e.Ev == "bad line" {
					t.Fatalf("device.js: %+v while waiting for %q (stderr: %s)", e, want, stderr.String())
				}
				if e.Ev == want {
					return e
				}
			case <-ctx.Done():
				t.Fatalf("device.js: no %q within 60s (stderr: %s)", want, stderr.String())
			}
		}
	}
	next("registered")
	if e := next("status"); e.Op != "get" || e.Stat != "rejected" || at(e.Doc, "code") != 404.0 {
		t.Fatalf("first get: %+v; want rejected with code 404", e)
	}
	if e := next("status"); e.Op != "update" || e.Stat != "accepted" || at(e.Doc, "state.reported.power") != "off" || at(e.Doc, "version") != 1.0 {
		t.Fatalf("update: %+v; want accepted with reported power off, version 1", e)
	}
	run("shadow", "update", "-c", conf, "lamp-1", `{"state":{"desired":{"power":"on"}}}`)
	if e := next("delta"); at(e.Doc, "state.power") != "on" {
		t.Fatalf("delta: %+v; want power on", e)
	}
	if err := dev.Wait(); err != nil {
		t.Errorf("device.js exit: %v (stderr: %s)", err, stderr.String())
	}
}
