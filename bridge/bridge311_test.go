package bridge

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// The acceptance tests of the MQTT 3.1.1 bridge: a real Mosquitto that
// takes the gateway's user name and password from its password file, and
// the outages of the MQTT 5 tests (restart, kill -9, flapping). Device and
// seq reach the cloud in the configured envelope.

func TestMQTT311ForwardInOrderWithTopicSuffix(t *testing.T) {
	m := startMosquittoAuth(t, authMosqOpts{})
	c := startCloudPassword(t, m, "sites/#", EnvelopeTopicSuffix)
	q := newTestQueue(t)
	sent := enqueueSensorMsgs(t, q, 10, 500, time.Now)
	b := runBridge(t, config311(t, m, EnvelopeTopicSuffix, telemetry), q, nil)

	checkArrived(t, c, b, sent, 60*time.Second)
	if !m.spokeMQTT311(gatewayCN) {
		t.Errorf("mosquitto's log shows no 3.1.1 (p2) connection from %s", gatewayCN)
	}
	if st := b.State(); st.Protocol != "3.1.1" || st.Window != 256 {
		t.Errorf("state protocol %q, window %d; want 3.1.1, the configured 256 (no Receive Maximum in 3.1.1)", st.Protocol, st.Window)
	}
}

func TestMQTT311OutageBacklogWithJSONEnvelope(t *testing.T) {
	m := startMosquittoAuth(t, authMosqOpts{})
	c := startCloudPassword(t, m, "sites/#", EnvelopeJSON)
	q := newTestQueue(t)
	b := runBridge(t, config311(t, m, EnvelopeJSON, telemetry), q, nil)
	eventually(t, 10*time.Second, "bridge connected", func() bool { return b.State().Connected })

	m.stop()
	eventually(t, 10*time.Second, "bridge noticed the outage", func() bool { return !b.State().Connected })
	sent := enqueueSensorMsgs(t, q, 10, 2000, time.Now)
	m.start()
	checkArrived(t, c, b, sent, 90*time.Second)
}

// TestMQTT311KillUpstream kills the upstream with SIGKILL three times while
// 10 sensors stream. Mosquitto saves its state every second (autosave), so
// the test subscriber keeps its session; a message Mosquitto acknowledged
// and then lost in the kill is named as such by the ack trace.
func TestMQTT311KillUpstream(t *testing.T) {
	m := startMosquittoAuth(t, authMosqOpts{autosave: true})
	c := startCloudPassword(t, m, "sites/#", EnvelopeJSON)
	q := newAckTrace(newTestQueue(t))
	b := runBridge(t, config311(t, m, EnvelopeJSON, telemetry), q, nil)
	eventually(t, 10*time.Second, "bridge connected", func() bool { return b.State().Connected })
	time.Sleep(1500 * time.Millisecond) // one autosave with the subscriber's session
	streamThrough(t, q, b, c, func() { restarts(m, 3, 1500*time.Millisecond, m.kill) })
}

func TestMQTT311FlappingUpstreamLosesNothing(t *testing.T) {
	m := startMosquittoAuth(t, authMosqOpts{})
	c := startCloudPassword(t, m, "sites/#", EnvelopeTopicSuffix)
	q := newAckTrace(newTestQueue(t))
	b := runBridge(t, config311(t, m, EnvelopeTopicSuffix, telemetry), q, nil)
	eventually(t, 10*time.Second, "bridge connected", func() bool { return b.State().Connected })
	streamThrough(t, q, b, c, func() { restarts(m, 10, 1200*time.Millisecond, m.stop) })
}

func TestMQTT311InboundCommand(t *testing.T) {
	m := startMosquittoAuth(t, authMosqOpts{})
	c := startCloudPassword(t, m, "sites/#", EnvelopeTopicSuffix)
	q := newTestQueue(t)
	cmd := Route{Name: "cmd", Topic: "cmd/#", Direction: In, QoS: 1, RemotePrefix: "sites/plant-7/"}
	pub := newRecPublisher()
	b := runBridge(t, config311(t, m, EnvelopeTopicSuffix, telemetry, cmd), q, pub)
	eventually(t, 10*time.Second, "bridge connected", func() bool { return b.State().Connected })
	got := awaitInbound(t, c, pub, "sites/plant-7/cmd/light-1", "on")
	if got.topic != "cmd/light-1" || got.payload != "on" || got.qos != 1 {
		t.Fatalf("local publish: %+v; want topic cmd/light-1, payload on, qos 1", got)
	}
}

