package main

// End-to-end tests of the local broker: the real `edgegw run` binary, Debian's
// mosquitto_pub/mosquitto_sub (MQTT 3.1.1 and 5) and paho.golang (MQTT 5).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	gatewaytest.CleanupBuild()
	os.Exit(code)
}

const e2eRegistry = `version: 1
default: {policies: []}
things:
  - {name: sensor-a, policies: [sensor]}
  - {name: sensor-b, policies: [sensor]}
  - {name: monitor, policies: [monitor]}
groups:
  - {name: load, match: {name: "load-*"}, policies: [sensor]}
`

const e2eSensor = `{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"},
 {"Effect": "Allow", "Action": "iot:Publish", "Resource": "arn:aws:iot:*:*:topic/sensors/${iot:Connection.Thing.ThingName}/*"}
]}`

const e2eMonitor = `{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Action": "iot:Connect", "Resource": "client/monitor"},
 {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "topicfilter/sensors/#"},
 {"Effect": "Allow", "Action": "iot:Receive", "Resource": "topic/sensors/*"}
]}`

type daemon struct {
	pki   *gatewaytest.PKI
	dir   string
	addr  string
	cmd   *exec.Cmd
	log   *gatewaytest.Buffer
	audit string
}

// startDaemon writes a config and starts `edgegw run`; limits is extra YAML
// under `limits:`.
func startDaemon(t *testing.T, limits string) *daemon {
	t.Helper()
	bin := gatewaytest.Edgegw(t)
	d := &daemon{pki: gatewaytest.NewPKI(t, "site"), dir: t.TempDir(), log: new(gatewaytest.Buffer)}
	d.addr = gatewaytest.FreeAddr(t)
	d.audit = filepath.Join(d.dir, "audit.log")
	cfg := fmt.Sprintf(`version: 1
site: e2e
state_dir: %[1]s/state
listeners:
  - name: lan
    address: %[2]q
    tls: {ca: %[3]s, cert: %[4]s, key: "file:%[5]s", crl: %[6]s}
devices: devices.yaml
policies: policies/
store: {dir: %[1]s/state/queue}
metrics: {address: ""}
admin: {socket: %[1]s/state/admin.sock}
audit: {file: %[7]s}
limits:
%[8]s
`, d.dir, d.addr, d.pki.CAFile, d.pki.ServerCert, d.pki.ServerKey, d.pki.CRLFile, d.audit, indent(limits))
	gatewaytest.WriteFile(t, filepath.Join(d.dir, "edgegw.yaml"), []byte(cfg), 0o644)
	gatewaytest.WriteSiteFiles(t, d.dir, e2eRegistry, map[string]string{"sensor": e2eSensor, "monitor": e2eMonitor})
	if err := os.MkdirAll(filepath.Join(d.dir, "state"), 0o700); err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(bin, "run", "-c", filepath.Join(d.dir, "edgegw.yaml"))
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		if !gatewaytest.Terminate(d.cmd.Process, exited, 10*time.Second) {
			t.Errorf("edgegw run did not stop within 10s of SIGTERM")
		}
		if t.Failed() {
			t.Logf("edgegw log:\n%s", d.log.String())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", d.addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			t.Fatalf("edgegw run exited:\n%s", d.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("edgegw run not listening on %s after 15s:\n%s", d.addr, d.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return d
}

func indent(s string) string {
	if s == "" {
		return "  max_clients: 5000"
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		out = append(out, "  "+strings.TrimSpace(l))
	}
	return strings.Join(out, "\n")
}

// pub runs mosquitto_pub (bounded) and returns its output and error.
func (d *daemon) pub(t *testing.T, c *gatewaytest.Client, version, clientID, topic string, extra ...string) (string, error) {
	t.Helper()
	bin := gatewaytest.Need(t, "mosquitto_pub", "mosquitto-clients")
	args := append(d.pki.MosqTLSArgs(d.addr, c), "-V", version, "-q", "1", "-t", topic, "-m", "hello")
	if clientID != "" {
		args = append(args, "-i", clientID)
	}
	args = append(args, extra...)
	return gatewaytest.Run(t, 15*time.Second, bin, args...)
}

func TestE2EConnect(t *testing.T) {
	d := startDaemon(t, "")
	a := d.pki.Issue(t, "sensor-a")
	revoked := d.pki.Issue(t, "sensor-b")
	d.pki.Revoke(t, revoked.Cert)
	other := gatewaytest.NewPKI(t, "other").Issue(t, "sensor-a")
	expired := d.pki.Issue(t, "sensor-a", gatewaytest.Expired())
	time.Sleep(time.Second) // CRL picked up by the file watch (<= 0.5 s)
	for _, v := range []string{"mqttv311", "mqttv5"} {
		for _, tc := range []struct {
			name string
			cert *gatewaytest.Client
			id   string
			ok   bool
		}{
			{"valid", a, "sensor-a", true},
			{"no certificate", nil, "sensor-a", false},
			{"another CA", other, "sensor-a", false},
			{"expired", expired, "sensor-a", false},
			{"revoked", revoked, "sensor-b", false},
			{"wrong client ID", a, "sensor-b", false},
		} {
			t.Run(v+"/"+tc.name, func(t *testing.T) {
				out, err := d.pub(t, tc.cert, v, tc.id, "sensors/sensor-a/t")
				if tc.ok && err != nil {
					t.Fatalf("mosquitto_pub: %v\n%s", err, out)
				}
				if !tc.ok && err == nil {
					t.Fatalf("mosquitto_pub succeeded; want refused\n%s", out)
				}
				if tc.name == "wrong client ID" && !strings.Contains(strings.ToLower(out), "not authori") {
					t.Fatalf("output %q; want CONNACK not authorized", out)
				}
			})
		}
	}
}

func TestE2EAuthorization(t *testing.T) {
	d := startDaemon(t, "")
	sub := gatewaytest.Need(t, "mosquitto_sub", "mosquitto-clients")
	mon := d.pki.Issue(t, "monitor")
	a := d.pki.Issue(t, "sensor-a")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sub, append(d.pki.MosqTLSArgs(d.addr, mon), "-V", "mqttv5", "-i", "monitor", "-t", "sensors/#", "-q", "1", "-v", "-C", "1")...)
	var out gatewaytest.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // let the subscription land
	for _, v := range []string{"mqttv311", "mqttv5"} {
		// 3.1.1: the client is disconnected; 5: PUBACK 0x87 (mosquitto_pub prints it).
		if o, err := d.pub(t, a, v, "sensor-a", "sensors/sensor-b/t"); err == nil && !strings.Contains(o, "Not authorized") {
			t.Errorf("%s: publish to another device's topic reported success\n%s", v, o)
		}
	}
	if o, err := d.pub(t, a, "mqttv311", "sensor-a", "sensors/sensor-a/t"); err != nil {
		t.Fatalf("own topic: %v\n%s", err, o)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("mosquitto_sub: %v\n%s", err, out.String())
	}
	if got := strings.TrimSpace(out.String()); got != "sensors/sensor-a/t hello" {
		t.Fatalf("subscriber got %q; want only the own-topic message", got)
	}
	// Unauthorized subscribe: failure code in SUBACK (mosquitto_sub reports it).
	for _, v := range []string{"mqttv311", "mqttv5"} {
		o, _ := gatewaytest.Run(t, 15*time.Second, sub, append(d.pki.MosqTLSArgs(d.addr, a), "-V", v, "-i", "sensor-a", "-t", "sensors/#", "-C", "1", "-W", "3")...)
		if !strings.Contains(strings.ToLower(o), "denied") {
			t.Errorf("%s: unauthorized subscribe: output %q; want a denied subscription", v, o)
		}
	}
}

