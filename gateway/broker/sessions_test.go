package broker

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// offlineSite lets every thing named off-* do anything: the offline-delivery
// tests are about MQTT sessions, not policy.
func offlineSite(t *testing.T) func(*Options) {
	return func(o *Options) {
		gatewaytest.WriteSiteFiles(t, filepath.Dir(o.Registry), `version: 1
default: {policies: []}
things: []
groups:
  - name: offline
    match: {name: "off-*"}
    policies: [all]
`, map[string]string{"all": `{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}`})
	}
}

// mosq runs a mosquitto client with stdin and a bounded time; it returns
// standard output.
func mosq(t *testing.T, stdin string, tool string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, gatewaytest.Need(t, tool, "mosquitto-clients"), args...)
	cmd.WaitDelay = time.Second
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v (stderr: %s)", tool, strings.Join(args, " "), err, errb.String())
	}
	return out.String()
}

func hostPort(addr string) []string {
	h, p, _ := net.SplitHostPort(addr)
	return []string{"-h", h, "-p", p}
}

// TestOfflineDelivery: 1,000 QoS 1 messages published while a persistent
// session (MQTT 3.1.1 clean session 0; MQTT 5 session expiry 3600) is away
// arrive complete and in order when it comes back: Debian's mosquitto_sub
// and mosquitto_pub against Debian's Mosquitto and edgegw in the same test.
func TestOfflineDelivery(t *testing.T) {
	const n = 1000
	e := newEnv(t, offlineSite(t))
	brokers := []struct{ name, addr string }{
		{"mosquitto", gatewaytest.PlainMosquitto(t, "max_queued_messages 2000\n")},
		{"edgegw", e.plain},
	}
	versions := []struct {
		name string
		args []string
	}{
		{"v311", []string{"-V", "mqttv311"}},
		{"v5", []string{"-V", "mqttv5", "-x", "3600"}},
	}
	var lines strings.Builder
	for i := range n {
		fmt.Fprintf(&lines, "%d\n", i)
	}
	for _, br := range brokers {
		for _, v := range versions {
			t.Run(br.name+"/"+v.name, func(t *testing.T) {
				sub := "off-sub-" + v.name
				conn := append(hostPort(br.addr), v.args...)
				args := append(append([]string{}, conn...), "-i", sub, "-c", "-q", "1", "-t", "off/"+v.name+"/#")
				mosq(t, "", "mosquitto_sub", append(args, "-E")...) // subscribe, then leave
				mosq(t, lines.String(), "mosquitto_pub", append(append([]string{}, conn...),
					"-i", "off-pub-"+v.name, "-q", "1", "-t", "off/"+v.name+"/a", "-l")...)
				out := mosq(t, "", "mosquitto_sub", append(args, "-C", fmt.Sprint(n), "-W", "30")...)
				got := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
				if len(got) != n {
					t.Fatalf("got %d messages; want %d", len(got), n)
				}
				for i, g := range got {
					if g != fmt.Sprint(i) {
						t.Fatalf("message %d is %q; want %q (complete and in order)", i, g, fmt.Sprint(i))
					}
				}
			})
		}
	}
	if got := e.metrics.SessionDropped.Load(); got != 0 {
		t.Errorf("SessionDropped = %d; want 0", got)
	}
}

// TestOfflineLimits: MQTT 5 Message Expiry to an offline session (an expired
// message is not delivered, a live one carries what remains of its interval
// [MQTT-3.3.2-5], [MQTT-3.3.2-6]) and the session's message cap (Mosquitto's
// max_queued_messages, edgegw's session_max_messages: the newest are
// dropped), against Debian's Mosquitto and edgegw in the same test. edgegw
// counts and audits what it drops.
func TestOfflineLimits(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		offlineSite(t)(o)
		o.Limits.SessionMaxMessages = 5
	})
	brokers := []struct{ name, addr string }{
		{"mosquitto", gatewaytest.PlainMosquitto(t, "max_queued_messages 5\n")},
		{"edgegw", e.plain},
	}
	for _, br := range brokers {
		t.Run(br.name, func(t *testing.T) {
			conn := append(hostPort(br.addr), "-V", "mqttv5")
			sub := append(append([]string{}, conn...), "-x", "3600", "-i", "off-sub-lim", "-c", "-q", "1", "-t", "off/lim/#")
			pub := func(topic, payload string, props ...string) {
				mosq(t, "", "mosquitto_pub", append(append(append([]string{}, conn...), "-i", "off-pub-lim", "-q", "1", "-t", topic, "-m", payload), props...)...)
			}

			mosq(t, "", "mosquitto_sub", append(sub, "-E")...)
			pub("off/lim/short", "short", "-D", "publish", "message-expiry-interval", "1")
			pub("off/lim/long", "long", "-D", "publish", "message-expiry-interval", "3600")
			pub("off/lim/end", "end")
			time.Sleep(2500 * time.Millisecond) // "short" expires
			out := mosq(t, "", "mosquitto_sub", append(sub, "-C", "2", "-W", "10", "-F", "%t|%E|%p")...)
			got := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if len(got) != 2 {
				t.Fatalf("got %q; want the long and end messages", got)
			}
			var left int
			if _, err := fmt.Sscanf(got[0], "off/lim/long|%d|long", &left); err != nil || left > 3598 || left < 3500 {
				t.Errorf("first message %q; want off/lim/long with a remaining expiry in [3500, 3598]", got[0])
			}
			if got[1] != "off/lim/end||end" {
				t.Errorf("second message %q; want off/lim/end||end", got[1])
			}

			mosq(t, "", "mosquitto_sub", append(sub, "-E")...)
			for i := range 8 {
				pub("off/lim/n", fmt.Sprint(i))
			}
			out = mosq(t, "", "mosquitto_sub", append(sub, "-C", "5", "-W", "10")...)
			if want := "0\n1\n2\n3\n4\n"; out != want {
				t.Errorf("got %q; want %q (the first five; the newest dropped)", out, want)
			}
		})
	}
	if got := e.metrics.SessionDropped.Load(); got != 4 {
		t.Errorf("SessionDropped = %d; want 4 (1 expired, 3 over session_max_messages)", got)
	}
	if !auditHas(t, e.audit, "offline session holds session_max_messages 5") {
		t.Errorf("audit log has no line for the messages over session_max_messages")
	}
}
