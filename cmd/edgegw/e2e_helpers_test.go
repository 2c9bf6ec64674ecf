package main

// Steps the end-to-end tests of a bridgeGW share: connecting a subscribed
// sensor, and starting the daemon with its stop and log tail on cleanup.

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
	"github.com/edgegw/edgegw/hw"
	"github.com/edgegw/edgegw/hw/hwtest"
)

// subscribedSensor connects name as a sensor with its own certificate and
// subscribes it to filter at QoS 1 (10 s for the SUBACK); any error fails
// the test. The caller closes it.
func (g *bridgeGW) subscribedSensor(t testing.TB, name, filter string) *sensor {
	t.Helper()
	s, err := g.sensor(t, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}}); err != nil {
		s.close()
		t.Fatal(err)
	}
	return s
}

// launch starts the daemon; on cleanup it stops it and, when the test
// failed, logs the last tailBytes of its log.
func (g *bridgeGW) launch(t testing.TB, tailBytes int) {
	t.Helper()
	t.Cleanup(func() {
		g.stop()
		if t.Failed() {
			t.Logf("edgegw log (last %d KiB):\n%s", tailBytes/1024, gatewaytest.LastBytes([]byte(g.log.String()), tailBytes))
		}
	})
	g.start()
}

// runDaemon starts `edgegw run -c conf` and returns its process (to signal),
// a channel closed when it exits, and its output (stdout and stderr). On cleanup it sends SIGTERM (an error if the daemon takes more than
// 15 s to stop) and, when the test failed, logs the daemon's whole output.
func runDaemon(t testing.TB, conf string) (p *os.Process, exited <-chan struct{}, log *gatewaytest.Buffer) {
	t.Helper()
	return runDaemonEnv(t, conf, nil)
}

// runDaemonEnv is runDaemon with the daemon's whole environment given (nil:
// the test's own).
func runDaemonEnv(t testing.TB, conf string, env []string) (p *os.Process, exited <-chan struct{}, log *gatewaytest.Buffer) {
	t.Helper()
	log = new(gatewaytest.Buffer)
	cmd := exec.Command(gatewaytest.Edgegw(t), "run", "-c", conf)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		if !gatewaytest.Terminate(cmd.Process, done, 15*time.Second) {
			t.Errorf("edgegw run did not stop within 15s of SIGTERM")
		}
		if t.Failed() {
			t.Logf("edgegw log:\n%s", log.String())
		}
	})
	return cmd.Process, done, log
}

// mosquittoRR is a device's request with Debian's mosquitto_rr (rr, its
// path) to the broker on 127.0.0.1:port (TLS with caFile): as id
// (certificate, key, client ID) it subscribes to topic+answer, publishes
// payload as JSON to topic and returns the JSON answer (20 s for it). A
// failed request or an answer that is not a JSON object fails the test.
func mosquittoRR(ctx context.Context, t testing.TB, rr, port, caFile string, id [3]string, topic, answer string, payload any) map[string]any {
	t.Helper()
	b, _ := json.Marshal(payload)
	out, err := exec.CommandContext(ctx, rr, "-h", "127.0.0.1", "-p", port, "--cafile", caFile,
		"--cert", id[0], "--key", id[1], "-i", id[2],
		"-t", topic, "-e", topic+answer, "-m", string(b), "-W", "20", "-N").Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("mosquitto_rr %s (waiting for %s): %v\n%s%s", topic, answer, err, out, stderr)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("answer on %s%s: %q: %v", topic, answer, out, err)
	}
	return m
}

// dueTPMIdentity gives the gateway a renewal-due identity in a fresh swtpm:
// a P-256 key at handle 0x81000100 (oldURI) and a certificate for it signed
// by ca with two hours of life, one hour left (renewal starts at most half
// the lifetime before the end, so it is due now). newURI (handle
// 0x81000101) is where the renewal is expected to make the new key.
func dueTPMIdentity(t *testing.T, ca *gatewaytest.PKI) (sw *hwtest.SWTPM, oldURI, newURI, certFile string) {
	t.Helper()
	sw = hwtest.StartSWTPM(t)
	oldURI, newURI = sw.URI("handle=0x81000100"), sw.URI("handle=0x81000101")
	return sw, oldURI, newURI, dueCert(t, ca, oldURI)
}

// dueCert makes a P-256 key at uri and a certificate for it signed by ca
// with two hours of life, one hour left (renewal due), and returns the
// certificate's file.
func dueCert(t *testing.T, ca *gatewaytest.PKI, uri string) string {
	t.Helper()
	k, err := hw.Create(context.Background(), uri, hw.P256)
	if err != nil {
		t.Fatal(err)
	}
	certFile := filepath.Join(t.TempDir(), "gw.crt")
	gatewaytest.WriteFile(t, certFile, signFor(t, ca, gatewaytest.GatewayCN, k.Public(), time.Now().Add(-time.Hour), time.Now().Add(time.Hour)), 0o644)
	_ = k.Close()
	return certFile
}

