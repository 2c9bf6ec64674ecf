package main

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// estServer is github.com/globalsign/est's estserver (v1.0.6, pinned in
// gateway/est/testdata/estserver, the module gateway/est's own tests build
// it from), a third-party RFC 7030 server whose mock CA is a CA
// of its own (ca, which the upstream Mosquitto is made to trust besides its
// own), serving TLS with that CA's server certificate; simplereenroll is
// authenticated by the gateway's current certificate, which that CA
// issued.
type estServer struct {
	ca   *gatewaytest.PKI
	addr string
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// buildESTServer builds estserver with the go command (module proxy) in
// its own module, the one gateway/est's tests use.
func buildESTServer(t *testing.T) string {
	t.Helper()
	goBin := gatewaytest.Need(t, "go", "golang")
	out := filepath.Join(t.TempDir(), "estserver")
	cmd := exec.Command(goBin, "build", "-o", out, "github.com/globalsign/est/cmd/estserver")
	cmd.Dir = filepath.Join("..", "..", "gateway", "est", "testdata", "estserver")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building estserver (gateway/est/testdata/estserver, needs the Go module proxy: go mod download there): %v\n%s", err, b)
	}
	return out
}

// newESTServer writes estserver's config; start runs it.
func newESTServer(t *testing.T) *estServer {
	t.Helper()
	bin := buildESTServer(t)
	dir := t.TempDir()
	ca := gatewaytest.NewPKI(t, "est")
	kder, err := x509.MarshalPKCS8PrivateKey(ca.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	caKey := filepath.Join(dir, "ca.key")
	gatewaytest.WriteFile(t, caKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	e := &estServer{ca: ca, addr: gatewaytest.FreeAddr(t), log: filepath.Join(dir, "est.log")}
	cfg, _ := json.Marshal(map[string]any{
		"mock_ca": map[string]string{"certificates": ca.CAFile, "private_key": caKey},
		"tls": map[string]any{"listen_address": e.addr, "certificates": ca.ServerCert, "private_key": ca.ServerKey,
			"client_cas": []string{ca.CAFile}},
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
// estserver, issuing from a CA of its own that the upstream trusts besides
// its own) as the source: it is down when the certificate falls due (the renewal fails,
// is audited and retried), comes up while QoS 1 messages flow, and the
// gateway re-enrols with a new swtpm key, authenticated by its current
// certificate, and swaps once with 0 lost.
func TestRenewE2EEST(t *testing.T) {
	up := gatewaytest.NewUpstream(t, gatewaytest.UpstreamOptions{MaxQueued: 10000000, MaxInflight: 1000})
	est := newESTServer(t)
	// The upstream's client trust: its own CA and the EST server's.
	upCA, err := os.ReadFile(up.PKI.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	estCA, err := os.ReadFile(est.ca.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "clients-ca.pem")
	gatewaytest.WriteFile(t, bundle, append(upCA, estCA...), 0o644)
	conf, err := os.ReadFile(up.Conf)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(conf), "cafile "+up.PKI.CAFile+"\n") {
		t.Fatalf("%s has no line cafile %s to replace:\n%s", up.Conf, up.PKI.CAFile, conf)
	}
	gatewaytest.WriteFile(t, up.Conf, []byte(strings.Replace(string(conf), "cafile "+up.PKI.CAFile+"\n", "cafile "+bundle+"\n", 1)), 0o600)
	up.Stop()
	up.Start()
	cloud := startCloudSub(t, up, "sites/#")
	// Enrolled by the EST server's CA, as a gateway that uses EST is (it
	// re-enrols only certificates of its own CA: globalsign/est answers 403
	// "invalid client certificate" to others).
	_, oldURI, newURI, certFile := dueTPMIdentity(t, est.ca)

	g := renewGW(t, up, oldURI, certFile, `{source: est, est: "https://`+est.addr+`", est_ca: `+est.ca.CAFile+`, retry_min: 1s, retry_max: 2s, swap_timeout: 20s}`)
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
	leaf := checkRenewedState(t, g, oldURI, newURI, nil)
	if err := leaf.CheckSignatureFrom(est.ca.CA); err != nil {
		t.Errorf("the renewed certificate is not the EST server's CA's: %v", err)
	}
}
