package main

// End-to-end tests of the custom authorizer and of a broken policy file
// (issue 24): the real `edgegw run` binary, a shell script as the
// authorizer on a plaintext loopback listener, mosquitto_pub as clients.

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// authzScript answers as a Lambda authorizer does, by user name: "good" is
// allowed with a policy letting the client publish under local/CLIENT/,
// "hang" never answers (it marks that it was called, then sleeps), anyone
// else is not authenticated.
const authzScript = `#!/bin/sh
ev=$(cat)
case "$ev" in
*'"username":"good"'*)
  cat <<'JSON'
{"isAuthenticated": true, "principalId": "good", "disconnectAfterInSeconds": 3600, "refreshAfterInSeconds": 300,
 "policyDocuments": [{"Version": "2012-10-17", "Statement": [
   {"Effect": "Allow", "Action": "iot:Connect", "Resource": "client/${iot:ClientId}"},
   {"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/local/${iot:ClientId}/*"}]}]}
JSON
  ;;
*'"username":"hang"'*)
  id=$(printf '%s' "$ev" | sed 's/.*"clientId":"\([^"]*\)".*/\1/')
  : > "$(dirname "$0")/called-$id"
  sleep 60
  ;;
*)
  echo '{"isAuthenticated": false, "principalId": "nobody"}'
  ;;
esac
`

// localPub runs mosquitto_pub against the plaintext listener at addr.
func localPub(t testing.TB, addr, clientID, user, topic string) *exec.Cmd {
	bin := gatewaytest.Need(t, "mosquitto_pub", "mosquitto-clients")
	host, port, _ := net.SplitHostPort(addr)
	return exec.Command(bin, "-h", host, "-p", port, "-V", "mqttv5", "-i", clientID, "-u", user, "-P", "pw-"+user,
		"-q", "1", "-t", topic, "-m", "hello")
}

// TestAuthorizerE2E: on a listener with an authorizer script, the client the
// script allows connects and publishes where its returned policy says; one
// it does not authenticate is refused with an audit line giving the reason;
// a call that hangs is denied at the authorizer's timeout, and while two
// such calls hang another client connects at once.
func TestAuthorizerE2E(t *testing.T) {
	up := gatewaytest.NewUpstream(t, cmdUpstream)
	local := gatewaytest.FreeAddr(t)
	g := newRulesGW(t, up, rulesGWOptions{
		registry: rulesRegistry,
		policies: map[string]string{"sensor": rulesSensorPolicy, "alarmer": rulesAlarmerPolicy, "panel": rulesPanelPolicy},
		routes:   rulesRoutes,
		listeners: `  - name: local
    address: "` + local + `"
    authorizer:
      command: [./authz.sh]
      timeout: 3s`,
		files: map[string]string{"authz.sh": authzScript},
	})
	audit := filepath.Join(g.dir, "audit.log")

	if out, err := localPub(t, local, "node-red", "good", "local/node-red/flow").CombinedOutput(); err != nil {
		t.Fatalf("allowed client: mosquitto_pub: %v %s", err, out)
	}
	out, err := localPub(t, local, "intruder", "bad", "local/intruder/x").CombinedOutput()
	if err == nil || !strings.Contains(strings.ToLower(string(out)), "not authori") {
		t.Errorf("refused client: mosquitto_pub = %v %q; want a refusal (not authorised)", err, out)
	}

	// Two hanging calls, then a good connect while they hang.
	var hangs []*exec.Cmd
	var dones []chan error
	for _, id := range []string{"stuck-1", "stuck-2"} {
		c := localPub(t, local, id, "hang", "local/"+id+"/x")
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- c.Wait() }()
		hangs, dones = append(hangs, c), append(dones, done)
		waitFile(t, filepath.Join(g.dir, "called-"+id), 10*time.Second)
	}
	t.Cleanup(func() {
		for _, c := range hangs {
			_ = c.Process.Kill()
		}
	})
	if out, err := localPub(t, local, "node-red-2", "good", "local/node-red-2/flow").CombinedOutput(); err != nil {
		t.Fatalf("allowed client while two authorizer calls hang: mosquitto_pub: %v %s", err, out)
	}
	for i, done := range dones {
		select {
		case err := <-done:
			t.Fatalf("hanging client %d finished (%v) before the allowed client connected; want it still waiting for its authorizer call", i+1, err)
		default:
		}
	}
	for i, done := range dones {
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("hanging client %d: mosquitto_pub succeeded; want a refusal at the authorizer's timeout", i+1)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("hanging client %d not refused within 20s (authorizer timeout 3s)", i+1)
		}
	}
	log := readFile(t, audit)
	for _, want := range []string{
		`"event":"connect_refused"`,
		"the authorizer answered isAuthenticated false",
		"the authorizer did not answer within its timeout",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("audit log lacks %q:\n%s", want, log)
		}
	}
}

// waitFile waits (bounded) until path exists.
func waitFile(t testing.TB, path string, within time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s not created within %v", path, within)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

const brokenRegistry = `version: 1
default: {policies: []}
things:
  - {name: light-1, policies: [light]}
groups:
  - {name: sensors, match: {name: "sensor-*"}, policies: [sensor]}
`

// brokenLight is a policy file with a JSON syntax error on its third line.
const brokenLight = `{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Action": "iot:Connect", "Resource": "client/${iot:Connection.Thing.ThingName}"},
 {"Effect": "Allow" "Action": "iot:Publish", "Resource": "topic/lights/*"}
]}`

// TestPolicyBrokenE2E: one policy file does not parse; the gateway starts,
// the things attaching the good policy work, the thing attaching the broken
// one is refused, the broken file is logged and audited, and `edgegw check`
// refuses the file naming it.
func TestPolicyBrokenE2E(t *testing.T) {
	up := gatewaytest.NewUpstream(t, cmdUpstream)
	g := newRulesGW(t, up, rulesGWOptions{
		registry: brokenRegistry,
		policies: map[string]string{"sensor": rulesSensorPolicy, "light": brokenLight},
		routes:   rulesRoutes,
	})
	if err := g.mosqPubLines(t, "sensor-1", "sensors/sensor-1/temp", []string{`{"temp": 20}`}); err != nil {
		t.Fatalf("sensor-1 (good policy): %v", err)
	}
	err := g.mosqPubLines(t, "light-1", "lights/light-1", []string{"on"})
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "not authori") {
		t.Errorf("light-1 (broken policy): %v; want its connect refused (not authorised)", err)
	}
	lightFile := filepath.Join(g.dir, "policies", "light.json")
	audit := readFile(t, filepath.Join(g.dir, "audit.log"))
	for _, want := range []string{`"event":"policy_broken"`, lightFile, `policy \"light\" did not load`} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit log lacks %q:\n%s", want, audit)
		}
	}
	if !strings.Contains(g.log.String(), "policy did not load") {
		t.Errorf("gateway log does not report the broken policy")
	}
	out, err := exec.Command(g.bin, "check", "-c", g.conf).CombinedOutput()
	if err == nil || !strings.Contains(string(out), lightFile+":3") {
		t.Errorf("edgegw check = %v:\n%s\nwant a refusal naming %s:3", err, out, lightFile)
	}
}
