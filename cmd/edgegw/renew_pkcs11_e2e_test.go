package main

import (
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
	"github.com/edgegw/edgegw/hw/hwtest"
)

// dueHSMIdentity is dueTPMIdentity with the key in a SoftHSM2 token (a real
// softhsm2-util token in a temp dir; SOFTHSM2_CONF is set for the test, so
// the daemon, a child, finds it): a P-256 key labelled gw (oldURI), a
// certificate for it with an hour of its two left. newURI (label gw-g2) is
// where the renewal is expected to make the new key.
func dueHSMIdentity(t *testing.T, ca *gatewaytest.PKI) (h *hwtest.SoftHSM, oldURI, newURI, certFile string) {
	t.Helper()
	h = hwtest.StartSoftHSM(t, "gw")
	oldURI, newURI = h.URI("gw"), h.URI("gw-g2")
	return h, oldURI, newURI, dueCert(t, ca, oldURI)
}

// TestRenewE2EPKCS11 is TestRenewE2EAWS with the gateway's key in SoftHSM2:
// once the cloud's provisioning API accepts, the due certificate is renewed through the cloud's provisioning API with
// a new key made in the token (label gw-g2), the bridge reconnects once
// under it while QoS 1 messages flow (none lost), the old key is deleted
// from the token, a restart presents the renewed identity, and `edgegw key
// rotate` right after the restart (the bridge still connecting) renews
// again (label gw-g3). The PIN never reaches the log.
func TestRenewE2EPKCS11(t *testing.T) {
	up := gatewaytest.NewUpstream(t, gatewaytest.UpstreamOptions{MaxQueued: 10000000, MaxInflight: 1000, Topics: []string{"$aws/#"}})
	cloud := startCloudSub(t, up, "sites/#")
	prov := startProvisioning(t, up, "gw-renewal")
	hsm, oldURI, newURI, certFile := dueHSMIdentity(t, up.PKI)

	g := renewGW(t, up, oldURI, certFile, `{source: aws, template: gw-renewal, parameters: {SerialNumber: "7"}, retry_min: 1s, retry_max: 2s, swap_timeout: 20s}`)
	g.waitAudit(t, "identity_renew_failed", 1, 30*time.Second) // the cloud refuses until accept
	streamAcrossSwap(t, g, cloud, func() {
		prov.accept.Store(true)
		g.waitAudit(t, "identity_renewed", 1, 60*time.Second)
		g.waitAudit(t, "identity_key_destroyed", 1, 10*time.Second)
	})
	if n := g.auditCount(t, "identity_renewed"); n != 1 {
		t.Errorf("identity_renewed audited %d times; want 1", n)
	}
	if n := upstreamConnects(up); n != 2 {
		t.Errorf("gateway connections upstream: %d; want 2 (start, and once under the new certificate)", n)
	}
	g.stop()
	checkRenewedState(t, g, oldURI, newURI, prov.issuedCert(t, 0))

	g.start()
	a, f := g.publishAll(t, []msgID{{"sensor-00", 9000}}, 1, nil)
	if len(f) > 0 || len(a) != 1 {
		t.Fatalf("after the restart: %d acknowledged, %d failed: %s", len(a), len(f), g.publishErrors())
	}
	out, errOut, code := runEdgegw(t, "key", "rotate", "-c", g.conf, "--wait", "60s")
	if code != 0 || !strings.Contains(out, "renewed: serial") {
		t.Fatalf("key rotate: exit %d\n%s%s", code, out, errOut)
	}
	g.stop()
	checkRenewedState(t, g, newURI, hsm.URI("gw-g3"), prov.issuedCert(t, 1))
	if strings.Contains(g.log.String(), hsm.PIN) {
		t.Error("the daemon's log holds the token's PIN")
	}
}