type pahoClient struct {
	c    *paho.Client
	msgs chan *paho.Publish
	gone chan struct{}
	at   time.Time // when gone
}

func (d *daemon) paho(t *testing.T, cert *gatewaytest.Client, id string) *pahoClient {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", d.addr, d.pki.ClientTLS(cert))
	if err != nil {
		t.Fatalf("%s: %v", id, err)
	}
	p := &pahoClient{msgs: make(chan *paho.Publish, 1<<16), gone: make(chan struct{})}
	var once sync.Once
	down := func() { once.Do(func() { p.at = time.Now(); close(p.gone) }) }
	p.c = paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn),
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			p.msgs <- pr.Packet
			return true, nil
		}},
		OnClientError: func(error) { down() }, OnServerDisconnect: func(*paho.Disconnect) { down() }})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := p.c.Connect(ctx, &paho.Connect{ClientID: id, KeepAlive: 30, CleanStart: true}); err != nil {
		t.Fatalf("%s connect: %v", id, err)
	}
	t.Cleanup(func() { _ = p.c.Disconnect(&paho.Disconnect{}); conn.Close() })
	return p
}

func (p *pahoClient) subscribe(t *testing.T, filter string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sa, err := p.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
	if err != nil || sa.Reasons[0] != 1 {
		t.Fatalf("subscribe %s: %v", filter, err)
	}
}

