package renew_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"log/slog"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/bridge"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/gatewaytest"
	"github.com/edgegw/edgegw/gateway/renew"
	"github.com/edgegw/edgegw/hw"
	"github.com/edgegw/edgegw/store"
)

// caSource signs with a CA: the upstream's (trusted) or another one (the
// upstream refuses the result). It stands for the cloud's signing API; the
// bridge, the TLS and Mosquitto are real.
type caSource struct {
	pki *gatewaytest.PKI
	n   int
}

func (s *caSource) Sign(_ context.Context, cur *tls.Certificate, key crypto.Signer) ([]*x509.Certificate, error) {
	s.n++
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cur.Leaf.Subject.CommonName},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(12 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.pki.CA, key.Public(), s.pki.CAKey)
	if err != nil {
		return nil, err
	}
	c, err := x509.ParseCertificate(der)
	return []*x509.Certificate{c}, err
}

type nopPublisher struct{}

func (nopPublisher) PublishLocal(string, []byte, bool, byte) error { return nil }

// rig is a real bridge to a real Mosquitto under a file-key identity in dir.
type rig struct {
	up      *gatewaytest.Upstream
	b       *bridge.Bridge
	dir     string // state_dir
	keyURI  string
	cert    tls.Certificate
	key     hw.Key
	events  []renew.Event
	eventMu sync.Mutex
}

