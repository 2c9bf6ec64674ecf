package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
	"github.com/edgegw/edgegw/hw"
	"github.com/edgegw/edgegw/hw/hwtest"
)

// estServer is github.com/globalsign/est's estserver (v1.0.6, pinned in
// testdata/estserver), a third-party RFC 7030 server whose mock CA is the
// upstream's CA (so Mosquitto trusts what it issues), serving TLS with the
// upstream's server certificate and accepting client certificates of that
// CA (simplereenroll is authenticated by the current one).
type estServer struct {
	addr string
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// buildESTServer builds estserver with the go command (module proxy) in
// its own module.
func buildESTServer(t *testing.T) string {
	t.Helper()
	goBin := gatewaytest.Need(t, "go", "golang")
	out := filepath.Join(t.TempDir(), "estserver")
	cmd := exec.Command(goBin, "build", "-o", out, "github.com/globalsign/est/cmd/estserver")
	cmd.Dir = filepath.Join("testdata", "estserver")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building estserver (testdata/estserver, needs the Go module proxy): %v\n%s", err, b)
	}
	return out
}

// newESTServer writes estserver's config; start runs it.
func newESTServer(t *testing.T, up *gatewaytest.Upstream) *estServer {
	t.Helper()
	bin := buildESTServer(t)
	dir := t.TempDir()
	kder, err := x509.MarshalPKCS8PrivateKey(up.PKI.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	caKey := filepath.Join(dir, "ca.key")
	gatewaytest.WriteFile(t, caKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	e := &estServer{addr: gatewaytest.FreeAddr(t), log: filepath.Join(dir, "est.log")}
	cfg, _ := json.Marshal(map[string]any{
		"mock_ca": map[string]string{"certificates": up.PKI.CAFile, "private_key": caKey},
		"tls": map[string]any{"listen_address": e.addr, "certificates": up.PKI.ServerCert, "private_key": up.PKI.ServerKey,
			"client_cas": []string{up.PKI.CAFile}},
		"healthcheck_password": "test", "timeout": 30, "log_file": e.log,
	})
	conf := filepath.Join(dir, "est.json")
	gatewaytest.WriteFile(t, conf, cfg, 0o600)
	e.cmd = exec.Command(bin, "-config", conf)
	t.Cleanup(func() {
		e.stop(t)
		if t.Failed() {
			b, _ := os.ReadFile(e.log)
			t.Logf("estserver log:\n%s", gatewaytest.LastBytes(b, 4096))
		}
	})
	return e
}

func (e *estServer) start(t *testing.T) {
	t.Helper()
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e.done = make(chan struct{})
	go func() { _ = e.cmd.Wait(); close(e.done) }()
	gatewaytest.WaitListening(t, e.addr, 10*time.Second)
}

func (e *estServer) stop(t *testing.T) {
	if e.done == nil {
		return
	}
	if !gatewaytest.Terminate(e.cmd.Process, e.done, 10*time.Second) {
		t.Errorf("estserver did not stop within 10s")
	}
	e.done = nil
}

// TestRenewE2EEST: as TestRenewE2EAWS with an EST server (the third-party
// estserver) as the source: it is down when the certificate falls due (the
// renewal fails, is audited and retried), comes up while QoS 1 messages
// flow, and the gateway re-enrols with a new swtpm key, authenticated by
// its current certificate, and swaps once with 0 lost.
func TestRenewE2EEST(t *testing.T) {
	up := gatewaytest.NewUpstream(t, gatewaytest.UpstreamOptions{MaxQueued: 10000000, MaxInflight: 1000})
	cloud := startCloudSub(t, up, "sites/#")
	est := newESTServer(t, up)
	sw := hwtest.StartSWTPM(t)
	ctx := context.Background()
	oldURI, newURI := sw.URI("handle=0x81000100"), sw.URI("handle=0x81000101")
	k, err := hw.Create(ctx, oldURI, hw.P256)
	if err != nil {
		t.Fatal(err)
	}
	certFile := filepath.Join(t.TempDir(), "gw.crt")
	gatewaytest.WriteFile(t, certFile, signFor(t, up.PKI, gatewaytest.GatewayCN, k.Public(), time.Now().Add(-time.Hour), time.Now().Add(time.Hour)), 0o644)
	_ = k.Close()

	g := renewGW(t, up, oldURI, certFile, `{source: est, est: "https://`+est.addr+`", retry_min: 1s, retry_max: 2s, swap_timeout: 20s}`)
	g.waitAudit(t, "identity_renew_failed", 1, 30*time.Second)
	streamAcrossSwap(t, g, cloud, func() {
		est.start(t)
		g.waitAudit(t, "identity_renewed", 1, 60*time.Second)
		g.waitAudit(t, "identity_key_destroyed", 1, 10*time.Second)
	})
	if n := upstreamConnects(up); n != 2 {
		t.Errorf("gateway connections upstream: %d; want 2 (start, and once under the new certificate)", n)
	}
	t.Logf("%d identity_renew_failed audited while the EST server was down", g.auditCount(t, "identity_renew_failed"))
	g.stop()
	checkRenewedState(t, g, oldURI, newURI, nil)
}