// TestE2ERevokeWhileConnected: CRL rewritten -> that client is gone within 1 s;
// another client's QoS 1 stream continues without reconnect or loss.
func TestE2ERevokeWhileConnected(t *testing.T) {
	d := startDaemon(t, "")
	mon := d.paho(t, d.pki.Issue(t, "monitor"), "monitor")
	mon.subscribe(t, "sensors/#")
	aCert := d.pki.Issue(t, "sensor-a")
	a := d.paho(t, aCert, "sensor-a")
	b := d.paho(t, d.pki.Issue(t, "sensor-b"), "sensor-b")
	const n = 1000
	var revokedAt time.Time
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := b.c.Publish(ctx, &paho.Publish{Topic: "sensors/sensor-b/seq", QoS: 1, Payload: []byte(fmt.Sprint(i))})
		cancel()
		if err != nil {
			t.Fatalf("sensor-b publish %d: %v", i, err)
		}
		if i == n/10 {
			revokedAt = time.Now()
			d.pki.Revoke(t, aCert.Cert)
		}
	}
	select {
	case <-a.gone:
	case <-time.After(5 * time.Second):
		t.Fatal("revoked client still connected")
	}
	took := a.at.Sub(revokedAt)
	t.Logf("revoked client disconnected %v after the CRL was rewritten", took)
	if took > time.Second {
		t.Errorf("revocation took %v; want <= 1s", took)
	}
	for i := range n {
		select {
		case m := <-mon.msgs:
			if string(m.Payload) != fmt.Sprint(i) {
				t.Fatalf("message %d: got %q", i, m.Payload)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("message %d missing", i)
		}
	}
	select {
	case <-b.gone:
		t.Fatal("sensor-b reconnected/disconnected")
	case <-mon.gone:
		t.Fatal("monitor disconnected")
	default:
	}
}

