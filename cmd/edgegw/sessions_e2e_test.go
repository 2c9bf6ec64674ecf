package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// localDaemon is `edgegw run` with only a plaintext loopback listener whose
// clients are the thing node-red (listeners[].thing), for the tests of MQTT
// session behaviour through the real binary.
type localDaemon struct {
	dir, addr, conf string
	cmd             *exec.Cmd
	exited          chan struct{}
	log             *gatewaytest.Buffer
}

const nodeRedRegistry = `version: 1
default: {policies: []}
things:
  - {name: node-red, policies: [nodered]}
`

const nodeRedPolicy = `{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Action": "iot:Connect", "Resource": "client/*"},
 {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": "topic/nodered/*"},
 {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "topicfilter/nodered/*"}]}`

func startLocalDaemon(t *testing.T) *localDaemon {
	t.Helper()
	d := &localDaemon{dir: t.TempDir(), addr: gatewaytest.FreeAddr(t), log: new(gatewaytest.Buffer)}
	d.conf = filepath.Join(d.dir, "edgegw.yaml")
	cfg := fmt.Sprintf(`version: 1
site: e2e
state_dir: %[1]s/state
listeners:
  - name: local
    address: %[2]q
    thing: node-red
devices: devices.yaml
policies: policies/
store: {dir: %[1]s/state/queue}
metrics: {address: ""}
admin: {socket: %[1]s/state/admin.sock}
audit: {file: %[1]s/audit.log}
`, d.dir, d.addr)
	gatewaytest.WriteFile(t, d.conf, []byte(cfg), 0o644)
	gatewaytest.WriteSiteFiles(t, d.dir, nodeRedRegistry, map[string]string{"nodered": nodeRedPolicy})
	if err := os.MkdirAll(filepath.Join(d.dir, "state"), 0o700); err != nil {
		t.Fatal(err)
	}
	d.start(t)
	t.Cleanup(func() {
		if d.cmd != nil && !gatewaytest.Terminate(d.cmd.Process, d.exited, 10*time.Second) {
			t.Errorf("edgegw run did not stop within 10s of SIGTERM")
		}
		if t.Failed() {
			t.Logf("edgegw log:\n%s", d.log.String())
		}
	})
	return d
}

func (d *localDaemon) start(t *testing.T) {
	t.Helper()
	d.cmd = exec.Command(gatewaytest.Edgegw(t), "run", "-c", d.conf)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d.exited = make(chan struct{})
	go func(cmd *exec.Cmd, ch chan struct{}) { _ = cmd.Wait(); close(ch) }(d.cmd, d.exited)
	gatewaytest.WaitListening(t, d.addr, 15*time.Second)
}

// kill9 kills the daemon with SIGKILL and waits for it.
func (d *localDaemon) kill9(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-d.exited
	d.cmd = nil
}

// mosqRun runs a mosquitto client with stdin, bounded; it returns stdout and
// the exit error.
func mosqRun(t *testing.T, stdin, tool string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, gatewaytest.Need(t, tool, "mosquitto-clients"), args...)
	cmd.WaitDelay = time.Second
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &out, &errb
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s %s: %w (stderr %q)", tool, strings.Join(args, " "), err, errb.String())
	}
	return out.String(), err
}

func hostPortArgs(addr string) []string {
	h, p, _ := net.SplitHostPort(addr)
	return []string{"-h", h, "-p", p}
}

