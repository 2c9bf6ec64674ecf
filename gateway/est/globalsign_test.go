package est

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
	"github.com/edgegw/edgegw/hw"
	"github.com/edgegw/edgegw/hw/hwtest"
)

// The client against a third-party EST server: GlobalSign's estserver (github.com/globalsign/est
// v1.0.6, MIT), built from testdata/estserver, a module of its own: est v1.0.6 imports go-tpm's
// pre-0.9 tpm2 API (tpm2.Public, tpm2.DecodePublic), which go-tpm v0.9.x, the version hw needs,
// no longer has at that path, so `go get -tool` in this module fails to build it (one build
// list per module). Its go.sum pins every dependency; `go build` fetches them through the
// module proxy, or the module cache, once.
//
// The estserver serves its "mock CA" from a CA certificate and key made here at test time, on
// 127.0.0.1 with a server certificate of that CA, and verifies client certificates of that CA
// (VerifyClientCertIfGiven). It answers simpleenroll without authentication, requires the TLS
// client certificate and the same subject for simplereenroll, and under the label
// "triggererrors" answers CN "Trigger Error Deferred" with 202 Retry-After 600 and
// "Trigger Error Forbidden" with 403. The Go double in est_test.go stays for what it cannot
// do: HTTP Basic bootstrap, bad answers (BER, wrong content types, no certificate for the key).

// estServerBin builds GlobalSign's estserver into a temporary directory.
func estServerBin(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build the third-party EST server (%v): install Go and put it on PATH", err)
	}
	out := filepath.Join(t.TempDir(), "estserver")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", out, "github.com/globalsign/est/cmd/estserver")
	cmd.Dir = filepath.Join("testdata", "estserver")
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building github.com/globalsign/est/cmd/estserver v1.0.6 in testdata/estserver: %v\n%s\n(offline? fill the module cache once: cd gateway/est/testdata/estserver && go mod download)", err, b)
	}
	return out
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startGlobalSignEST runs estserver with ca as its CA and returns its base URL.
func startGlobalSignEST(t *testing.T, ca *testCA) string {
	t.Helper()
	bin := estServerBin(t)
	dir := t.TempDir()
	caKey, err := x509.MarshalECPrivateKey(ca.key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", ca.cert.Raw)
	writePEM(t, filepath.Join(dir, "ca.key"), "EC PRIVATE KEY", caKey)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvCert := ca.sign(t, mustSubject(t, "est.test"), srvKey.Public(), &x509.Certificate{IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}})
	srvKeyDER, _ := x509.MarshalECPrivateKey(srvKey)
	writePEM(t, filepath.Join(dir, "server.pem"), "CERTIFICATE", srvCert.Raw)
	writePEM(t, filepath.Join(dir, "server.key"), "EC PRIVATE KEY", srvKeyDER)
	addr := gatewaytest.FreeAddr(t)
	cfg, _ := json.Marshal(map[string]any{
		"mock_ca": map[string]string{"certificates": filepath.Join(dir, "ca.pem"), "private_key": filepath.Join(dir, "ca.key")},
		"tls": map[string]any{"listen_address": addr, "certificates": filepath.Join(dir, "server.pem"),
			"private_key": filepath.Join(dir, "server.key"), "client_cas": []string{filepath.Join(dir, "ca.pem")}},
		"allowed_hosts": []string{"127.0.0.1"},
		"timeout":       30,
		"log_file":      filepath.Join(dir, "est.log"),
	})
	conf := filepath.Join(dir, "est.json")
	if err := os.WriteFile(conf, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-config", conf)
	var stderr gatewaytest.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "est.log"))
			t.Logf("estserver stderr:\n%s\nlog:\n%s", stderr.String(), log)
		}
	})
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	for i := 0; ; i++ { // until it answers TLS, at most 10 s
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("estserver exited: %v\n%s", err, stderr.String())
		default:
		}
		if i == 100 {
			t.Fatalf("estserver does not answer on %s: %v\n%s", addr, err, stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return "https://" + addr
}

// fileKey is a new P-256 key in a file, opened through hw as the gateway opens keys.
func fileKey(t *testing.T) hw.Key {
	t.Helper()
	k, err := hw.Create(context.Background(), "file:"+filepath.Join(t.TempDir(), "key.pem"), hw.P256)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k.Close() })
	return k
}

