package main

// End-to-end tests of the renewal of the gateway's own upstream certificate
// (issue 21): the real `edgegw run`, Debian's mosquitto as the upstream
// (mTLS with the cloud test CA), the gateway's key in swtpm, QoS 1 sensors
// streaming across the swap. The only test double is the cloud's
// provisioning API (provisioningResponder): a Go MQTT client on that
// Mosquitto answering create-from-csr and RegisterThing with the cloud CA.

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/edgegw/edgegw/gateway/enrol"
	"github.com/edgegw/edgegw/gateway/gatewaytest"
	"github.com/edgegw/edgegw/hw"
)

// signFor issues a client certificate of the upstream's CA for pub.
func signFor(t testing.TB, pki *gatewaytest.PKI, cn string, pub crypto.PublicKey, notBefore, notAfter time.Time) []byte {
	t.Helper()
	out, err := signCert(pki, cn, pub, notBefore, notAfter)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func signCert(pki *gatewaytest.PKI, cn string, pub crypto.PublicKey, notBefore, notAfter time.Time) ([]byte, error) {
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, pki.CA, pub, pki.CAKey)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// provisioningResponder is the cloud's fleet-provisioning API on the
// upstream Mosquitto: create-from-csr signs with the upstream's CA, the
// register call checks the ownership token and the template's parameters.
// Until accept is set, create-from-csr is rejected (a cloud outage).
type provisioningResponder struct {
	pki      *gatewaytest.PKI
	template string
	accept   atomic.Bool
	cli      *paho.Client

	mu       sync.Mutex
	tokens   map[string]string // token -> CN
	rejected int
	issued   []*x509.Certificate
	errs     []string
}

func startProvisioning(t *testing.T, up *gatewaytest.Upstream, template string) *provisioningResponder {
	t.Helper()
	p := &provisioningResponder{pki: up.PKI, template: template, tokens: map[string]string{}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", up.Addr, up.PKI.ClientTLS(up.Cloud))
	if err != nil {
		t.Fatal(err)
	}
	p.cli = paho.NewClient(paho.ClientConfig{
		Conn: packets.NewThreadSafeConn(conn),
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			topic, payload := p.answer(pr.Packet.Topic, pr.Packet.Payload)
			go func() { // not from paho's receive path
				pctx, pc := context.WithTimeout(context.Background(), 5*time.Second)
				defer pc()
				if _, err := p.cli.Publish(pctx, &paho.Publish{Topic: topic, QoS: 1, Payload: payload}); err != nil {
					p.fail("answering on %s: %v", topic, err)
				}
			}()
			return true, nil
		}},
		OnClientError: func(error) {},
	})
	if _, err := p.cli.Connect(ctx, &paho.Connect{ClientID: "provisioning", KeepAlive: 30, CleanStart: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.cli.Disconnect(&paho.Disconnect{}); conn.Close() })
	if _, err := p.cli.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: enrol.TopicCreateFromCSR, QoS: 1}, {Topic: enrol.ProvisionTopic("+"), QoS: 1},
	}}); err != nil {
		t.Fatal(err)
	}
	return p
}

// issuedCert is the i-th certificate the responder issued.
func (p *provisioningResponder) issuedCert(t testing.TB, i int) *x509.Certificate {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if i >= len(p.issued) {
		t.Fatalf("the responder issued %d certificates; want at least %d", len(p.issued), i+1)
	}
	return p.issued[i]
}

func (p *provisioningResponder) fail(format string, args ...any) {
	p.mu.Lock()
	p.errs = append(p.errs, fmt.Sprintf(format, args...))
	p.mu.Unlock()
}

func rejected(topic string, status int, code, msg string) (string, []byte) {
	b, _ := json.Marshal(enrol.ErrorResponse{StatusCode: status, ErrorCode: code, ErrorMessage: msg})
	return topic + enrol.SuffixRejected, b
}