// TestE2EIdleHandshakes: 200 connections that never handshake are closed at
// the deadline (or at once, beyond their address's share) and do not stop a
// sensor from connecting.
func TestE2EIdleHandshakes(t *testing.T) {
	d := startDaemon(t, "handshake_timeout: 2s")
	var idle []net.Conn
	// From another address: the pending-handshake budget is shared per
	// source address, so a sensor behind the idle host's own address would
	// share its (taken) share.
	other := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	for range 200 {
		c, err := other.Dial("tcp", d.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	if o, err := d.pub(t, d.pki.Issue(t, "sensor-a"), "mqttv5", "sensor-a", "sensors/sensor-a/t"); err != nil {
		t.Fatalf("sensor blocked: %v\n%s", err, o)
	}
	start := time.Now()
	for i, c := range idle {
		_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatalf("idle %d: got data", i)
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("idle %d: still open after 15s", i)
		}
	}
	t.Logf("200 idle connections closed within %v of the sensor's connect", time.Since(start))
}

// TestE2EOversizedPacket: a PUBLISH header announcing 200 MiB neither
// allocates 200 MiB in the daemon nor keeps the connection.
func TestE2EOversizedPacket(t *testing.T) {
	d := startDaemon(t, "")
	a := d.pki.Issue(t, "sensor-a")
	before, err := gatewaytest.VmRSS(d.cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", d.addr, d.pki.ClientTLS(a))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	connect := connect311("sensor-a", 0x02, 30) // clean session
	hdr := append([]byte{0x30}, binary.AppendUvarint(nil, 200<<20)...)
	if _, err := conn.Write(append(connect, hdr...)); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	ack := make([]byte, 4)
	if _, err := r.Read(ack); err != nil || ack[0] != 0x20 || ack[3] != 0 {
		t.Fatalf("CONNACK % x: %v", ack, err)
	}
	// Keep writing payload bytes; the server must close the connection.
	chunk := make([]byte, 64<<10)
	var sent int
	var werr error
	for sent < 200<<20 {
		_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		var n int
		n, werr = conn.Write(chunk)
		sent += n
		if werr != nil {
			break
		}
	}
	after, err := gatewaytest.VmRSS(d.cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("VmRSS before %d KiB, after %d KiB (+%d KiB); client wrote %d KiB before the server closed: %v", before>>10, after>>10, (after-before)>>10, sent>>10, werr)
	if werr == nil {
		t.Fatal("server accepted 200 MiB of an oversized packet")
	}
	if after-before > 50<<20 {
		t.Fatalf("RSS grew by %d MiB; want < 50 MiB", (after-before)>>20)
	}
}

// TestE2EReloadInvalidPolicy: SIGHUP with an invalid policy keeps the old
// one (valid -> invalid -> valid).
func TestE2EReloadInvalidPolicy(t *testing.T) {
	d := startDaemon(t, "")
	a := d.pki.Issue(t, "sensor-a")
	pol := filepath.Join(d.dir, "policies", "sensor.json")
	check := func(topic string, want bool) {
		t.Helper()
		o, err := d.pub(t, a, "mqttv5", "sensor-a", topic)
		// mosquitto_pub 2.0.11 exits 0 after a PUBACK 0x87; it prints the reason.
		if (err == nil && !strings.Contains(o, "Not authorized")) != want {
			t.Fatalf("publish %s: err %v; want allowed=%v\n%s", topic, err, want, o)
		}
	}
	hup := func() {
		if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
	}
	check("sensors/sensor-a/t", true)
	gatewaytest.WriteFile(t, pol, []byte(`{"Version": "2012-10-17", "Statement": [`), 0o644)
	hup()
	check("sensors/sensor-a/t", true)
	if !strings.Contains(d.log.String(), "reload failed") {
		t.Fatalf("no 'reload failed' in the log:\n%s", d.log.String())
	}
	gatewaytest.WriteFile(t, pol, []byte(strings.ReplaceAll(e2eSensor, "/*\"", "/v2/*\"")), 0o644)
	hup()
	check("sensors/sensor-a/t", false)
	check("sensors/sensor-a/v2/t", true)
}

// TestE2ELoad: 16 publishers x 2000 QoS 1 messages over mTLS to one
// subscriber: nothing lost (counted by publisher and sequence). Then QoS 0:
// every delivery is received or visible as a counted drop in the audit log.
func TestE2ELoad(t *testing.T) {
	d := startDaemon(t, "client_write_queue: 256")
	pubs, per := 16, 2000
	if testing.Short() {
		per = 200
	}
	mon := d.paho(t, d.pki.Issue(t, "monitor"), "monitor")
	mon.subscribe(t, "sensors/#")
	var clients []*pahoClient
	for i := range pubs {
		name := fmt.Sprintf("load-%02d", i)
		clients = append(clients, d.paho(t, d.pki.Issue(t, name), name))
	}
	qos0Received := 0
	for _, qos := range []byte{1, 0} {
		var wg sync.WaitGroup
		for i, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
				defer cancel()
				for seq := range per {
					_, err := c.c.PublishWithOptions(ctx, &paho.Publish{Topic: fmt.Sprintf("sensors/load-%02d/q%d", i, qos), QoS: qos,
						Payload: fmt.Appendf(nil, "%d/%d", i, seq)}, paho.PublishOptions{Method: paho.PublishMethod_AsyncSend})
					if err != nil {
						t.Errorf("publisher %d seq %d: %v", i, seq, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		seen := map[string]bool{}
		idle := time.NewTimer(3 * time.Second)
	recv:
		for len(seen) < pubs*per {
			select {
			case m := <-mon.msgs:
				seen[string(m.Payload)] = true
				idle.Reset(3 * time.Second)
			case <-idle.C:
				break recv
			}
		}
		t.Logf("QoS %d: %d x %d published, %d distinct received", qos, pubs, per, len(seen))
		if qos == 1 && len(seen) != pubs*per {
			t.Fatalf("QoS 1: received %d of %d", len(seen), pubs*per)
		}
		if qos == 0 {
			qos0Received = len(seen)
		}
	}
	// Stop the daemon so pending suppressed-drop counts are flushed, then
	// count the drops the audit log reports.
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if err := d.cmd.Process.Signal(syscall.Signal(0)); err != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	data, err := os.ReadFile(d.audit)
	if err != nil {
		t.Fatal(err)
	}
	var drops int64
	for _, line := range bytes.Split(data, []byte("\n")) {
		var ev struct {
			Event, Reason string
			Count         int64
		}
		if json.Unmarshal(line, &ev) != nil {
			continue
		}
		switch {
		case ev.Event == "drop":
			drops++
		case ev.Event == "deny_suppressed" && ev.Reason == "drop":
			drops += ev.Count
		}
	}
	t.Logf("QoS 0: received %d + audited drops %d = %d of %d", qos0Received, drops, int64(qos0Received)+drops, pubs*per)
	if int64(qos0Received)+drops != int64(pubs*per) {
		t.Errorf("QoS 0: received %d + dropped %d != published %d", qos0Received, drops, pubs*per)
	}
}
