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

// passwordMosquitto is Debian's mosquitto (gatewaytest.StartMosquitto) on a
// plaintext loopback listener that admits users of a mosquitto_passwd file
// only, with an ACL giving the gateway sites/plant-7/# and the cloud
// sites/#, and persistence (a clean-session-0 subscriber keeps its queue
// over Stop and Start on the same port).
type passwordMosquitto struct{ *gatewaytest.Mosquitto }

func startPasswordMosquitto(t *testing.T, gwPassword, cloudPassword string) *passwordMosquitto {
	t.Helper()
	passwd := gatewaytest.Need(t, "mosquitto_passwd", "mosquitto")
	dir := t.TempDir()
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
	return &passwordMosquitto{gatewaytest.StartMosquitto(t, gatewaytest.MosquittoConfig{
		PasswordFile: pw, ACLFile: acl, Persistence: true, MaxQueued: 10000000, MaxInflight: 1000})}
}

// cloudSub311 is mosquitto_sub as the cloud side: 3.1.1, by password,
// clean session 0 (-c), so it gets what was queued for it while it or the
// broker was away; it reconnects by itself. Lines are "topic payload".
func (m *passwordMosquitto) cloudSub311(t *testing.T, password string) *gatewaytest.Buffer {
	t.Helper()
	host, port, _ := strings.Cut(m.Addr, ":")
	sub := exec.Command(gatewaytest.Need(t, "mosquitto_sub", "mosquitto-clients"), "-h", host, "-p", port, "-V", "mqttv311",
		"-u", "cloud", "-P", password, "-i", "cloud-sub", "-c", "-q", "1", "-t", "sites/#", "-v")
	out := new(gatewaytest.Buffer)
	sub.Stdout, sub.Stderr = out, out
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = sub.Wait(); close(done) }()
	t.Cleanup(func() { gatewaytest.Terminate(sub.Process, done, 5*time.Second) })
	time.Sleep(500 * time.Millisecond) // connected and subscribed before the first message
	return out
}

// arrivals311 parses cloudSub311's lines: first arrival order per sensor,
// distinct count, duplicates, and lines that are no "<sensor> <seq>".
func arrivals311(out string) (order map[string][]int, distinct, dups int, other []string) {
	order = map[string][]int{}
	seen := map[msgID]bool{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		_, payload, _ := strings.Cut(l, " ")
		id, ok := parseMsgID([]byte(payload))
		if !ok {
			other = append(other, l)
			continue
		}
		if seen[id] {
			dups++
			continue
		}
		seen[id] = true
		order[id.sensor] = append(order[id.sensor], id.seq)
	}
	return order, len(seen), dups, other
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
`, up.Addr, pwFile)

	// The cloud side: mosquitto_sub, 3.1.1, by password.
	const n = 200
	host, port, _ := strings.Cut(up.Addr, ":")
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
	log := up.Log()
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

// TestBridgesE2EMQTT311OutageKill: the 3.1.1 password bridge through
// `edgegw run` with the upstream down: 8 sensors publish 500 messages each,
// the gateway is SIGKILLed in the middle and restarted, the sensors publish
// what was not acknowledged; the upstream comes back, goes down again once
// the backlog is half delivered (a flap) and comes back: every acknowledged
// message arrives at the cloud's clean-session-0 subscriber, in order per
// sensor.
func TestBridgesE2EMQTT311OutageKill(t *testing.T) {
	const gwPassword, cloudPassword = "gw-secret-Kp2", "cloud-secret-Wd8"
	up := startPasswordMosquitto(t, gwPassword, cloudPassword)
	sub := up.cloudSub311(t, cloudPassword)
	pwFile := filepath.Join(t.TempDir(), "upstream.pass")
	gatewaytest.WriteFile(t, pwFile, []byte(gwPassword+"\n"), 0o600)
	g := newGW(t, fmt.Sprintf(`bridges:
  - name: scada
    protocol: "3.1.1"
    envelope: topic-suffix
    upstreams: [{url: "mqtt://%s"}]
    client_id: plant-7-gw
    username: plant-7-gw
    password_file: %s
    keepalive: 5s
    connect_timeout: 3s
    backoff: {min: 100ms, max: 500ms}
    inflight: 128
    routes:
      - {name: scada-sensors, topic: "sensors/#", remote_prefix: "sites/plant-7/"}
`, up.Addr, pwFile))
	up.Stop()
	const sensors, per = 8, 500
	todo := sensorMessages(sensors, per)
	acked1, failed := g.publishKilled(t, todo, 1)
	g.start()
	if _, failed2 := g.publishAll(t, failed, 1, nil); len(failed2) > 0 {
		t.Fatalf("%d publishes failed after the restart", len(failed2))
	}
	t.Logf("upstream down: %d acked before SIGKILL, %d after the restart", len(acked1), len(failed))

	up.Start()
	wait := func(want int, limit time.Duration) int {
		t.Helper()
		deadline := time.Now().Add(limit)
		for {
			_, n, _, _ := arrivals311(sub.String())
			if n >= want || time.Now().After(deadline) {
				return n
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if n := wait(len(todo)/2, 60*time.Second); n < len(todo)/2 {
		t.Fatalf("%d of %d distinct messages upstream after 60s", n, len(todo))
	}
	up.Stop() // a flap in the middle of the drain
	up.Start()
	n := wait(len(todo), 90*time.Second)
	order, distinct, dups, other := arrivals311(sub.String())
	if len(other) > 0 {
		t.Errorf("unexpected lines at the cloud: %q", other[:min(len(other), 5)])
	}
	for _, name := range sensorNames(sensors) {
		for i, s := range order[name] {
			if s != i {
				t.Errorf("%s: message %d arrived where %d was next (order per sensor)", name, s, i)
				break
			}
		}
	}
	if n != len(todo) {
		t.Fatalf("%d of %d acknowledged messages arrived (lost %d)", distinct, len(todo), len(todo)-distinct)
	}
	t.Logf("all %d arrived after the outage, the kill and a flap; %d duplicates (resent after reconnects); the gateway lost its upstream connection %d times", distinct, dups, strings.Count(g.log.String(), "upstream connection lost"))
}
