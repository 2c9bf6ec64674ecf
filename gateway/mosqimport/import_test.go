package mosqimport_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/gateway/authz"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/gatewaytest"
	"github.com/edgegw/edgegw/gateway/mosqimport"
)

const debianExamples = "/usr/share/doc/mosquitto/examples"

// importAndCheck imports conf, writes the result to a fresh directory and
// runs what `edgegw check` runs on it, plus the policy loader.
func importAndCheck(t *testing.T, conf string) (*mosqimport.Result, *config.Config) {
	t.Helper()
	res, err := mosqimport.Import(conf, mosqimport.Options{Site: "plant-7"})
	if err != nil {
		t.Fatalf("Import(%s): %v", conf, err)
	}
	for _, f := range res.Findings {
		if f.Kind == mosqimport.Invalid {
			t.Errorf("invalid line reported: %s", f)
		}
	}
	out := filepath.Join(t.TempDir(), "edgegw")
	if err := res.WriteDir(out); err != nil {
		t.Fatalf("WriteDir: %v", err)
	}
	cfg, err := config.Check(filepath.Join(out, mosqimport.ConfigFile))
	if err != nil {
		data, _ := os.ReadFile(filepath.Join(out, mosqimport.ConfigFile))
		t.Fatalf("edgegw check on the import: %v\n%s", err, data)
	}
	var srcs []authz.Source
	ents, err := os.ReadDir(filepath.Join(out, mosqimport.PoliciesDir))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(out, mosqimport.PoliciesDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, authz.Source{Name: e.Name(), Data: data})
	}
	reg, err := os.ReadFile(filepath.Join(out, mosqimport.DevicesFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := authz.Load(authz.Source{Name: mosqimport.DevicesFile, Data: reg}, srcs); err != nil {
		t.Fatalf("loading the written registry and policies: %v", err)
	}
	if err := res.WriteDir(out); !errors.Is(err, mosqimport.ErrExists) {
		t.Errorf("second WriteDir into the same directory: got %v; want ErrExists", err)
	}
	return res, cfg
}

// TestImportDebianExamples imports the configurations Debian's mosquitto
// package ships: its example mosquitto.conf (every option commented out),
// /etc/mosquitto/mosquitto.conf (with include_dir) and a configuration using
// the example ACL and password files.
func TestImportDebianExamples(t *testing.T) {
	if _, err := os.Stat(filepath.Join(debianExamples, "mosquitto.conf")); err != nil {
		t.Fatalf("Debian's mosquitto examples are missing (%v): run `make deps` (apt-get install mosquitto)", err)
	}
	dir := t.TempDir()
	withACL := filepath.Join(dir, "acl.conf")
	gatewaytest.WriteFile(t, withACL, []byte("listener 1883 127.0.0.1\nallow_anonymous false\n"+
		"password_file "+debianExamples+"/pwfile.example\nacl_file "+debianExamples+"/aclfile.example\n"), 0o644)
	tests := []struct {
		name      string
		conf      string
		things    []string
		listeners []string
	}{
		{name: "examples/mosquitto.conf", conf: filepath.Join(debianExamples, "mosquitto.conf"), listeners: []string{"127.0.0.1:1883"}},
		{name: "etc/mosquitto/mosquitto.conf", conf: "/etc/mosquitto/mosquitto.conf", listeners: []string{"127.0.0.1:1883"}},
		{name: "example ACL and password file", conf: withACL, things: []string{"roger"}, listeners: []string{"127.0.0.1:1883"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, cfg := importAndCheck(t, tt.conf)
			var things, addrs []string
			for _, th := range res.Registry.Things {
				things = append(things, th.Name)
			}
			for _, l := range cfg.Listeners {
				addrs = append(addrs, l.Address)
			}
			if !slices.Equal(things, tt.things) {
				t.Errorf("things: got %v; want %v", things, tt.things)
			}
			if !slices.Equal(addrs, tt.listeners) {
				t.Errorf("listeners: got %v; want %v", addrs, tt.listeners)
			}
		})
	}
}

// TestImportTwoConnections imports a site's configuration: a TLS listener
// and a loopback one, two bridge connections and an ACL with patterns.
func TestImportTwoConnections(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"ca.crt", "server.crt", "server.key", "crl.pem", "cloud-ca.pem", "gw.crt", "gw.key"} {
		// Only existence is checked here; no real key material is needed.
		gatewaytest.WriteFile(t, filepath.Join(dir, f), []byte("placeholder written by the test\n"), 0o600)
	}
	gatewaytest.WriteFile(t, filepath.Join(dir, "passwd"), []byte("dashboard:$7$101$c2FsdA==$aGFzaA==\nops:$2b$10$abcdefghijklmnopqrstuu\n"), 0o600)
	gatewaytest.WriteFile(t, filepath.Join(dir, "acl"), []byte(`# sensors write their own telemetry
pattern write sensors/%c/#
pattern read cmd/%c/#

user dashboard
topic read sensors/#
topic read status/+

user ops
topic readwrite cmd/#
topic deny cmd/secret/#
`), 0o644)
	conf := filepath.Join(dir, "mosquitto.conf")
	gatewaytest.WriteFile(t, conf, []byte(`per_listener_settings false
allow_anonymous false
password_file passwd
acl_file acl
persistence true

listener 8883
cafile ca.crt
certfile server.crt
keyfile server.key
crlfile crl.pem
require_certificate true
use_identity_as_username true
tls_version tlsv1.2

listener 1883 127.0.0.1

connection cloud
address cloud.example.com:8883 backup.example.com
bridge_cafile cloud-ca.pem
bridge_certfile gw.crt
bridge_keyfile gw.key
remote_clientid plant-7-gw
bridge_protocol_version mqttv311
cleansession false
try_private false
keepalive_interval 45
topic sensors/# out 1 "" sites/plant-7/
topic cmd/# in 1 "" sites/plant-7/
topic status/+ both 2 local/ remote/

connection analytics
address 10.0.0.5:1883
remote_username gw
remote_password s3cret-value
topic metrics/# out 0
`), 0o644)
	res, cfg := importAndCheck(t, conf)

	if cfg.Bridge == nil {
		t.Fatal("bridge: got none; want connection cloud")
	}
	if got, want := []string{cfg.Bridge.Upstreams[0].URL, cfg.Bridge.Upstreams[1].URL}, []string{"mqtts://cloud.example.com:8883", "mqtts://backup.example.com:1883"}; !slices.Equal(got, want) {
		t.Errorf("upstreams: got %v; want %v", got, want)
	}
	if cfg.Bridge.ClientID != "plant-7-gw" || cfg.Bridge.Keepalive.D().Seconds() != 45 {
		t.Errorf("client_id, keepalive: got %q, %v; want plant-7-gw, 45s", cfg.Bridge.ClientID, cfg.Bridge.Keepalive)
	}
	if cfg.Bridge.TLS == nil || cfg.Bridge.TLS.Cert != filepath.Join(dir, "gw.crt") || cfg.Bridge.TLS.Key != "file:"+filepath.Join(dir, "gw.key") {
		t.Errorf("bridge tls: got %+v; want cert %s, key file:%s", cfg.Bridge.TLS, filepath.Join(dir, "gw.crt"), filepath.Join(dir, "gw.key"))
	}
	type rt struct {
		topic, dir    string
		qos           int
		local, remote string
	}
	var routes []rt
	for _, r := range cfg.Bridge.Routes {
		routes = append(routes, rt{r.Topic, r.Direction, r.QoS, r.LocalPrefix, r.RemotePrefix})
	}
	wantRoutes := []rt{
		{"sensors/#", "out", 1, "", "sites/plant-7/"},
		{"cmd/#", "in", 1, "", "sites/plant-7/"},
		{"status/+", "both", 2, "local/", "remote/"},
	}
	if !slices.Equal(routes, wantRoutes) {
		t.Errorf("routes: got %+v; want %+v", routes, wantRoutes)
	}

	var addrs []string
	for _, l := range cfg.Listeners {
		addrs = append(addrs, l.Address)
		if l.Address == ":8883" {
			if l.TLS == nil || l.TLS.CA != filepath.Join(dir, "ca.crt") || l.TLS.CRL != filepath.Join(dir, "crl.pem") || l.TLS.ClientAuth != "require" {
				t.Errorf("listener :8883 tls: got %+v; want ca, crl from the test dir and client_auth require", l.TLS)
			}
			if l.PasswordFile != "" {
				t.Errorf("listener :8883 password_file: got %q; want none (use_identity_as_username: Mosquitto checked no password)", l.PasswordFile)
			}
		}
		if l.Address == "127.0.0.1:1883" && l.PasswordFile != filepath.Join(dir, "passwd") {
			t.Errorf("listener 127.0.0.1:1883 password_file: got %q; want %s", l.PasswordFile, filepath.Join(dir, "passwd"))
		}
	}
	if want := []string{":8883", "127.0.0.1:1883"}; !slices.Equal(addrs, want) {
		t.Errorf("listeners: got %v; want %v", addrs, want)
	}

	var things []string
	for _, th := range res.Registry.Things {
		things = append(things, th.Name)
	}
	if want := []string{"dashboard", "ops"}; !slices.Equal(things, want) {
		t.Errorf("things: got %v; want %v", things, want)
	}

	report := string(res.Report())
	yaml := string(res.YAML())
	for _, secret := range []string{"s3cret-value"} {
		if strings.Contains(report, secret) || strings.Contains(yaml, secret) {
			t.Errorf("the bridge password %q appears in the report or edgegw.yaml", secret)
		}
	}
	wantFindings := []struct {
		line int
		kind mosqimport.Kind
		has  string
	}{
		{5, mosqimport.NotCarried, "persistence"},
		{3, mosqimport.Note, "1 $7$"},
		{24, mosqimport.NotCarried, "MQTT 5"},
		{30, mosqimport.Changed, "QoS 1"},
		{32, mosqimport.NotCarried, "one bridge"},
		{35, mosqimport.NotCarried, "remote_password"},
	}
	for _, w := range wantFindings {
		found := false
		for _, f := range res.Findings {
			if f.File == conf && f.Line == w.line && f.Kind == w.kind && strings.Contains(f.String(), w.has) {
				found = true
			}
		}
		if !found {
			t.Errorf("report: got no %s finding at %s:%d mentioning %q; report:\n%s", w.kind, conf, w.line, w.has, report)
		}
	}
	if !strings.Contains(yaml, "#bridge:") || !strings.Contains(yaml, `#      topic: "metrics/#"`) {
		t.Errorf("edgegw.yaml: got no commented-out bridge for connection analytics:\n%s", yaml)
	}

	// The pattern and user lines behave as in Mosquitto for these probes.
	eng, err := res.Validate()
	if err != nil {
		t.Fatal(err)
	}
	probes := []struct {
		thing  string
		action authz.Action
		topic  string
		want   bool
	}{
		{"temp-1", authz.Publish, "sensors/temp-1/t", true},
		{"temp-1", authz.Publish, "sensors/temp-2/t", false},
		{"temp-1", authz.Receive, "cmd/temp-1/reboot", true},
		{"temp-1", authz.Receive, "cmd/temp-2/reboot", false},
		{"dashboard", authz.Receive, "sensors/temp-1/t", true},
		{"dashboard", authz.Receive, "status/a", true},
		{"dashboard", authz.Receive, "status/a/b", false},
		{"dashboard", authz.Publish, "sensors/dashboard/x", true},
		{"ops", authz.Publish, "cmd/temp-1/reboot", true},
		{"ops", authz.Receive, "cmd/secret/x", false},
		{"ops", authz.Publish, "cmd/secret", false},
	}
	for _, p := range probes {
		sess, err := eng.Bind(authz.Identity{ClientID: p.thing, ThingName: p.thing})
		if err != nil {
			t.Fatal(err)
		}
		if got := sess.Allowed(p.action, p.topic); got != p.want {
			t.Errorf("%s %s %q: got %v; want %v", p.thing, p.action, p.topic, got, p.want)
		}
	}
}

