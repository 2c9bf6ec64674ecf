package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
	"github.com/edgegw/edgegw/gateway/observe"
)

// TestReloadIdentityE2E: an operator installs a new upstream certificate
// and key (new files, the config pointed at them) and sends SIGHUP while
// QoS 1 messages flow: the bridge reconnects once under the new identity
// (Mosquitto sees its CN as the user), nothing is lost, and the reload
// needs no restart.
func TestReloadIdentityE2E(t *testing.T) {
	const newCN = gatewaytest.GatewayCN + "-b"
	pki := gatewaytest.NewPKI(t, "upstream")
	acl := filepath.Join(t.TempDir(), "acl")
	gatewaytest.WriteFile(t, acl, fmt.Appendf(nil, "user %s\ntopic readwrite sites/plant-7/#\nuser %s\ntopic readwrite sites/plant-7/#\nuser %s\ntopic readwrite sites/#\n",
		gatewaytest.GatewayCN, newCN, gatewaytest.CloudCN), 0o600)
	up := &gatewaytest.Upstream{PKI: pki, Gateway: pki.Issue(t, gatewaytest.GatewayCN), Cloud: pki.Issue(t, gatewaytest.CloudCN)}
	up.Mosquitto = gatewaytest.StartMosquitto(t, gatewaytest.MosquittoConfig{PKI: pki, ClientCerts: true, ACLFile: acl,
		Persistence: true, MaxQueued: 10000000, MaxInflight: 1000})
	cloud := startCloudSub(t, up, "sites/#")

	g := renewGW(t, up, "file:"+up.Gateway.KeyFile, up.Gateway.CertFile, "null")
	next := pki.Issue(t, newCN)
	streamAcrossSwap(t, g, cloud, func() {
		conf, err := os.ReadFile(g.conf)
		if err != nil {
			t.Fatal(err)
		}
		nc := strings.NewReplacer(up.Gateway.CertFile, next.CertFile, up.Gateway.KeyFile, next.KeyFile).Replace(string(conf))
		gatewaytest.WriteFile(t, g.conf, []byte(nc), 0o644)
		if err := g.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(string(up.Log()), "u'"+newCN+"'") {
			if time.Now().After(deadline) {
				t.Fatalf("no upstream connection as %s within 30s of SIGHUP", newCN)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	log := string(up.Log())
	if a, b := strings.Count(log, "u'"+gatewaytest.GatewayCN+"'"), strings.Count(log, "u'"+newCN+"'"); a != 1 || b != 1 {
		t.Errorf("upstream connections: %d as %s, %d as %s; want 1 and 1 (one reconnect, under the new certificate)", a, gatewaytest.GatewayCN, b, newCN)
	}
	out, errOut, code := runEdgegw(t, "status", "-c", g.conf, "-o", "json")
	if code != 0 {
		t.Fatalf("status: exit %d %s", code, errOut)
	}
	var st observe.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	if !st.Reload.OK || len(st.Reload.RestartRequired) > 0 {
		t.Errorf("reload after a new tls.cert and tls.key: ok %v, restart required %v, error %q; want applied live", st.Reload.OK, st.Reload.RestartRequired, st.Reload.Error)
	}
}
