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
