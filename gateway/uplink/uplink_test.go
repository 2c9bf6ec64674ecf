package uplink

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/bridge"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/gatewaytest"
	"github.com/edgegw/edgegw/hw"
	"github.com/edgegw/edgegw/store"
)

// compileRoutes compiles routes as the bridge does (bridge.New, SetRoutes).
func compileRoutes(t testing.TB, routes []config.Route) *bridge.Routes {
	t.Helper()
	brs, err := BridgeRoutesFromConfig(routes)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := bridge.NewRoutes(brs)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestRouteMatcher(t *testing.T) {
	routes := []config.Route{
		{Name: "telemetry", Topic: "building/#", Direction: config.DirectionOut, QoS: 1, RemotePrefix: "sites/plant-7/"},
		{Name: "alarms", Topic: "building/+/alarm", Direction: config.DirectionBoth, QoS: 1, QueueQoS0: true},
		{Name: "commands", Topic: "cmd/#", Direction: config.DirectionIn, QoS: 1},
		{Name: "pref", Topic: "x/#", Direction: config.DirectionOut, QoS: 0, LocalPrefix: "local/", QueueQoS0: true},
		{Topic: "status/#", Direction: config.DirectionOut, QoS: 1},
	}
	m := newRouteMatcher(compileRoutes(t, routes), routes)
	for _, tc := range []struct {
		topic string
		qos   byte
		want  []string
	}{
		{"building/f1/temp", 1, []string{"telemetry"}},
		{"building/f1/temp", 0, nil}, // queue_qos0 false
		{"building/f1/alarm", 1, []string{"telemetry", "alarms"}},
		{"building/f1/alarm", 0, []string{"alarms"}},
		{"cmd/light-1", 1, nil}, // in route: never queued
		{"local/x/y", 0, []string{"pref"}},
		{"x/y", 1, nil},
		{"status/a", 1, []string{"out:status/#"}}, // default name
		{"other", 1, nil},
	} {
		t.Run(fmt.Sprintf("%s/qos%d", tc.topic, tc.qos), func(t *testing.T) {
			if got := m.OutboundRoutes(tc.topic, tc.qos); !slices.Equal(got, tc.want) {
				t.Fatalf("got %q; want %q", got, tc.want)
			}
		})
	}
	for _, topic := range []string{"building/f1/temp", "other"} {
		if n := testing.AllocsPerRun(1000, func() { m.OutboundRoutes(topic, 1) }); n != 0 {
			t.Errorf("OutboundRoutes(%q) allocates %v times; want 0", topic, n)
		}
	}
}

func BenchmarkRouteMatcher(b *testing.B) {
	routes := []config.Route{
		{Name: "telemetry", Topic: "building/#", Direction: config.DirectionOut, QoS: 1, RemotePrefix: "sites/plant-7/"},
		{Name: "commands", Topic: "cmd/#", Direction: config.DirectionIn, QoS: 1},
	}
	m := newRouteMatcher(compileRoutes(b, routes), routes)
	b.ReportAllocs()
	for b.Loop() {
		m.OutboundRoutes("building/hq/floor/01/temp/t-1", 1)
	}
}

func TestConfigTranslation(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "queue.key")
	gatewaytest.WriteFile(t, keyFile, make([]byte, 32), 0o600)
	cfg := config.Default()
	cfg.StateDir = dir
	cfg.Store = config.StoreConfig{Dir: filepath.Join(dir, "q"), MaxBytes: 1 << 20, MinFree: 32 << 20, EncryptionKey: "file:" + keyFile}
	cfg.Bridge = &config.BridgeConfig{
		Upstreams: []config.Upstream{{URL: "mqtts://up.example:8884", ServerName: "cloud"}, {URL: "mqtt://127.0.0.1"}},
		ClientID:  "gw", Keepalive: config.Duration(20 * time.Second), ConnectTimeout: config.Duration(3 * time.Second),
		Backoff: config.Backoff{Min: config.Duration(time.Second), Max: config.Duration(time.Minute)}, Inflight: 64, DrainRate: 500,
		UserProperties: config.UserProperties{Device: "d", Seq: ""},
		Routes: []config.Route{
			{Name: "t", Topic: "a/#", Direction: config.DirectionOut, QoS: 2, MaxBytes: 1000, MaxMessages: 10, MaxAge: config.Duration(time.Hour), Overflow: config.OverflowReject, Priority: 3},
			{Topic: "cmd/#", Direction: config.DirectionIn, QoS: 1, RemotePrefix: "sites/x/"},
			{Topic: "both/#", Direction: config.DirectionBoth, QoS: 0},
		},
	}
	so, err := StoreOptionsFromConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if so.Dir != cfg.Store.Dir || so.MaxBytes != 1<<20 || so.MinFreeBytes != 32<<20 || len(so.EncryptionKey) != 32 || so.Clock == nil {
		t.Errorf("store options %+v", so)
	}
	want := []store.RouteLimits{
		{Name: "t", MaxBytes: 1000, MaxMessages: 10, MaxAge: time.Hour, Overflow: store.Reject, Priority: 3},
		{Name: "both:both/#"},
	}
	if !slices.Equal(so.Routes, want) {
		t.Errorf("route limits %+v; want %+v", so.Routes, want)
	}
	bc, err := BridgeConfigFromConfig(cfg.Bridge, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(bc.Upstreams) != 2 || bc.Upstreams[0].URL.Host != "up.example:8884" || bc.Upstreams[0].ServerName != "cloud" ||
		bc.ClientID != "gw" || bc.KeepAlive != 20*time.Second || bc.ConnectTimeout != 3*time.Second ||
		bc.BackoffMin != time.Second || bc.BackoffMax != time.Minute || bc.Inflight != 64 || bc.DrainRate != 500 ||
		bc.UserProps.DeviceKey != "d" || bc.UserProps.SeqKey != "" {
		t.Errorf("bridge config %+v", bc)
	}
	if len(bc.Routes) != 3 || bc.Routes[0].QoS != 2 || bc.Routes[1].Name != "in:cmd/#" || bc.Routes[1].RemotePrefix != "sites/x/" {
		t.Errorf("bridge routes %+v", bc.Routes)
	}

	cfg.Store.EncryptionKey = "file:" + filepath.Join(dir, "missing")
	if _, err := StoreOptionsFromConfig(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "store.encryption_key") {
		t.Errorf("missing key file: err %v; want a store.encryption_key error", err)
	}
}

// writeGatewayCert writes a certificate for key's public key, signed by a throwaway CA.
func writeGatewayCert(t *testing.T, path string, pub any) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: bigOne(), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	tmpl := &x509.Certificate{SerialNumber: bigOne(), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	tmpl.Subject.CommonName = "gw"
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
	if err != nil {
		t.Fatal(err)
	}
	gatewaytest.WriteFile(t, path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func TestUpstreamTLS(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	pki := gatewaytest.NewPKI(t, "up")
	gw := pki.Issue(t, "gw")
	cfg := config.Default()
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.Bridge = &config.BridgeConfig{ClientID: "gw", TLS: &config.ClientTLS{CA: pki.CAFile, Cert: gw.CertFile, Key: "file:" + gw.KeyFile}}

	tc, key, err := UpstreamTLS(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tc.MinVersion < 0x0303 || tc.RootCAs == nil || tc.Time == nil || len(tc.Certificates) != 1 || tc.Certificates[0].PrivateKey != key {
		t.Errorf("tls config %+v", tc)
	}
	key.Close()

	// A certificate of another key is refused with what to do.
	cfg.Bridge.TLS.Key = "file:" + pki.ServerKey
	if _, _, err := UpstreamTLS(ctx, cfg, nil); err == nil || !strings.Contains(err.Error(), "does not belong to the key") {
		t.Errorf("mismatched key: %v", err)
	}

	// auto with no key yet: says how to make the key and its certificate,
	// and creates nothing (check runs this too, often as root); once the
	// key (no TPM here: a 0600 file) has its certificate it works.
	cfg.Bridge.TLS.Key = "auto"
	var logs gatewaytest.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	_, _, err = UpstreamTLS(ctx, cfg, log)
	if err == nil || !strings.Contains(err.Error(), "edgegw key csr --key auto --cn gw") {
		t.Fatalf("auto, new key: %v; want the CSR instruction", err)
	}
	if c, err := hw.Auto(ctx, hw.WithStateDir(cfg.StateDir)); err != nil || c.Exists {
		t.Fatalf("after UpstreamTLS with no key: Auto = %+v, %v; want no key created", c, err)
	}
	k, err := hw.Open(ctx, "auto", hw.WithStateDir(cfg.StateDir))
	if err != nil {
		t.Fatal(err)
	}
	writeGatewayCert(t, gw.CertFile, k.Public())
	k.Close()
	tc, key, err = UpstreamTLS(ctx, cfg, log)
	if err != nil {
		t.Fatalf("auto with its certificate: %v", err)
	}
	key.Close()
	_ = tc
	if !strings.Contains(logs.String(), "upstream key: auto") || !strings.Contains(logs.String(), "reason=") {
		t.Errorf("auto choice not logged:\n%s", logs.String())
	}
}

func bigOne() *big.Int { return big.NewInt(time.Now().UnixNano()) }

// TestEnsureQueueKey: the daemon creates a missing file: queue key only for a
// queue that does not exist yet; next to an existing queue a missing key stays
// an error, because a fresh key could not read that queue.
func TestEnsureQueueKey(t *testing.T) {
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "queue.key")
	cfg := &config.Config{Store: config.StoreConfig{Dir: filepath.Join(dir, "queue"), EncryptionKey: "file:" + keyPath}}
	log := slog.New(slog.DiscardHandler)

	if err := EnsureQueueKey(context.Background(), cfg, log); err != nil {
		t.Fatalf("first start: %v", err)
	}
	fi, err := os.Stat(keyPath)
	if err != nil {
		t.Fatalf("key not created: %v", err)
	}
	if fi.Size() != 32 || fi.Mode().Perm() != 0o600 {
		t.Errorf("key: size %d mode %v; want 32 bytes 0600", fi.Size(), fi.Mode().Perm())
	}
	first, _ := os.ReadFile(keyPath)
	if err := EnsureQueueKey(context.Background(), cfg, log); err != nil {
		t.Fatalf("second start: %v", err)
	}
	if again, _ := os.ReadFile(keyPath); string(again) != string(first) {
		t.Errorf("second start replaced the key")
	}

	// An existing queue whose key file is gone: no new key is made, and
	// opening the options fails with a store.encryption_key error.
	if err := os.MkdirAll(cfg.Store.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg.Store.Dir, "MANIFEST"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(keyPath); err != nil {
		t.Fatal(err)
	}
	if err := EnsureQueueKey(context.Background(), cfg, log); err != nil {
		t.Fatalf("existing queue: %v", err)
	}
	if _, err := os.Stat(keyPath); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a key was created next to an existing queue (stat err %v)", err)
	}
	if _, err := StoreOptionsFromConfig(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "store.encryption_key") {
		t.Errorf("missing key for existing queue: err %v; want a store.encryption_key error", err)
	}
}