func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{up: gatewaytest.NewUpstream(t, gatewaytest.UpstreamOptions{}), dir: t.TempDir()}
	keyPath := filepath.Join(t.TempDir(), "gw.key")
	gatewaytest.WriteFile(t, keyPath, r.up.Gateway.KeyPEM, 0o600)
	r.keyURI = "file:" + keyPath
	k, err := hw.Open(context.Background(), r.keyURI)
	if err != nil {
		t.Fatal(err)
	}
	r.key = k
	r.cert = tls.Certificate{Certificate: [][]byte{r.up.Gateway.Cert.Raw}, PrivateKey: k, Leaf: r.up.Gateway.Cert}
	q, err := store.Open(store.Options{Dir: t.TempDir(), Routes: []store.RouteLimits{{Name: "t"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	tc := r.up.TLSFor(nil)
	tc.Certificates = []tls.Certificate{r.cert}
	r.b, err = bridge.New(bridge.Config{
		Upstreams: []bridge.Upstream{{URL: &url.URL{Scheme: "mqtts", Host: r.up.Addr}, ServerName: "localhost"}},
		ClientID:  gatewaytest.GatewayCN, TLS: tc, ConnectTimeout: 3 * time.Second, BackoffMin: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		Routes: []bridge.Route{{Name: "t", Topic: "x/#", Direction: bridge.Out, QoS: 1, RemotePrefix: "sites/plant-7/"}},
	}, q, nopPublisher{}, slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.b.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(10 * time.Second)
	for !r.b.Connected() {
		if time.Now().After(deadline) {
			t.Fatal("bridge not connected within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return r
}

func (r *rig) renewer(t *testing.T, src renew.Source) *renew.Renewer {
	t.Helper()
	rn, err := renew.New(renew.Options{Bridge: "default", StateDir: r.dir, Source: src, Swapper: r.b, SwapTimeout: 3 * time.Second,
		Log:     slog.New(slog.NewTextHandler(t.Output(), nil)),
		OnEvent: func(e renew.Event) { r.eventMu.Lock(); r.events = append(r.events, e); r.eventMu.Unlock() },
	}, r.cert, r.key, r.keyURI)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rn.Close() })
	return rn
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// TestRenewRefusedKeepsOld: the source signs, but the upstream refuses the
// new certificate (another CA): the bridge is back under the old identity,
// the new key is destroyed, nothing is recorded, the failure is in State
// and an event; the old key is untouched.
func TestRenewRefusedKeepsOld(t *testing.T) {
	r := newRig(t)
	rn := r.renewer(t, &caSource{pki: gatewaytest.NewPKI(t, "stranger")})
	oldPath := r.keyURI[len("file:"):]
	err := rn.Renew(context.Background())
	if err == nil {
		t.Fatal("Renew with a certificate the upstream refuses: no error")
	}
	st := rn.State()
	if st.Failures != 1 || st.LastError == "" || st.Renewals != 0 || st.Serial != r.up.Gateway.Cert.SerialNumber.Text(16) {
		t.Errorf("state %+v; want 1 failure, the old serial", st)
	}
	if exists(filepath.Join(filepath.Dir(oldPath), "gw-g2.key")) {
		t.Error("the unused new key is still there")
	}
	if !exists(oldPath) {
		t.Error("the old key is gone")
	}
	if exists(filepath.Join(renew.Dir(r.dir, "default"), "identity.json")) {
		t.Error("identity.json records a renewal that failed")
	}
	if id, err := renew.Current(r.dir, "default", r.up.Gateway.CertFile, r.keyURI); err != nil || id.Renewed {
		t.Errorf("Current after a failed renewal: %+v %v; want the configured identity", id, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !r.b.Connected() {
		if time.Now().After(deadline) {
			t.Fatal("bridge not back under the old identity within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := r.b.Identity().Leaf; !got.Equal(r.up.Gateway.Cert) {
		t.Error("the bridge does not present the old certificate after the failed swap")
	}
	r.eventMu.Lock()
	defer r.eventMu.Unlock()
	if len(r.events) != 1 || r.events[0].Kind != renew.EventFailed {
		t.Errorf("events %+v; want one renew_failed", r.events)
	}
	if !st.Due.After(time.Now()) || st.Due.After(time.Now().Add(2*time.Minute)) {
		t.Errorf("next attempt %v; want within the first backoff (1m, jittered)", st.Due)
	}
}

// TestRenewFileKey: a renewal with a file key writes the new key next to
// the old (0600), records it, swaps, and removes the old key file; Current
// then names the renewed identity, until a newer certificate is installed
// by hand in tls.cert.
func TestRenewFileKey(t *testing.T) {
	r := newRig(t)
	rn := r.renewer(t, &caSource{pki: r.up.PKI})
	oldPath := r.keyURI[len("file:"):]
	if err := rn.Renew(context.Background()); err != nil {
		t.Fatal(err)
	}
	newPath := filepath.Join(filepath.Dir(oldPath), "gw-g2.key")
	fi, err := os.Stat(newPath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("new key %s: %v %v; want mode 0600", newPath, fi, err)
	}
	if exists(oldPath) {
		t.Error("the old key file is still there after the swap")
	}
	id, err := renew.Current(r.dir, "default", r.up.Gateway.CertFile, r.keyURI)
	if err != nil || !id.Renewed || id.Key != "file:"+newPath {
		t.Fatalf("Current: %+v %v; want the renewed identity with %s", id, err, newPath)
	}
	if got := r.b.Identity().Leaf; got.Equal(r.up.Gateway.Cert) {
		t.Error("the bridge still presents the old certificate")
	}
	if st := rn.State(); st.Renewals != 1 || st.LastError != "" || st.DaysLeft < 0.4 {
		t.Errorf("state %+v; want 1 renewal, no error, about half a day left", st)
	}
	// A newer certificate installed by hand wins over the renewed one.
	hand := r.up.PKI.Issue(t, gatewaytest.GatewayCN, func(c *x509.Certificate) { c.NotBefore = time.Now() })
	id, err = renew.Current(r.dir, "default", hand.CertFile, "file:"+hand.KeyFile)
	if err != nil || id.Renewed || id.Cert != hand.CertFile {
		t.Errorf("Current with a newer hand-installed certificate: %+v %v; want it", id, err)
	}
	// The renewed certificate's file gone: an error naming the record.
	data, _ := os.ReadFile(filepath.Join(renew.Dir(r.dir, "default"), "identity.json"))
	_ = os.Remove(id2cert(t, data))
	if _, err := renew.Current(r.dir, "default", r.up.Gateway.CertFile, r.keyURI); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Current with the renewed certificate missing: %v; want a not-exist error", err)
	}
}

func id2cert(t *testing.T, identityJSON []byte) string {
	t.Helper()
	var rec struct{ Cert string }
	if err := json.Unmarshal(identityJSON, &rec); err != nil || rec.Cert == "" {
		t.Fatalf("identity.json %q: %v", identityJSON, err)
	}
	return rec.Cert
}

// TestDirIsConfigs: edgegw check (config.BridgeRenewDir) looks where the
// renewer writes.
func TestDirIsConfigs(t *testing.T) {
	c := &config.Config{StateDir: "/var/lib/edgegw"}
	if got, want := renew.Dir(c.StateDir, "aws"), c.BridgeRenewDir("aws"); got != want {
		t.Errorf("renew.Dir %s, config.BridgeRenewDir %s; want the same", got, want)
	}
}

// lateSwapper is a bridge that connects upstream only when connected is
// set (a daemon just restarted); SwapIdentity succeeds.
type lateSwapper struct{ connected chan struct{} }

func (s *lateSwapper) SwapIdentity(context.Context, tls.Certificate) error { return nil }
func (s *lateSwapper) Connected() bool {
	select {
	case <-s.connected:
		return true
	default:
		return false
	}
}

// onlineSource is caSource over the bridge's connection, as AWS's is: it
// fails when the bridge is not connected (bridge.ErrNotConnected).
type onlineSource struct {
	caSource
	sw *lateSwapper
}

func (s *onlineSource) Sign(ctx context.Context, cur *tls.Certificate, key crypto.Signer) ([]*x509.Certificate, error) {
	if !s.sw.Connected() {
		return nil, bridge.ErrNotConnected
	}
	return s.caSource.Sign(ctx, cur, key)
}

// TestRenewWaitsForConnection: a renewal asked for (`edgegw key rotate`)
// while the bridge is still connecting after a start waits for the
// connection, as Run's due renewals do, instead of failing with "not
// connected upstream"; a renewal whose context ends first fails, saying so.
func TestRenewWaitsForConnection(t *testing.T) {
	pki := gatewaytest.NewPKI(t, "up")
	dir := t.TempDir()
	keyURI := "file:" + filepath.Join(dir, "gw.key")
	k, err := hw.Create(context.Background(), keyURI, hw.P256)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := (&caSource{pki: pki}).Sign(context.Background(), &tls.Certificate{Leaf: &x509.Certificate{Subject: pkix.Name{CommonName: gatewaytest.GatewayCN}}}, k)
	if err != nil {
		t.Fatal(err)
	}
	leaf := chain[0]
	sw := &lateSwapper{connected: make(chan struct{})}
	rn, err := renew.New(renew.Options{Bridge: "default", StateDir: dir, Source: &onlineSource{caSource{pki: pki}, sw}, Swapper: sw},
		tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: k, Leaf: leaf}, k, keyURI)
	if err != nil {
		t.Fatal(err)
	}
	defer rn.Close()

	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	err = rn.Renew(short)
	cancel()
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Renew while never connected: %v; want an error wrapping context.DeadlineExceeded", err)
	}
	if s := rn.State(); s.Failures != 1 || s.Renewals != 0 {
		t.Errorf("after the unconnected attempt: %d failures, %d renewals; want 1 and 0", s.Failures, s.Renewals)
	}

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		done <- rn.Renew(ctx)
	}()
	time.Sleep(300 * time.Millisecond) // Renew is waiting (or would have failed by now)
	close(sw.connected)
	if err := <-done; err != nil {
		t.Fatalf("Renew once the bridge connected: %v", err)
	}
	if s := rn.State(); s.Renewals != 1 {
		t.Errorf("renewals %d; want 1", s.Renewals)
	}
}