// TestE2EOfflineSessions: through the real binary and its config (a
// loopback listener with `thing: node-red`, so mosquitto's own client IDs
// are accepted), 1,000 QoS 1 messages published while a persistent session
// (MQTT 3.1.1 clean session 0; MQTT 5 session expiry 3600) is away arrive
// complete and in order when it comes back: once with the daemon running
// throughout, once across a kill -9 of the daemon and a restart (the
// session, its subscription and its messages are in the store; PUBACK
// waited for their write). Then a session whose expiry passes while the
// daemon is down is discarded at the restart, its messages counted as
// dropped in the audit log.
func TestE2EOfflineSessions(t *testing.T) {
	const n = 1000
	d := startLocalDaemon(t)
	lines := numberLines(n)
	for _, v := range persistentSessionVersions {
		for _, kill := range []bool{false, true} {
			name := v.name
			if kill {
				name += " kill -9"
			}
			t.Run(name, func(t *testing.T) {
				conn := append(hostPortArgs(d.addr), v.args...)
				topic := "nodered/" + v.name + fmt.Sprint(kill)
				sub := append(append([]string{}, conn...), "-i", "nr-sub-"+v.name+fmt.Sprint(kill), "-c", "-q", "1", "-t", topic+"/#")
				if _, err := mosqRun(t, "", "mosquitto_sub", append(sub, "-E")...); err != nil {
					t.Fatal(err)
				}
				waitDisconnected(t, d, "nr-sub-"+v.name+fmt.Sprint(kill))
				if _, err := mosqRun(t, lines, "mosquitto_pub", append(append([]string{}, conn...), "-q", "1", "-t", topic+"/a", "-l")...); err != nil {
					t.Fatal(err)
				}
				if kill {
					// Every PUBACK has been received: the messages are durable.
					d.kill9(t)
					d.start(t)
				}
				out, err := mosqRun(t, "", "mosquitto_sub", append(sub, "-C", fmt.Sprint(n), "-W", "30")...)
				if err != nil {
					t.Fatal(err)
				}
				checkInOrder(t, out, n)
			})
		}
	}

	t.Run("expiry across kill -9", func(t *testing.T) {
		conn := append(hostPortArgs(d.addr), "-V", "mqttv5")
		sub := append(append([]string{}, conn...), "-i", "nr-sub-expire", "-c", "-q", "1", "-t", "nodered/expire/#")
		if _, err := mosqRun(t, "", "mosquitto_sub", append(sub, "-x", "2", "-E")...); err != nil {
			t.Fatal(err)
		}
		if _, err := mosqRun(t, "0\n1\n2\n", "mosquitto_pub", append(append([]string{}, conn...), "-q", "1", "-t", "nodered/expire/a", "-l")...); err != nil {
			t.Fatal(err)
		}
		d.kill9(t)
		// The 2 s session expiry passes while the daemon is down (2 s: the
		// daemon itself would expire it after 2 to 3 s, before the kill if
		// the publish were slow).
		time.Sleep(3100 * time.Millisecond)
		d.start(t)
		// -d prints the packets: a successful CONNACK and no PUBLISH.
		out, err := mosqRun(t, "", "mosquitto_sub", append(sub, "-x", "3600", "-d", "-C", "1", "-W", "2")...)
		if strings.Contains(out, "received PUBLISH") || !strings.Contains(out, "received CONNACK (0)") {
			t.Fatalf("after the session expired across kill -9: %q (%v); want a new session and nothing delivered", out, err)
		}
		audit, err := os.ReadFile(filepath.Join(d.dir, "audit.log"))
		if err != nil {
			t.Fatal(err)
		}
		if want := "3 message(s) for offline session: session expired while the daemon was stopped"; !bytes.Contains(audit, []byte(want)) {
			t.Fatalf("audit log has no %q:\n%s", want, audit)
		}
	})
}

// persistentSessionVersions: mosquitto_sub and mosquitto_pub arguments for
// a persistent session in each MQTT version (MQTT 5 needs a session expiry).
var persistentSessionVersions = []struct {
	name string
	args []string
}{{"v311", []string{"-V", "mqttv311"}}, {"v5", []string{"-V", "mqttv5", "-x", "3600"}}}

// numberLines is the lines 0 to n-1 (what checkInOrder expects back).
func numberLines(n int) string {
	var lines strings.Builder
	for i := range n {
		fmt.Fprintf(&lines, "%d\n", i)
	}
	return lines.String()
}

// checkInOrder fails unless out is the lines 0 to n-1, in order.
func checkInOrder(t *testing.T, out string, n int) {
	t.Helper()
	got := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(got) != n {
		t.Fatalf("got %d messages; want %d", len(got), n)
	}
	for i, g := range got {
		if g != fmt.Sprint(i) {
			t.Fatalf("message %d is %q; want %d (complete and in order)", i, g, i)
		}
	}
}