func TestMQTT311RefusedCredentials(t *testing.T) {
	m := startMosquittoAuth(t, authMosqOpts{})
	for _, tc := range []struct {
		name, user, password string
	}{
		{"wrong password", gatewayCN, "not-the-password"},
		{"unknown user", "nobody", gatewayPassword},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config311(t, m, EnvelopeJSON, telemetry)
			cfg.Username = tc.user
			cfg.PasswordFile = writePasswordFile(t, tc.password)
			b, err := New(cfg, newMemQueue(t), newRecPublisher(), testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := b.dial(ctx, b.cfg.Upstreams[0])
			if s != nil {
				s.nc.Close()
			}
			var ce *ConnackError
			if !errors.As(err, &ce) {
				t.Fatalf("dial: %v; want a *ConnackError", err)
			}
			// Mosquitto 2.0.11 answers a bad 3.1.1 login with return code
			// 5 (not authorized), not 4.
			if !errors.Is(err, ErrNotAuthorized) && !errors.Is(err, ErrBadCredentials) {
				t.Errorf("dial: %v; want ErrNotAuthorized or ErrBadCredentials", err)
			}
			if strings.Contains(err.Error(), tc.password) {
				t.Errorf("the error shows the password: %v", err)
			}
			t.Logf("refusal: %v", err)
		})
	}
}