// cacerts, simpleenroll and simplereenroll against GlobalSign's estserver, with keys in files:
// the enrolled certificate is for the CSR's key and chains to the CA; re-enrolment is
// authenticated by the current certificate in TLS and gives a certificate for the new key with
// the same subject and names; a CSR for another subject is refused by the server.
func TestGlobalSignESTFileKeys(t *testing.T) {
	ca := newCA(t)
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	c := &Client{Server: startGlobalSignEST(t, ca), RootCAs: pool, Timeout: 20 * time.Second}
	ctx := context.Background()

	certs, err := c.CACerts(ctx)
	if err != nil {
		t.Fatalf("cacerts: %v", err)
	}
	if len(certs) != 1 || !certs[0].Equal(ca.cert) {
		t.Fatalf("cacerts = %d certificates; want the test CA", len(certs))
	}

	key := fileKey(t)
	chain, err := c.SimpleEnroll(ctx, csrFor(t, key, "gw-plant-7", "gw.plant-7.example"))
	if err != nil {
		t.Fatalf("simpleenroll: %v", err)
	}
	leaf := chain[0]
	if !samePublic(leaf.PublicKey, key.Public()) || leaf.Subject.CommonName != "gw-plant-7" || len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "gw.plant-7.example" {
		t.Fatalf("simpleenroll: leaf %q %v; want gw-plant-7, gw.plant-7.example, for the CSR's key", leaf.Subject, leaf.DNSNames)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("the enrolled certificate does not chain to the CA: %v", err)
	}

	if _, err := c.SimpleReenroll(ctx, csrFor(t, key, "gw-plant-7")); err == nil || !strings.Contains(err.Error(), "no client identity") {
		t.Errorf("simplereenroll without an identity = %v; want refused before asking", err)
	}
	c.Identity = &Identity{Chain: chain, Key: key}
	var newKey hw.Key
	r, err := Renew(ctx, c, func(context.Context) (crypto.Signer, error) { newKey = fileKey(t); return newKey, nil })
	if err != nil {
		t.Fatalf("simplereenroll: %v", err)
	}
	nl := r.Chain[0]
	if !samePublic(nl.PublicKey, newKey.Public()) || samePublic(nl.PublicKey, key.Public()) || nl.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Errorf("re-enrolled certificate: serial %v; want a new one for the new key", nl.SerialNumber)
	}
	if nl.Subject.String() != leaf.Subject.String() || len(nl.DNSNames) != 1 || nl.DNSNames[0] != "gw.plant-7.example" {
		t.Errorf("re-enrolled certificate %q %v; want the current subject and names", nl.Subject, nl.DNSNames)
	}

	// RFC 7030 4.2.2: the server refuses another subject on simplereenroll.
	c.Identity = &Identity{Chain: r.Chain, Key: r.Key}
	var se *StatusError
	if _, err := c.SimpleReenroll(ctx, csrFor(t, r.Key, "someone-else", "gw.plant-7.example")); !errors.As(err, &se) || se.Status < 400 || se.Status > 499 {
		t.Errorf("simplereenroll for another subject = %v; want a 4xx StatusError", err)
	}
	// Without a client certificate the server refuses simplereenroll.
	anon := &Client{Server: c.Server, RootCAs: pool, Timeout: 20 * time.Second, Identity: &Identity{Chain: r.Chain}}
	if _, err := anon.SimpleReenroll(ctx, csrFor(t, r.Key, "gw-plant-7", "gw.plant-7.example")); !errors.As(err, &se) || se.Status < 400 || se.Status > 499 {
		t.Errorf("simplereenroll without a TLS client certificate = %v; want a 4xx StatusError", err)
	}
}

// The same against GlobalSign's estserver with the keys in swtpm: the CSR of simpleenroll is
// signed in the TPM, simplereenroll is authenticated by the TPM key in TLS, and the renewal's
// new key is made in the TPM too.
func TestGlobalSignESTTPMKeys(t *testing.T) {
	ca := newCA(t)
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	c := &Client{Server: startGlobalSignEST(t, ca), RootCAs: pool, Timeout: 20 * time.Second}
	ctx := context.Background()
	sw := hwtest.StartSWTPM(t)
	key, err := hw.Create(ctx, sw.URI("handle=0x81000210"), hw.P256)
	if err != nil {
		t.Fatal(err)
	}
	defer key.Close()
	chain, err := c.SimpleEnroll(ctx, csrFor(t, key, "gw-plant-7"))
	if err != nil {
		t.Fatalf("simpleenroll with a TPM key: %v", err)
	}
	if !samePublic(chain[0].PublicKey, key.Public()) {
		t.Fatal("the enrolled certificate is not for the TPM key")
	}
	c.Identity = &Identity{Chain: chain, Key: key}
	var next hw.Key
	r, err := Renew(ctx, c, func(ctx context.Context) (crypto.Signer, error) {
		k, err := hw.Create(ctx, sw.URI("handle=0x81000211"), hw.P256)
		next = k
		return k, err
	})
	if err != nil {
		t.Fatalf("simplereenroll authenticated by the TPM key: %v", err)
	}
	defer next.Close()
	if !samePublic(r.Chain[0].PublicKey, next.Public()) || r.Chain[0].Subject.CommonName != "gw-plant-7" {
		t.Fatalf("re-enrolled certificate %q is not for the new TPM key", r.Chain[0].Subject)
	}
	// And once more, authenticated by the new TPM identity.
	c.Identity = &Identity{Chain: r.Chain, Key: next}
	if _, err := Renew(ctx, c, func(context.Context) (crypto.Signer, error) { return fileKey(t), nil }); err != nil {
		t.Fatalf("re-enrolment authenticated by the renewed TPM identity: %v", err)
	}
}

// GlobalSign's estserver, label "triggererrors": 202 with Retry-After 600 comes back as
// *RetryError of 10 minutes, 403 as a StatusError.
func TestGlobalSignESTDeferredAndForbidden(t *testing.T) {
	ca := newCA(t)
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	c := &Client{Server: startGlobalSignEST(t, ca), RootCAs: pool, Timeout: 20 * time.Second, Label: "triggererrors"}
	ctx := context.Background()
	key := fileKey(t)
	var re *RetryError
	if _, err := c.SimpleEnroll(ctx, csrFor(t, key, "Trigger Error Deferred")); !errors.As(err, &re) || re.After != 10*time.Minute {
		t.Errorf("deferred simpleenroll = %v; want RetryError after 10m0s", err)
	}
	if _, err := c.SimpleEnroll(ctx, csrFor(t, key, "Trigger Error Forbidden")); !isStatus(err, 403) {
		t.Errorf("forbidden simpleenroll = %v; want HTTP 403", err)
	}
}
