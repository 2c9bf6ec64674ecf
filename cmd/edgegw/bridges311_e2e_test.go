package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// passwordMosquitto is Debian's mosquitto on a loopback listener that
// admits users of a mosquitto_passwd file only (no certificates), with an
// ACL giving the gateway sites/plant-7/# and the cloud sites/#.
type passwordMosquitto struct {
	addr, logPath string
}

func startPasswordMosquitto(t *testing.T, gwPassword, cloudPassword string) *passwordMosquitto {
	t.Helper()
	bin := gatewaytest.Need(t, "mosquitto", "mosquitto")
	passwd := gatewaytest.Need(t, "mosquitto_passwd", "mosquitto")
	dir := t.TempDir()
	m := &passwordMosquitto{addr: gatewaytest.FreeAddr(t), logPath: filepath.Join(dir, "mosquitto.log")}
	pw := filepath.Join(dir, "passwd")
	for i, u := range [][2]string{{"plant-7-gw", gwPassword}, {"cloud", cloudPassword}} {
		args := []string{"-b", pw, u[0], u[1]}
		if i == 0 {
			args = append([]string{"-c"}, args...)
		}
		if out, err := exec.Command(passwd, args...).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd %s: %v: %s", u[0], err, out)
		}
	}
	acl := filepath.Join(dir, "acl")
	gatewaytest.WriteFile(t, acl, []byte("user plant-7-gw\ntopic readwrite sites/plant-7/#\n\nuser cloud\ntopic readwrite sites/#\n"), 0o600)
	_, port, _ := strings.Cut(m.addr, ":")
	conf := fmt.Sprintf("per_listener_settings false\nlistener %s 127.0.0.1\nallow_anonymous false\npassword_file %s\nacl_file %s\n"+
		"log_dest file %s\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\n", port, pw, acl, m.logPath)
	if os.Geteuid() == 0 {
		conf += "user root\n"
	}
	cf := filepath.Join(dir, "mosquitto.conf")
	gatewaytest.WriteFile(t, cf, []byte(conf), 0o600)
	cmd := exec.Command(bin, "-c", cf)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		gatewaytest.Terminate(cmd.Process, exited, 10*time.Second)
		if t.Failed() {
			b, _ := os.ReadFile(m.logPath)
			t.Logf("mosquitto log:\n%s", gatewaytest.LastBytes(b, 4096))
		}
	})
	gatewaytest.WaitListening(t, m.addr, 10*time.Second)
	return m
}

// TestBridgesE2EMQTT311Password: a bridge with protocol 3.1.1, a username
// and its password in a 0600 file, through `edgegw run`, to a Mosquitto
// that knows users by password only: the messages arrive in order with the
// device and sequence in the topic (envelope topic-suffix), and Mosquitto
// logs the gateway as a 3.1.1 client (p2). `edgegw check` refuses the same
// password file with mode 0644.
func TestBridgesE2EMQTT311Password(t *testing.T) {
	const gwPassword, cloudPassword = "gw-secret-Zq7", "cloud-secret-Xy3"
	up := startPasswordMosquitto(t, gwPassword, cloudPassword)
	pwFile := filepath.Join(t.TempDir(), "upstream.pass")
	gatewaytest.WriteFile(t, pwFile, []byte(gwPassword+"\n"), 0o600)
	bridges := fmt.Sprintf(`bridges:
  - name: scada
    protocol: "3.1.1"
    envelope: topic-suffix
    upstreams: [{url: "mqtt://%s"}]
    client_id: plant-7-gw
    username: plant-7-gw
    password_file: %s
    backoff: {min: 100ms, max: 500ms}
    routes:
      - {name: scada-a, topic: "sensors/sensor-a/#", remote_prefix: "sites/plant-7/"}
`, up.addr, pwFile)

	// The cloud side: mosquitto_sub, 3.1.1, by password.
	const n = 200
	host, port, _ := strings.Cut(up.addr, ":")
	sub := exec.Command(gatewaytest.Need(t, "mosquitto_sub", "mosquitto-clients"), "-h", host, "-p", port, "-V", "mqttv311",
		"-u", "cloud", "-P", cloudPassword, "-i", "cloud-sub", "-q", "1", "-t", "sites/#", "-v", "-C", fmt.Sprint(n), "-W", "60")
	var out gatewaytest.Buffer
	sub.Stdout, sub.Stderr = &out, &out
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	subDone := make(chan error, 1)
	go func() { subDone <- sub.Wait() }()
	time.Sleep(500 * time.Millisecond) // subscribed before the first message (its session is clean)

	g := newGW(t, bridges)
	var todo []msgID
	for i := range n {
		todo = append(todo, msgID{"sensor-a", i})
	}
	if _, failed := g.publishAll(t, todo, 1, nil); len(failed) > 0 {
		t.Fatalf("%d publishes failed", len(failed))
	}
	select {
	case err := <-subDone:
		if err != nil {
			t.Fatalf("mosquitto_sub: %v\n%s", err, out.String())
		}
	case <-time.After(70 * time.Second):
		t.Fatalf("mosquitto_sub did not get %d messages:\n%s", n, out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	next := 0
	for _, l := range lines {
		topic, payload, _ := strings.Cut(l, " ")
		id, ok := parseMsgID([]byte(payload))
		if !ok {
			t.Fatalf("unexpected message %q", l)
		}
		if want := "sites/plant-7/sensors/sensor-a/t/sensor-a/"; !strings.HasPrefix(topic, want) {
			t.Errorf("topic %q; want %s<seq> (envelope topic-suffix)", topic, want)
		}
		if id.seq < next {
			continue // a resend
		}
		if id.seq != next {
			t.Fatalf("message %d arrived where %d was next", id.seq, next)
		}
		next++
	}
	if next != n {
		t.Fatalf("%d distinct messages upstream; want %d", next, n)
	}
	log, _ := os.ReadFile(up.logPath)
	if !strings.Contains(string(log), "as plant-7-gw (p2, c0") || !strings.Contains(string(log), "u'plant-7-gw'") {
		t.Errorf("mosquitto log has no 3.1.1 (p2), clean-session-0 login of plant-7-gw:\n%s", gatewaytest.LastBytes(log, 2048))
	}
	if strings.Contains(g.log.String(), gwPassword) {
		t.Errorf("the gateway logged the upstream password")
	}

	// A password file others can read: check refuses it.
	if err := os.Chmod(pwFile, 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := runEdgegw(t, "check", "-c", g.conf)
	if code != 1 || !strings.Contains(stderr, "has mode 0644: others can read it; run chmod 600") {
		t.Errorf("check with a 0644 password file: exit %d, stderr %q; want 1 and the chmod advice", code, stderr)
	}
}