func TestPasswordFileModes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content string
		mode    os.FileMode
		want    string // "" = accepted
	}{
		{"0600 with newline", "s3cret\n", 0o600, ""},
		{"0400", "s3cret", 0o400, ""},
		{"group readable", "s3cret\n", 0o640, "chmod 600"},
		{"world readable", "s3cret\n", 0o644, "chmod 600"},
		{"empty", "\n", 0o600, "is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writePasswordFile(t, "x")
			if err := os.WriteFile(p, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, tc.mode); err != nil {
				t.Fatal(err)
			}
			pw, err := ReadPasswordFile(p)
			switch {
			case tc.want == "" && (err != nil || string(pw) != "s3cret"):
				t.Errorf("got %q, %v; want s3cret", pw, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v; want an error containing %q", err, tc.want)
			case err != nil && strings.Contains(err.Error(), "s3cret"):
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
	// New refuses a loose file before anything connects.
	p := writePasswordFile(t, "x")
	_ = os.Chmod(p, 0o644)
	cfg := Config{Protocol: MQTT311, Upstreams: []Upstream{{URL: mustURL(t, "mqtt://127.0.0.1:1")}}, ClientID: "gw", Username: "gw", PasswordFile: p}
	if _, err := New(cfg, newMemQueue(t), newRecPublisher(), nil); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("New with a 0644 password file: %v; want the chmod 600 error", err)
	}
}

// checkArrived waits for every sent message at the cloud and checks order,
// device and topic per message.
func checkArrived(t *testing.T, c *cloud, b *Bridge, sent []sentMsg, d time.Duration) {
	t.Helper()
	seqs := make([]uint64, len(sent))
	for i, s := range sent {
		seqs[i] = s.seq
	}
	got := c.waitUnique(len(seqs), d)
	distinct, dups, missing := c.report(seqs)
	st := b.State()
	t.Logf("%d distinct of %d, %d duplicates (bridge resent %d), reconnects %d", distinct, len(seqs), dups, st.Resent, st.Reconnects)
	if got != len(seqs) || len(missing) != 0 {
		t.Fatalf("arrived: %d distinct; want %d (missing %d)", got, len(seqs), len(missing))
	}
	if n := c.outOfOrder(); n != 0 {
		t.Errorf("out-of-order first arrivals: got %d; want 0", n)
	}
	if uint64(dups) > st.Resent {
		t.Errorf("duplicates %d exceed what the bridge resent (%d)", dups, st.Resent)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range sent {
		want := "sites/plant-7/building/" + s.device + "/temp"
		if dev, topic := c.device[s.seq], c.topic[s.seq]; dev != s.device || topic != want {
			t.Errorf("seq %d upstream: device %q, topic %q; want %q, %q", s.seq, dev, topic, s.device, want)
			return
		}
	}
}

// streamThrough enqueues 10 sensors x 10 messages every 100 ms while
// disrupt runs, then checks that everything arrived in order, attributing
// any loss by the ack trace.
func streamThrough(t *testing.T, q *ackTrace, b *Bridge, c *cloud, disrupt func()) {
	t.Helper()
	stop := startProducer(t, q)
	disrupt()
	time.Sleep(time.Second)
	sent := stop()
	all := make([]uint64, len(sent))
	for i, s := range sent {
		all[i] = s.seq
	}
	got := c.waitUnique(len(all), 20*time.Second)
	if _, _, missing := c.report(all); got != len(all) || len(missing) != 0 {
		t.Fatalf("lost: %d of %d missing, by cause:%s\nsubscriber reconnects without a session: %v",
			len(missing), len(all), q.explain(missing), c.lostSessions())
	}
	checkArrived(t, c, b, sent, time.Second)
	if ls := c.lostSessions(); len(ls) != 0 {
		t.Errorf("the test subscriber reconnected without its session %d times: the upstream dropped it", len(ls))
	}
	if st := b.State(); st.Reconnects == 0 || st.UnknownPubacks != 0 {
		t.Errorf("reconnects %d, PUBACKs for unknown ids %d; want > 0, 0", st.Reconnects, st.UnknownPubacks)
	}
	t.Logf("enqueued %d while the upstream was disrupted", len(all))
}

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestAzureProfileShape runs the azure-iot-hub profile against Mosquitto
// set up the way IoT Hub addresses a device (X.509 login, telemetry on
// devices/{id}/messages/events/, commands on devices/{id}/messages/devicebound/):
// it checks what the gateway sends (3.1.1, the property bag with device,
// seq and topic, in order, none lost) and receives, not IoT Hub itself.
func TestAzureProfileShape(t *testing.T) {
	const events = "devices/" + gatewayCN + "/messages/events/"
	const devicebound = "devices/" + gatewayCN + "/messages/devicebound/"
	m := startMosquittoAuth(t, authMosqOpts{certificates: true, gatewayTopics: []string{"devices/" + gatewayCN + "/messages/#"}})
	c := startCloudAs(t, cloudIdentity{
		dial: func(ctx context.Context) (net.Conn, error) {
			d := tls.Dialer{Config: m.tlsFor(cloudCN)}
			return d.DialContext(ctx, "tcp", m.url().Host)
		},
		parse: envelopeParser(EnvelopePropertyBag),
	}, events+"#")
	tel := Route{Name: "telemetry", Topic: "building/#", Direction: Out, QoS: 1, RemotePrefix: events}
	c2d := Route{Name: "cmd", Topic: "#", Direction: In, QoS: 1, LocalPrefix: "cmd/", RemotePrefix: devicebound}
	cfg := testConfig(m, tel, c2d)
	cfg.Profile = ProfileAzureIoTHub
	q := newTestQueue(t)
	sent := enqueueSensorMsgs(t, q, 4, 250, time.Now)
	pub := newRecPublisher()
	b := runBridge(t, cfg, q, pub)
	if got, want := b.cfg.Username, "127.0.0.1/"+gatewayCN+"/?api-version=2021-04-12"; got != want {
		t.Errorf("user name %q; want %q", got, want)
	}

	seqs := make([]uint64, len(sent))
	for i, s := range sent {
		seqs[i] = s.seq
	}
	if got := c.waitUnique(len(seqs), 30*time.Second); got != len(seqs) {
		t.Fatalf("arrived: %d; want %d", got, len(seqs))
	}
	if n := c.outOfOrder(); n != 0 {
		t.Errorf("out of order: %d; want 0", n)
	}
	c.mu.Lock()
	for _, s := range sent {
		// The parser puts the bag's topic after the events prefix.
		if want := events + "building/" + s.device + "/temp"; c.topic[s.seq] != want || c.device[s.seq] != s.device {
			t.Errorf("seq %d: topic %q device %q; want %q %q", s.seq, c.topic[s.seq], c.device[s.seq], want, s.device)
			break
		}
	}
	c.mu.Unlock()
	if !m.spokeMQTT311(gatewayCN) {
		t.Errorf("mosquitto's log shows no 3.1.1 (p2) connection from %s", gatewayCN)
	}

	// A cloud-to-device message with IoT Hub's property bag in the topic.
	bag := "%24.to=%2Fdevices%2F" + gatewayCN + "%2Fmessages%2Fdevicebound&light=1"
	got := awaitInbound(t, c, pub, devicebound+bag, "on")
	if got.topic != "cmd/"+bag || got.payload != "on" {
		t.Errorf("local publish %+v; want topic cmd/%s, payload on", got, bag)
	}
}

// restarts lets the upstream run for up, ends it with end (stop or kill),
// and starts it again after 500 ms, n times.
func restarts(m *mosquitto, n int, up time.Duration, end func()) {
	for range n {
		time.Sleep(up)
		end()
		time.Sleep(500 * time.Millisecond)
		m.start()
	}
}

// awaitInbound publishes payload on topic from the cloud side until the
// first inbound message reaches pub (the bridge subscribes right after
// CONNACK, so the first publishes may find no subscription), at most 10 s.
func awaitInbound(t testing.TB, c *cloud, pub *recPublisher, topic, payload string) inMsg {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if err := c.publish(topic, []byte(payload)); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-pub.ch:
			return got
		case <-time.After(200 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no inbound message on %q reached the publisher within 10s", topic)
			return inMsg{}
		}
	}
}

// startProducer enqueues 10 sensors x 10 messages every 100 ms (at most
// 60 s) until the returned stop is called; stop returns what was enqueued.
func startProducer(t testing.TB, q testQueue) (stop func() []sentMsg) {
	var (
		mu   sync.Mutex
		sent []sentMsg
	)
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for range 600 { // bounded: at most 60 s of ticks
			select {
			case <-quit:
				return
			case <-tick.C:
			}
			s := enqueueSensorMsgs(t, q, 10, 10, time.Now)
			mu.Lock()
			sent = append(sent, s...)
			mu.Unlock()
		}
	}()
	return func() []sentMsg {
		close(quit)
		<-done
		mu.Lock()
		defer mu.Unlock()
		return sent
	}
}