// answer returns the response topic and payload of one request.
func (p *provisioningResponder) answer(topic string, payload []byte) (string, []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if topic == enrol.TopicCreateFromCSR {
		if !p.accept.Load() {
			p.rejected++
			return rejected(topic, 503, "ServiceUnavailable", "test: the provisioning service is down")
		}
		var req enrol.CreateCertificateFromCSRRequest
		if err := json.Unmarshal(payload, &req); err != nil {
			return rejected(topic, 400, enrol.CodeInvalidPayload, err.Error())
		}
		b, _ := pem.Decode([]byte(req.CertificateSigningRequest))
		if b == nil {
			return rejected(topic, 400, enrol.CodeInvalidCSR, "no PEM")
		}
		csr, err := x509.ParseCertificateRequest(b.Bytes)
		if err == nil {
			err = csr.CheckSignature()
		}
		if err != nil {
			return rejected(topic, 400, enrol.CodeInvalidCSR, err.Error())
		}
		certPEM, err := signCert(p.pki, csr.Subject.CommonName, csr.PublicKey, time.Now().Add(-time.Minute), time.Now().Add(12*time.Hour))
		if err != nil {
			p.errs = append(p.errs, "signing: "+err.Error())
			return rejected(topic, 500, enrol.CodeInternal, err.Error())
		}
		cb, _ := pem.Decode(certPEM)
		cert, _ := x509.ParseCertificate(cb.Bytes)
		p.issued = append(p.issued, cert)
		tok := make([]byte, 16)
		_, _ = rand.Read(tok)
		p.tokens[hex.EncodeToString(tok)] = csr.Subject.CommonName
		out, _ := json.Marshal(enrol.CreateCertificateFromCSRResponse{CertificateID: cert.SerialNumber.Text(16), CertificatePem: string(certPEM), CertificateOwnershipToken: hex.EncodeToString(tok)})
		return topic + enrol.SuffixAccepted, out
	}
	if topic != enrol.ProvisionTopic(p.template) {
		return rejected(topic, 404, enrol.CodeNotFound, "no such template")
	}
	var req enrol.RegisterThingRequest
	if err := json.Unmarshal(payload, &req); err != nil {
		return rejected(topic, 400, enrol.CodeInvalidPayload, err.Error())
	}
	cn, ok := p.tokens[req.CertificateOwnershipToken]
	if !ok {
		return rejected(topic, 400, enrol.CodeInvalidToken, "unknown token")
	}
	delete(p.tokens, req.CertificateOwnershipToken)
	if req.Parameters["SerialNumber"] != "7" {
		return rejected(topic, 400, enrol.CodeInvalidParameters, fmt.Sprintf("SerialNumber %q", req.Parameters["SerialNumber"]))
	}
	out, _ := json.Marshal(enrol.RegisterThingResponse{ThingName: cn, DeviceConfiguration: map[string]string{}})
	return topic + enrol.SuffixAccepted, out
}

// renewGW writes the config of a gateway whose upstream key is keyURI with
// certificate certFile, renewing with renewYAML (the tls.renew mapping),
// and starts it. Its route telemetry sends sensors/# upstream; routes are
// more routes (YAML flow mappings).
func renewGW(t *testing.T, up *gatewaytest.Upstream, keyURI, certFile, renewYAML string, routes ...string) *bridgeGW {
	t.Helper()
	g := &bridgeGW{t: t, bin: gatewaytest.Edgegw(t), dir: t.TempDir(), site: gatewaytest.NewPKI(t, "site"), up: up, log: new(gatewaytest.Buffer)}
	g.addr = gatewaytest.FreeAddr(t)
	g.metrics = gatewaytest.FreeAddr(t)
	g.conf = filepath.Join(g.dir, "edgegw.yaml")
	cfg := fmt.Sprintf(`version: 1
site: plant-7
state_dir: %[1]s/state
listeners:
  - name: lan
    address: %[2]q
    tls: {ca: %[3]s, cert: %[4]s, key: "file:%[5]s", crl: %[6]s}
devices: devices.yaml
policies: policies/
store: {dir: %[1]s/state/queue, min_free: 16MiB}
admin: {socket: %[1]s/admin.sock}
audit: {file: %[1]s/audit.log}
metrics: {address: %[12]q}
bridge:
  upstreams: [{url: "mqtts://%[7]s", server_name: localhost}]
  client_id: plant-7-gw
  tls:
    ca: %[8]s
    cert: %[9]s
    key: %[10]q
    renew: %[11]s
  keepalive: 5s
  connect_timeout: 3s
  backoff: {min: 100ms, max: 500ms}
  inflight: 128
  routes:
    - {name: telemetry, topic: "sensors/#", direction: out, qos: 1, remote_prefix: "sites/plant-7/"}
`, g.dir, g.addr, g.site.CAFile, g.site.ServerCert, g.site.ServerKey, g.site.CRLFile, up.Addr, up.PKI.CAFile, certFile, keyURI, renewYAML, g.metrics)
	for _, r := range routes {
		cfg += "    - " + r + "\n"
	}
	gatewaytest.WriteFile(t, g.conf, []byte(cfg), 0o644)
	gatewaytest.WriteSiteFiles(t, g.dir, bridgeRegistry, map[string]string{"sensor": bridgeSensorPolicy, "light": bridgeLightPolicy})
	g.launch(t, 8192)
	return g
}