func TestImportRefusesUnreadable(t *testing.T) {
	for _, p := range []string{filepath.Join(t.TempDir(), "missing.conf"), "/dev/zero"} {
		if _, err := mosqimport.Import(p, mosqimport.Options{}); !errors.Is(err, mosqimport.ErrNoConfig) {
			t.Errorf("Import(%s): got %v; want ErrNoConfig", p, err)
		}
	}
	// A device or a FIFO named as acl_file is reported, not read forever.
	dir := t.TempDir()
	conf := filepath.Join(dir, "mosquitto.conf")
	gatewaytest.WriteFile(t, conf, []byte("listener 1883 127.0.0.1\nacl_file /dev/zero\n"), 0o644)
	res, err := mosqimport.Import(conf, mosqimport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range res.Findings {
		if f.File == conf && f.Line == 2 && f.Kind == mosqimport.NotCarried && strings.Contains(f.Reason, "not a regular file") {
			found = true
		}
	}
	if !found {
		t.Errorf("report: got no finding for acl_file /dev/zero:\n%s", res.Report())
	}
}

// TestImportListenerSettings covers include_dir (only *.conf, in byte order)
// and per_listener_settings: a listener whose own acl_file differs from the
// one imported is left out, so its clients get no rights they did not have.
func TestImportListenerSettings(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"ca.crt", "server.crt", "server.key"} {
		gatewaytest.WriteFile(t, filepath.Join(dir, f), []byte("placeholder written by the test\n"), 0o600)
	}
	gatewaytest.WriteFile(t, filepath.Join(dir, "acl-lan"), []byte("user s1\ntopic write t/s1\n"), 0o644)
	gatewaytest.WriteFile(t, filepath.Join(dir, "acl-other"), []byte("user s1\ntopic write #\n"), 0o644)
	gatewaytest.WriteFile(t, filepath.Join(dir, "conf.d", "b.conf"), []byte("listener 9001 127.0.0.1\nacl_file "+filepath.Join(dir, "acl-other")+"\n"), 0o644)
	gatewaytest.WriteFile(t, filepath.Join(dir, "conf.d", "A.conf"), []byte("listener 1884 127.0.0.1\n"), 0o644)
	gatewaytest.WriteFile(t, filepath.Join(dir, "conf.d", "c.conf.disabled"), []byte("listener 1999\n"), 0o644)
	conf := filepath.Join(dir, "mosquitto.conf")
	gatewaytest.WriteFile(t, conf, []byte(`per_listener_settings true
listener 8883 0.0.0.0
cafile ca.crt
certfile server.crt
keyfile server.key
require_certificate true
use_identity_as_username true
acl_file acl-lan
listener 1883 lan.example
include_dir conf.d
`), 0o644)
	res, cfg := importAndCheck(t, conf)
	var addrs []string
	for _, l := range cfg.Listeners {
		addrs = append(addrs, l.Address)
	}
	// 1883 on a host name is plaintext: imported on loopback; 1884 comes
	// from A.conf (before b.conf), 9001 has another acl_file: left out.
	if want := []string{"0.0.0.0:8883", "127.0.0.1:1883", "127.0.0.1:1884"}; !slices.Equal(addrs, want) {
		t.Errorf("listeners: got %v; want %v", addrs, want)
	}
	left := false
	for _, f := range res.Findings {
		if f.File == filepath.Join(dir, "conf.d", "b.conf") && f.Line == 1 && f.Kind == mosqimport.NotCarried && strings.Contains(f.Reason, "own acl_file") {
			left = true
		}
	}
	if !left {
		t.Errorf("report: got no finding for the listener of b.conf with its own acl_file:\n%s", res.Report())
	}
	eng, err := res.Validate()
	if err != nil {
		t.Fatal(err)
	}
	sess, err := eng.Bind(authz.Identity{ClientID: "s1", ThingName: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct {
		topic string
		want  bool
	}{{"t/s1", true}, {"t/s2", false}} {
		if got := sess.Allowed(authz.Publish, p.topic); got != p.want {
			t.Errorf("s1 publish %q: got %v; want %v (acl-lan, not acl-other)", p.topic, got, p.want)
		}
	}
}
