package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
	"github.com/edgegw/edgegw/hw"
	"github.com/edgegw/edgegw/hw/hwtest"
)

// TestKeyRotateDaemonStopped: a site engineer rotates the gateway's key in
// a maintenance window, the service stopped. `edgegw key rotate` renews
// from the command itself, as the daemon would: new key in swtpm at the
// next handle, the cloud's provisioning API signs it over a connection as
// the gateway, the old key destroyed, audited; the daemon then starts on
// the new identity and sends. While the queue is locked (a daemon whose
// admin socket does not answer) it refuses. Before, it exited 3, "not
// running". (With the daemon running it goes through the daemon:
// TestRenewE2EAWS, TestRenewE2EPKCS11.)
func TestKeyRotateDaemonStopped(t *testing.T) {
	up := gatewaytest.NewUpstream(t, gatewaytest.UpstreamOptions{MaxQueued: 100000, Topics: []string{"$aws/#"}})
	cloud := startCloudSub(t, up, "sites/#")
	prov := startProvisioning(t, up, "gw-renewal")
	prov.accept.Store(true)
	sw := hwtest.StartSWTPM(t)
	oldURI, newURI := sw.URI("handle=0x81000100"), sw.URI("handle=0x81000101")
	k, err := hw.Create(context.Background(), oldURI, hw.P256)
	if err != nil {
		t.Fatal(err)
	}
	certFile := filepath.Join(t.TempDir(), "gw.crt")
	// 60 days with 59 left: not due (renewal starts 30 days before).
	gatewaytest.WriteFile(t, certFile, signFor(t, up.PKI, gatewaytest.GatewayCN, k.Public(), time.Now().Add(-24*time.Hour), time.Now().Add(59*24*time.Hour)), 0o644)
	_ = k.Close()

	g := renewGW(t, up, oldURI, certFile, `{source: aws, template: gw-renewal, parameters: {SerialNumber: "7"}}`,
		`{name: cmd, topic: "cmd/#", direction: in, qos: 1, remote_prefix: "sites/plant-7/"}`)
	if a, f := g.publishAll(t, []msgID{{"sensor-00", 1}}, 1, nil); len(a) != 1 || len(f) != 0 {
		t.Fatalf("before the rotation: %d acknowledged, %d failed: %s", len(a), len(f), g.publishErrors())
	}
	cloud.waitDistinct(t, 1, 20*time.Second, 30*time.Second)
	// A command from the cloud reaches the gateway: its upstream session
	// holds the subscription.
	cloudCommand(t, prov, "sites/plant-7/cmd/warmup")
	waitInbound(t, g, 1)
	g.stop()
	// A command for the stopped gateway: the upstream keeps it in the
	// gateway's session; the rotation, connecting as the gateway, must
	// leave it there.
	cloudCommand(t, prov, "sites/plant-7/cmd/held")

	// A queue held by someone else: refused, nothing changed.
	qdir, err := os.Open(filepath.Join(g.dir, "state", "queue"))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(qdir.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := runEdgegw(t, "key", "rotate", "-c", g.conf, "--wait", "60s")
	qdir.Close()
	if code != 1 || !strings.Contains(errOut, "is in use") {
		t.Fatalf("key rotate with the queue locked: exit %d, %q; want 1, in use", code, errOut)
	}

	connects := upstreamConnects(up)
	out, errOut, code := runEdgegw(t, "key", "rotate", "-c", g.conf, "--wait", "60s")
	if code != 0 || !strings.Contains(out, "renewed: serial") {
		t.Fatalf("key rotate with the daemon stopped: exit %d\n%s%s", code, out, errOut)
	}
	if n := upstreamConnects(up) - connects; n != 2 {
		t.Errorf("the rotation connected upstream %d times; want 2 (under the old identity, then the new)", n)
	}
	checkRenewedState(t, g, oldURI, newURI, prov.issuedCert(t, 0))
	if r, d := g.auditCount(t, "identity_renewed"), g.auditCount(t, "identity_key_destroyed"); r != 1 || d != 1 {
		t.Errorf("audited identity_renewed %d, identity_key_destroyed %d; want 1 and 1", r, d)
	}

	g.start()
	if a, f := g.publishAll(t, []msgID{{"sensor-00", 2}}, 1, nil); len(a) != 1 || len(f) != 0 {
		t.Fatalf("after the rotation: %d acknowledged, %d failed: %s", len(a), len(f), g.publishErrors())
	}
	cloud.waitDistinct(t, 2, 20*time.Second, 30*time.Second)
	waitInbound(t, g, 1) // the held command, delivered by the restarted daemon
	if n := g.auditCount(t, "identity_renewed"); n != 1 {
		t.Errorf("identity_renewed after the restart: %d; want still 1", n)
	}
}

// cloudCommand publishes a QoS 1 message on topic as the cloud.
func cloudCommand(t *testing.T, prov *provisioningResponder, topic string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := prov.cli.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte("{}")}); err != nil {
		t.Fatalf("the cloud publishing %s: %v", topic, err)
	}
}

// waitInbound waits (20 s at most) until the gateway has delivered n
// messages from the upstream on its route cmd since it started.
func waitInbound(t *testing.T, g *bridgeGW, n float64) {
	t.Helper()
	const series = `edgegw_route_inbound_messages_total{result="delivered",route="cmd"}`
	var got float64
	for range 200 {
		if got = sample(scrape(t, g.metrics), series); got >= n {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s = %v after 20s; want %v", series, got, n)
}