// auditCount counts the audit lines of event.
func (g *bridgeGW) auditCount(t testing.TB, event string) int {
	data, err := os.ReadFile(filepath.Join(g.dir, "audit.log"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return strings.Count(string(data), `"event":"`+event+`"`)
}

// waitAudit waits (at most within) until event was audited n times.
func (g *bridgeGW) waitAudit(t testing.TB, event string, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for g.auditCount(t, event) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d %s audit lines after %v; want %d", g.auditCount(t, event), event, within, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// upstreamConnects counts the gateway's connections in Mosquitto's log.
func upstreamConnects(up *gatewaytest.Upstream) int {
	return strings.Count(string(up.Log()), "u'"+gatewaytest.GatewayCN+"'")
}

// streamAcrossSwap publishes sensors x per QoS 1 messages while swap runs
// (started once a share has arrived upstream), then a second round after
// it, and checks that every acknowledged message arrived upstream.
func streamAcrossSwap(t *testing.T, g *bridgeGW, cloud *cloudSub, swap func()) {
	t.Helper()
	const sensors, per, after = 10, 1500, 100
	todo := sensorMessages(sensors, per)
	type result struct{ acked, failed []msgID }
	done := make(chan result, 1)
	go func() {
		a, f := g.publishAll(t, todo, 8, nil)
		done <- result{a, f}
	}()
	deadline := time.Now().Add(60 * time.Second)
	for cloud.distinct() < sensors*per/5 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d messages upstream after 60s", cloud.distinct())
		}
		time.Sleep(20 * time.Millisecond)
	}
	before := cloud.distinct()
	swap()
	atSwap := cloud.distinct()
	r := <-done
	if len(r.failed) > 0 {
		t.Fatalf("%d publishes not acknowledged by the gateway: %s", len(r.failed), g.publishErrors())
	}
	var todo2 []msgID
	for _, s := range sensorNames(sensors) {
		for i := range after {
			todo2 = append(todo2, msgID{s, per + i})
		}
	}
	a2, f2 := g.publishAll(t, todo2, 4, nil)
	if len(f2) > 0 {
		t.Fatalf("%d publishes after the swap not acknowledged: %s", len(f2), g.publishErrors())
	}
	acked := map[msgID]bool{}
	for _, m := range append(r.acked, a2...) {
		acked[m] = true
	}
	cloud.waitDistinct(t, len(acked), 30*time.Second, 120*time.Second)
	missing, nMissing, dups := cloud.check(acked)
	t.Logf("%d messages acknowledged by the gateway; upstream: %d before the swap began, %d when it was done, %d in all; %d lost, %d duplicates",
		len(acked), before, atSwap, cloud.distinct(), nMissing, dups)
	if nMissing != 0 {
		t.Errorf("%d messages lost across the swap, e.g. %v", nMissing, missing)
	}
}

// TestRenewE2EAWS: the gateway's certificate (key in swtpm) is due, the
// cloud's provisioning API first refuses (the old identity stays, retried
// with backoff, audited), then signs; the bridge reconnects once under the
// new certificate while QoS 1 messages flow, none lost; the new key is in
// swtpm at the next handle, the old one destroyed; a restart uses the
// renewed identity.
func TestRenewE2EAWS(t *testing.T) {
	up := gatewaytest.NewUpstream(t, gatewaytest.UpstreamOptions{MaxQueued: 10000000, MaxInflight: 1000, Topics: []string{"$aws/#"}})
	cloud := startCloudSub(t, up, "sites/#")
	prov := startProvisioning(t, up, "gw-renewal")
	sw, oldURI, newURI, certFile := dueTPMIdentity(t, up.PKI)

	g := renewGW(t, up, oldURI, certFile, `{source: aws, template: gw-renewal, parameters: {SerialNumber: "7"}, retry_min: 1s, retry_max: 2s, swap_timeout: 20s}`)
	g.waitAudit(t, "identity_renew_failed", 1, 30*time.Second)
	streamAcrossSwap(t, g, cloud, func() {
		prov.accept.Store(true)
		g.waitAudit(t, "identity_renewed", 1, 60*time.Second)
		g.waitAudit(t, "identity_key_destroyed", 1, 10*time.Second)
	})
	prov.mu.Lock()
	rej, issued, perrs := prov.rejected, len(prov.issued), prov.errs
	prov.mu.Unlock()
	if len(perrs) > 0 {
		t.Errorf("responder: %v", perrs)
	}
	if issued != 1 || g.auditCount(t, "identity_renewed") != 1 {
		t.Errorf("certificates issued %d, identity_renewed audited %d; want 1 and 1", issued, g.auditCount(t, "identity_renewed"))
	}
	if n := upstreamConnects(up); n != 2 {
		t.Errorf("gateway connections upstream: %d; want 2 (start, and once under the new certificate)", n)
	}
	t.Logf("create-from-csr rejected %d times before the service came back; %d identity_renew_failed audited", rej, g.auditCount(t, "identity_renew_failed"))

	g.stop()
	checkRenewedState(t, g, oldURI, newURI, prov.issuedCert(t, 0))

	// A restart presents the renewed identity (identity.json) and sends.
	g.start()
	a, f := g.publishAll(t, []msgID{{"sensor-00", 9000}, {"sensor-01", 9000}}, 1, nil)
	if len(f) > 0 || len(a) != 2 {
		t.Fatalf("after the restart: %d acknowledged, %d failed: %s", len(a), len(f), g.publishErrors())
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		cloud.mu.Lock()
		n := cloud.count[msgID{"sensor-01", 9000}]
		cloud.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the message sent after the restart did not arrive upstream")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := g.auditCount(t, "identity_renewed"); n != 1 {
		t.Errorf("identity_renewed after the restart: %d; want still 1 (the renewed certificate is not due)", n)
	}
	if m := scrape(t, g.metrics); sample(m, `edgegw_identity_renewal_failing{bridge="default"}`) != 0 ||
		sample(m, `edgegw_identity_not_after_timestamp_seconds{bridge="default"}`) != float64(prov.issuedCert(t, 0).NotAfter.Unix()) {
		t.Errorf("identity metrics after the restart:\n%s", grepLines(m, "edgegw_identity_"))
	}

	// By hand: `edgegw key rotate` through the daemon renews again, now.
	out, errOut, code := runEdgegw(t, "key", "rotate", "-c", g.conf, "--wait", "60s")
	if code != 0 || !strings.Contains(out, "renewed: serial") {
		t.Fatalf("key rotate: exit %d\n%s%s", code, out, errOut)
	}
	thirdURI := sw.URI("handle=0x81000102")
	status, errOut, code := runEdgegw(t, "status", "-c", g.conf)
	if code != 0 || !strings.Contains(status, "identity:    bridge default serial "+prov.issuedCert(t, 1).SerialNumber.Text(16)) {
		t.Errorf("status after key rotate: exit %d\n%s%s", code, status, errOut)
	}
	if m := scrape(t, g.metrics); sample(m, `edgegw_identity_renewals_total{bridge="default"}`) != 1 {
		t.Errorf("identity metrics after key rotate (this run renewed once):\n%s", grepLines(m, "edgegw_identity_"))
	}
	g.stop()
	checkRenewedState(t, g, newURI, thirdURI, prov.issuedCert(t, 1))
}

func grepLines(s, prefix string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// checkRenewedState checks, with the gateway stopped, what the renewal left:
// identity.json names the new certificate (0600, the issued one) and the
// new key, which is in swtpm and matches; the old key is gone. issued is
// the certificate the cloud issued, when the test knows it.
func checkRenewedState(t *testing.T, g *bridgeGW, oldURI, newURI string, issued *x509.Certificate) *x509.Certificate {
	t.Helper()
	ctx := context.Background()
	dir := filepath.Join(g.dir, "state", "renew", "default")
	data, err := os.ReadFile(filepath.Join(dir, "identity.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rec struct{ Cert, Key, Previous string }
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Key != newURI || rec.Previous != "" {
		t.Errorf("identity.json: key %q previous %q; want %q and none", rec.Key, rec.Previous, newURI)
	}
	fi, err := os.Stat(rec.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s mode %v; want 0600", rec.Cert, fi.Mode().Perm())
	}
	certPEM, _ := os.ReadFile(rec.Cert)
	b, _ := pem.Decode(certPEM)
	if b == nil {
		t.Fatalf("%s holds no PEM", rec.Cert)
	}
	leaf, err := x509.ParseCertificate(b.Bytes)
	if err != nil || issued != nil && !leaf.Equal(issued) {
		t.Fatalf("the stored certificate is not the one the cloud issued (%v)", err)
	}
	if leaf.Subject.CommonName != gatewaytest.GatewayCN {
		t.Errorf("the renewed certificate's CN %q; want %q", leaf.Subject.CommonName, gatewaytest.GatewayCN)
	}
	nk, err := hw.Open(ctx, newURI)
	if err != nil {
		t.Fatalf("the new key in swtpm: %v", err)
	}
	defer nk.Close()
	if !leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(nk.Public()) {
		t.Error("the renewed certificate is not for the key at the new handle")
	}
	if _, err := hw.Open(ctx, oldURI); !errors.Is(err, hw.ErrNotFound) {
		t.Errorf("the old key after the renewal: %v; want it destroyed (ErrNotFound)", err)
	}
	return leaf
}

// TestRenewE2EFileKeyRestart: with a file key the renewal writes gw-g2.key
// beside gw.key and deletes gw.key once the new certificate connected; the
// config still names gw.key, and the gateway starts again on the renewed
// identity (edgegw check does not ask for the destroyed key).
func TestRenewE2EFileKeyRestart(t *testing.T) {
	up := gatewaytest.NewUpstream(t, gatewaytest.UpstreamOptions{MaxQueued: 10000000, Topics: []string{"$aws/#"}})
	cloud := startCloudSub(t, up, "sites/#")
	prov := startProvisioning(t, up, "gw-renewal")
	prov.accept.Store(true)
	dir := t.TempDir()
	keyPath, certFile := filepath.Join(dir, "gw.key"), filepath.Join(dir, "gw.crt")
	k, err := hw.Create(context.Background(), "file:"+keyPath, hw.P256)
	if err != nil {
		t.Fatal(err)
	}
	gatewaytest.WriteFile(t, certFile, signFor(t, up.PKI, gatewaytest.GatewayCN, k.Public(), time.Now().Add(-time.Hour), time.Now().Add(time.Hour)), 0o644)
	_ = k.Close()
	g := renewGW(t, up, "file:"+keyPath, certFile, `{source: aws, template: gw-renewal, parameters: {SerialNumber: "7"}}`)
	g.waitAudit(t, "identity_key_destroyed", 1, 60*time.Second)
	g.stop()
	if _, err := os.Stat(keyPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the old key file after the renewal: %v; want it deleted", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "gw-g2.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the new key file: %v %v; want gw-g2.key, mode 0600", fi, err)
	}
	if out, errOut, code := runEdgegw(t, "check", "-c", g.conf); code != 0 {
		t.Fatalf("edgegw check after the renewal: exit %d\n%s%s", code, out, errOut)
	}
	g.start()
	a, f := g.publishAll(t, []msgID{{"sensor-00", 1}}, 1, nil)
	if len(a) != 1 || len(f) != 0 {
		t.Fatalf("after the restart: %d acknowledged, %d failed: %s", len(a), len(f), g.publishErrors())
	}
	cloud.waitDistinct(t, 1, 20*time.Second, 30*time.Second)
	if n := strings.Count(string(up.Log()), "u'"+gatewaytest.GatewayCN+"'"); n != 3 {
		t.Errorf("gateway connections upstream: %d; want 3 (start, the swap, the restart)", n)
	}
}