// sensorMessages lists per messages (0 to per-1) for each of the first
// sensors sensors (sensorNames), sensor by sensor.
func sensorMessages(sensors, per int) []msgID {
	var todo []msgID
	for _, name := range sensorNames(sensors) {
		for i := range per {
			todo = append(todo, msgID{name, i})
		}
	}
	return todo
}

// publishKilled publishes todo (publishAll with workers) and SIGKILLs the
// daemon once two fifths of todo are acked; it returns when the daemon is
// dead, with what was acked and what failed. The test fails if nothing
// failed (the kill did not fall in the middle of the stream).
func (g *bridgeGW) publishKilled(t testing.TB, todo []msgID, workers int) (acked, failed []msgID) {
	t.Helper()
	killAt := int64(len(todo) * 2 / 5)
	killNow, killed := make(chan struct{}), make(chan struct{})
	var killOnce sync.Once
	go func() { <-killNow; g.kill(); close(killed) }()
	acked, failed = g.publishAll(t, todo, workers, func(n int64) {
		if n >= killAt {
			killOnce.Do(func() { close(killNow) })
		}
	})
	killOnce.Do(func() { close(killNow) }) // in case it never triggered
	<-killed
	if len(failed) == 0 {
		t.Fatalf("all %d acked before the kill; want the kill in the middle of the stream", len(acked))
	}
	return acked, failed
}

// cloudSession connects clientID to the upstream as the cloud (its
// certificate) with a persistent session (clean start off, session expiry
// one hour, keepalive 5 s; 5 s to connect), handing each PUBLISH it
// receives to onPublish. gone is closed when the client errs or the server
// disconnects. On success the caller closes conn.
func cloudSession(ctx context.Context, up *gatewaytest.Upstream, clientID string, onPublish func(*paho.Publish)) (cl *paho.Client, conn net.Conn, gone <-chan struct{}, err error) {
	conn, err = tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", up.Addr, up.PKI.ClientTLS(up.Cloud))
	if err != nil {
		return nil, nil, nil, err
	}
	lost := make(chan struct{})
	var lostOnce sync.Once
	down := func() { lostOnce.Do(func() { close(lost) }) }
	cl = paho.NewClient(paho.ClientConfig{
		Conn: packets.NewThreadSafeConn(conn),
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			onPublish(pr.Packet)
			return true, nil
		}},
		OnClientError:      func(error) { down() },
		OnServerDisconnect: func(*paho.Disconnect) { down() },
	})
	expiry := uint32(3600)
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := cl.Connect(cctx, &paho.Connect{ClientID: clientID, KeepAlive: 5, CleanStart: false,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}}); err != nil {
		conn.Close()
		return nil, nil, nil, err
	}
	return cl, conn, lost, nil
}

// oneSensorSite makes a site in a fresh dir: its PKI, a registry with one
// device, sensor-1 (policy bridgeSensorPolicyMetrics), free addresses for
// the LAN listener and the metrics endpoint, and the path its config is to
// be written to (dir/edgegw.yaml).
func oneSensorSite(t testing.TB) (site *gatewaytest.PKI, dir, lan, metrics, conf string) {
	t.Helper()
	site = gatewaytest.NewPKI(t, "site")
	dir = t.TempDir()
	lan, metrics = gatewaytest.FreeAddr(t), gatewaytest.FreeAddr(t)
	gatewaytest.WriteSiteFiles(t, dir, "version: 1\ndefault: {policies: []}\nthings:\n  - {name: sensor-1, policies: [sensor]}\n", map[string]string{"sensor": bridgeSensorPolicyMetrics})
	return site, dir, lan, metrics, filepath.Join(dir, "edgegw.yaml")
}

// writeEnrolSite writes root/edgegw.yaml for an enrolment site (site e2e,
// the LAN listener on addr with the site PKI in root/pki; state, queue,
// admin socket and audit log under root), followed by extra, and the
// policy temperature (connect as the thing, publish to sensors/<thing>/*).
// It returns the config's path.
func writeEnrolSite(t testing.TB, root, addr, extra string) (conf string) {
	t.Helper()
	conf = filepath.Join(root, "edgegw.yaml")
	gatewaytest.WriteFile(t, conf, []byte(fmt.Sprintf(`version: 1
site: e2e
state_dir: %[1]s/state
listeners:
  - name: lan
    address: %[2]q
    tls: {ca: pki/ca.crt, cert: pki/server.crt, key: "file:pki/server.key", crl: pki/crl.pem}
devices: devices.yaml
policies: policies/
store: {dir: %[1]s/state/queue}
metrics: {address: ""}
admin: {socket: %[1]s/state/admin.sock}
audit: {file: %[1]s/audit.log}
`, root, addr)+extra), 0o644)
	gatewaytest.WriteFile(t, filepath.Join(root, "policies", "temperature.json"), []byte(`{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"},
 {"Effect": "Allow", "Action": "iot:Publish", "Resource": "arn:aws:iot:*:*:topic/sensors/${iot:Connection.Thing.ThingName}/*"}]}`), 0o644)
	return conf
}