// TestE2EQoS2PubrecDurable: a QoS 2 message for an offline persistent
// session is durable when its PUBREC reaches the publisher, as a QoS 1
// message is at its PUBACK: after the PUBREC the publisher never sends it
// again [MQTT-4.3.3-4]. A raw MQTT 3.1.1 publisher sends 50 QoS 2
// PUBLISHes, each after the previous PUBREC, and the daemon is killed
// (SIGKILL) as soon as the last PUBREC is read, before any PUBREL; after the
// restart, Debian's mosquitto_sub resumes the session and gets all 50, in
// order.
func TestE2EQoS2PubrecDurable(t *testing.T) {
	const n = 50
	d := startLocalDaemon(t)
	sub := append(hostPortArgs(d.addr), "-V", "mqttv311", "-i", "nr-sub-qos2", "-c", "-q", "2", "-t", "nodered/qos2/#")
	if _, err := mosqRun(t, "", "mosquitto_sub", append(sub, "-E")...); err != nil {
		t.Fatal(err)
	}
	waitDisconnected(t, d, "nr-sub-qos2")
	c, err := net.DialTimeout("tcp", d.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	// CONNECT: MQTT 3.1.1, clean session, keep alive 30, client ID nr-pub-qos2.
	connect := append([]byte{0x10, 23, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 30, 0, 11}, "nr-pub-qos2"...)
	if _, err := c.Write(connect); err != nil {
		t.Fatal(err)
	}
	if b := readRaw(t, r); len(b) != 4 || b[0] != 0x20 || b[3] != 0 {
		t.Fatalf("CONNACK % x", b)
	}
	topic := "nodered/qos2/a"
	for i := range n {
		payload := fmt.Sprint(i)
		id := uint16(i + 1)
		pk := []byte{0x34, byte(2 + len(topic) + 2 + len(payload)), 0, byte(len(topic))}
		pk = append(append(append(pk, topic...), byte(id>>8), byte(id)), payload...)
		if _, err := c.Write(pk); err != nil {
			t.Fatal(err)
		}
		if b := readRaw(t, r); len(b) != 4 || b[0] != 0x50 || b[2] != byte(id>>8) || b[3] != byte(id) {
			t.Fatalf("message %d: got % x; want PUBREC %d", i, b, id)
		}
	}
	d.kill9(t) // right after the last PUBREC: no PUBREL was sent
	d.start(t)
	out, err := mosqRun(t, "", "mosquitto_sub", append(sub, "-C", fmt.Sprint(n), "-W", "30")...)
	if err != nil {
		t.Fatalf("%v (got %q)", err, out)
	}
	checkInOrder(t, out, n)
}

// waitDisconnected waits (at most 10 s) until the daemon's audit log says
// clientID's connection ended: the session is offline from then on, so
// what the test publishes next goes to its outbox (sessions.go), not to
// the leaving connection (whence it would come back as a resend with DUP
// and its first packet identifier [MQTT-4.4.0-1]: a different path).
func waitDisconnected(t *testing.T, d *localDaemon, clientID string) {
	t.Helper()
	want := []byte(`"client_id":"` + clientID + `"`)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		b, _ := os.ReadFile(filepath.Join(d.dir, "audit.log"))
		for _, line := range bytes.Split(b, []byte("\n")) {
			if bytes.Contains(line, []byte(`"event":"disconnect"`)) && bytes.Contains(line, want) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no disconnect of %s in the audit log within 10 s", clientID)
		}
	}
}

// readRaw reads one MQTT packet (fixed header included).
func readRaw(t *testing.T, r *bufio.Reader) []byte {
	t.Helper()
	first, err := r.ReadByte()
	if err != nil {
		t.Fatal(err)
	}
	out := []byte{first}
	n, mult := 0, 1
	for range 4 {
		d, err := r.ReadByte()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
		n += int(d&0x7f) * mult
		mult *= 128
		if d&0x80 == 0 {
			break
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		t.Fatal(err)
	}
	return append(out, body...)
}

// TestE2EConnectedSessionKill9: a persistent session whose client is
// connected when the daemon is killed (SIGKILL) survives: Debian's
// mosquitto_sub subscribes (clean session 0 / session expiry 3600) and
// stays connected; once its SUBACK is in, the daemon is killed and so is
// that mosquitto_sub; after the restart 100 QoS 1 messages published by
// mosquitto_pub reach the session when mosquitto_sub comes back with the
// same client ID, complete and in order (MQTT 3.1.1 and 5).
func TestE2EConnectedSessionKill9(t *testing.T) {
	const n = 100
	d := startLocalDaemon(t)
	lines := numberLines(n)
	for _, v := range persistentSessionVersions {
		t.Run(v.name, func(t *testing.T) {
			conn := append(hostPortArgs(d.addr), v.args...)
			topic := "nodered/live-" + v.name
			sub := append(append([]string{}, conn...), "-i", "nr-live-"+v.name, "-c", "-q", "1", "-t", topic+"/#")
			// stdbuf -oL: its debug lines as they happen, not when the pipe's buffer fills.
			live := exec.Command(gatewaytest.Need(t, "stdbuf", "coreutils"), append([]string{"-oL", gatewaytest.Need(t, "mosquitto_sub", "mosquitto-clients")}, append(sub, "-d")...)...)
			out := new(gatewaytest.Buffer)
			live.Stdout, live.Stderr = out, out
			if err := live.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan struct{})
			go func() { _ = live.Wait(); close(exited) }()
			defer func() {
				_ = live.Process.Signal(syscall.SIGKILL)
				<-exited
			}()
			deadline := time.Now().Add(15 * time.Second)
			for !strings.Contains(out.String(), "received SUBACK") {
				if time.Now().After(deadline) {
					t.Fatalf("mosquitto_sub got no SUBACK within 15 s:\n%s", out.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			d.kill9(t) // the session's client is connected
			_ = live.Process.Signal(syscall.SIGKILL)
			<-exited
			d.start(t)
			if _, err := mosqRun(t, lines, "mosquitto_pub", append(append([]string{}, conn...), "-q", "1", "-t", topic+"/a", "-l")...); err != nil {
				t.Fatal(err)
			}
			got, err := mosqRun(t, "", "mosquitto_sub", append(sub, "-C", fmt.Sprint(n), "-W", "30")...)
			if err != nil {
				t.Fatalf("%v (got %d lines)", err, strings.Count(got, "\n"))
			}
			checkInOrder(t, got, n)
		})
	}
}
