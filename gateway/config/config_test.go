package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// errLines returns the lines of a *Error, or fails.
func errLines(t *testing.T, err error) []string {
	t.Helper()
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("got error %v (%T); want a *Error", err, err)
	}
	var out []string
	for _, fe := range ce.Errors {
		out = append(out, fe.Error())
	}
	return out
}

func TestLoadConfigBad(t *testing.T) {
	const loopbackMsg = `a listener without tls must bind a loopback address (127.0.0.1, ::1 or localhost); add tls or bind 127.0.0.1`
	tests := []struct {
		name string
		want []string // without the "testdata/bad/<name>.yaml:" prefix
	}{
		{"typo_key", []string{`3: unknown key "lisenters" (did you mean "listeners"?)`}},
		{"typo_nested_key", []string{`5: listeners[0]: unknown key "adress" (did you mean "address"?)`}},
		{"unknown_key", []string{`8: unknown key "mqtt_port"; want one of: version, site, state_dir, log, listeners, devices, policies, store, limits, bridge, bridges, metrics, admin, audit, shadows, rules, enrolment`}},
		{"wrong_type_list", []string{`3: listeners: want a list, got "local"`}},
		{"wrong_type_int", []string{`12: bridge.routes[0].qos: want a whole number, got "high"`}},
		{"hash_not_last", []string{`12: bridge.routes[0].topic: "a/#/b": '#' must be the last level`}},
		{"hash_not_whole", []string{`12: bridge.routes[0].topic: "a/b#": '#' must be a whole level (e.g. a/#, not a/b#)`}},
		{"plus_not_whole", []string{`12: bridge.routes[0].topic: "building/floor+/temp": '+' must be a whole level (e.g. a/+/c, not a/b+/c)`}},
		{"empty_topic", []string{`12: bridge.routes[0].topic: required: an MQTT topic filter, e.g. "building/#"`}},
		{"nul_topic", []string{`12: bridge.routes[0].topic: "a/\x00/b": must not contain a NUL character`}},
		{"version_2", []string{`1: version: 2: unsupported; want 1`}},
		{"version_missing", []string{`1: version: missing; want version: 1`}},
		{"plaintext_public", []string{`5: listeners[0].address: "0.0.0.0:1883": ` + loopbackMsg}},
		{"plaintext_all_interfaces", []string{`5: listeners[0].address: ":1883": ` + loopbackMsg}},
		{"client_auth_none_public", []string{`10: listeners[0].tls.client_auth: none is allowed only on a loopback address; ":8883" is not one (devices must present a certificate)`}},
		{"bad_min_version", []string{`10: listeners[0].tls.min_version: "1.1": want "1.2" or "1.3"`}},
		{"bad_key_uri", []string{`9: listeners[0].tls.key: "hsm:slot=1": unsupported: unknown scheme "hsm" (want file:, tpm:, pkcs11: or auto)`}},
		{"bad_size", []string{`8: store.max_bytes: "2 gigs": unknown unit "gigs"; want a whole number and a unit, e.g. 512MiB, 2GiB, 1GB (units: B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)`}},
		{"bad_memory_limit", []string{`8: limits.memory_limit: 16MiB: want 0 (Go's default, no limit) or at least 32MiB`}},
		{"bad_duration", []string{`12: bridge.routes[0].max_age: "7days": want a number and a unit, e.g. 90s, 10m, 36h, 7d`}},
		{"duplicate_listener", []string{`6: listeners[1].name: "local": duplicate listener name (also listeners[0])`}},
		{"duplicate_route", []string{`13: bridge.routes[1]: "out:building/#": duplicate route name (also bridge.routes[0]); give each route its own name`}},
		{"duplicate_key", []string{`6: devices: duplicate key (first at line 5)`}},
		{"bad_direction", []string{`12: bridge.routes[0].direction: "up": want out, in or both`}},
		{"bad_overflow", []string{`12: bridge.routes[0].overflow: "drop-newest": want drop-oldest or reject`}},
		{"mqtt_public_upstream", []string{`9: bridge.upstreams[0].url: "mqtt://broker.example:1883": plaintext mqtt:// is allowed only to a loopback host (127.0.0.1, ::1, localhost); use mqtts://`}},
		{"mqtts_without_tls", []string{`7: bridge.tls: required for mqtts:// upstreams: the gateway's own cert and key (the upstream knows the gateway by its certificate)`}},
		{"bridge_zero_written", []string{`10: bridge.connect_timeout: must be more than 0, e.g. 10s`, `11: bridge.backoff.min: must be more than 0, e.g. 1s`, `12: bridge.inflight: 0: want 1-65535`}},
		{"limits_zero_written", []string{`8: limits.max_clients: must be more than 0`, `9: limits.handshake_timeout: "-1s": must not be negative`}},
		{"missing_client_id", []string{`7: bridge.client_id: required with bridge: the gateway's client ID upstream (its thing name), e.g. plant-7-gw`}},
		{"shadows_sync_without_bridge", []string{`8: shadows.sync: needs a bridge section: shadows are synced with the cloud through the bridge`}},
		{"enrolment_many_errors", []string{
			`8: enrolment.pki_dir: required without a TLS listener: the site CA's directory (where ` + "`edgegw pki init`" + ` wrote ca.crt)`,
			`9: enrolment.token_ttl: 500ms: want at least 1s`,
			`10: enrolment.rate_limit: burst and every must be positive`,
			`12: enrolment.templates[0].name: "bad name!": use 1-36 characters from a-z A-Z 0-9 _ -`,
			`12: enrolment.templates[0]: thing_name: ${Serial} is neither a parameter of this template nor AWS::IoT::Certificate::CommonName or AWS::IoT::Certificate::Id`,
			`14: enrolment.templates[1]: parameters[0].default "xyz" does not match its pattern`,
			`18: enrolment.templates[1].pre_provisioning_hook.command: empty: give the program and its arguments as a list`,
		}},
		{"shadows_many_errors", []string{
			`12: shadows.token_prefix: "a b": want 1 to 40 of A-Z a-z 0-9 _ . -`,
			`14: shadows.sync[0].thing: "lamp/1": want 1 to 128 of a-z A-Z 0-9 : _ -`,
			`15: shadows.sync[1].shadow: "cfg/x": want 1 to 64 of a-z A-Z 0-9 $ : _ - (or none for the classic shadow)`,
			`15: shadows.sync[1].direction: "sideways": want up, down or both`,
			`15: shadows.sync[1].desired_owner: "me": want cloud or device`,
			`16: shadows.sync[2].direction: required: up, down or both`,
			`17: shadows.sync[3]: lamp-3/"": synced twice (also shadows.sync[2])`,
		}},
		{"syntax_error", []string{`5: YAML syntax: mapping values are not allowed in this context`}},
		{"empty", []string{`1: empty file; want at least version: 1, site, listeners, devices and policies`}},
		{"many_errors", []string{
			`2: site: "plant 7": want letters, digits, '.', '_' or '-'`,
			`3: log.level: "verbose": want debug, info, warn or error`,
			`6: listeners[0].address: "0.0.0.0:1883": ` + loopbackMsg,
			`7: listeners[1].name: "lan": duplicate listener name (also listeners[0])`,
			`8: listeners[1].address: "127.0.0.1:99999": port "99999": want a number 0-65535`,
			`9: listeners[1].identity: "email": want cn, san-uri or san-dns`,
			`14: store.min_free: "1.5GiB": fractions are not supported; use a smaller unit (e.g. 1536MiB for 1.5GiB)`,
			`16: limits.handshake_timeout: "10": missing unit; want a number and a unit, e.g. 90s, 10m, 36h, 7d`,
			`19: bridge.upstreams[0].url: "ws://upstream.example": scheme "ws": want mqtts:// (or mqtt:// to a loopback host)`,
			`22: bridge.routes[0].topic: "a/#/b": '#' must be the last level`,
			`24: bridge.routes[0].qos: 3: want 0, 1 or 2`,
			`27: bridge.routes[1].remote_prefix: "sites/#/": wildcards '#' and '+' are not allowed in a topic name`,
			`29: metrics.address: "9641": want host:port, e.g. ":8883" or "127.0.0.1:1883"`,
		}},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		seen[tt.name+".yaml"] = true
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join("testdata", "bad", tt.name+".yaml")
			c, err := Load(file)
			if c != nil {
				t.Errorf("got a config; want nil with an error")
			}
			got := errLines(t, err)
			var want []string
			for _, w := range tt.want {
				want = append(want, file+":"+w)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
	// Every bad config has a case, so none rots unchecked.
	files, _ := filepath.Glob(filepath.Join("testdata", "bad", "*.yaml"))
	for _, f := range files {
		if !seen[filepath.Base(f)] {
			t.Errorf("got %s without a test case; want one", f)
		}
	}
	if len(files) < 15 {
		t.Errorf("got %d bad configs; want at least 15", len(files))
	}
}

func TestLoadConfigGoodMinimal(t *testing.T) {
	c, err := Load(filepath.Join("testdata", "good", "minimal.yaml"))
	if err != nil {
		t.Fatalf("got %v; want no error", err)
	}
	dir, _ := filepath.Abs(filepath.Join("testdata", "good"))
	want := Default()
	want.Version = 1
	want.Site = "lab"
	want.Listeners = []Listener{{Name: "local", Address: "127.0.0.1:1883", Identity: "cn"}}
	want.Devices = filepath.Join(dir, "devices.yaml")
	want.Policies = filepath.Join(dir, "policies")
	want.File = filepath.Join("testdata", "good", "minimal.yaml")
	want.Dir = dir
	c.rep = nil
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got\n%+v\nwant\n%+v", c, want)
	}
}

func TestLoadConfigGoodFull(t *testing.T) {
	c, err := Load(filepath.Join("testdata", "good", "full.yaml"))
	if err != nil {
		t.Fatalf("got %v; want no error", err)
	}
	dir, _ := filepath.Abs(filepath.Join("testdata", "good"))
	j := func(p string) string { return filepath.Join(dir, p) }
	checks := []struct {
		name      string
		got, want any
	}{
		{"state_dir", c.StateDir, j("state")},
		{"log", c.Log, LogConfig{Level: "debug", Format: "json"}},
		{"listeners[0].tls", *c.Listeners[0].TLS, ListenerTLS{CA: j("pki/ca.crt"), Cert: j("pki/server.crt"), Key: "file:" + j("pki/server.key"), CRL: j("pki/crl.pem"), MinVersion: "1.3", ClientAuth: "require"}},
		{"listeners[0].identity", c.Listeners[0].Identity, "san-uri"},
		{"listeners[0].password_file", c.Listeners[0].PasswordFile, j("passwd")},
		{"listeners[1]", c.Listeners[1], Listener{Name: "local", Address: "[::1]:1883", Identity: "cn"}},
		{"store", c.Store, StoreConfig{Dir: j("queue"), MaxBytes: 1e9, MinFree: 128 << 20, EncryptionKey: "tpm-sealed:" + j("queue.key.tpm") + ";tcp=127.0.0.1:2321"}},
		{"limits", c.Limits, LimitsConfig{
			HandshakeTimeout: Duration(5 * time.Second), MaxPendingHandshakes: 64, MaxPacketSize: 128 << 10,
			MaxClients: 100, ClientWriteQueue: 1024, ReceiveMaximum: 64, SessionExpiryMax: Duration(48 * time.Hour),
			RetainedMaxMessages: 500, RetainedMaxBytes: 8 << 20, MaxTopicLength: 128, MaxTopicLevels: 8,
			MemoryLimit: 96 << 20,
		}},
		{"bridge.upstreams", c.Bridge.Upstreams, []Upstream{{URL: "mqtts://a.upstream.example", ServerName: "upstream.example"}, {URL: "mqtts://b.upstream.example:8884"}}},
		{"bridge.upstreams[0] host:port", c.Bridge.Upstreams[0].HostPort(), "a.upstream.example:8883"},
		{"bridge.client_id", c.Bridge.ClientID, "plant-7-gw"},
		{"bridge.tls", *c.Bridge.TLS, ClientTLS{CA: j("pki/upstream-ca.pem"), Cert: j("pki/gateway.crt"), Key: "tpm:blob=" + j("pki/gateway.tpm2.pem")}},
		{"bridge.keepalive", c.Bridge.Keepalive, Duration(45 * time.Second)},
		{"bridge.connect_timeout", c.Bridge.ConnectTimeout, Duration(15 * time.Second)},
		{"bridge.backoff", c.Bridge.Backoff, Backoff{Min: Duration(2 * time.Second), Max: Duration(5 * time.Minute)}},
		{"bridge.inflight", c.Bridge.Inflight, 32},
		{"bridge.drain_rate", c.Bridge.DrainRate, 200},
		{"bridge.user_properties", c.Bridge.UserProperties, UserProperties{Device: "dev"}},
		{"bridge.routes", c.Bridge.Routes, []Route{
			{Name: "telemetry", Topic: "building/#", Direction: "out", QoS: 1, RemotePrefix: "sites/plant-7/", Priority: 10,
				MaxBytes: 1 << 30, MaxMessages: 1000000, MaxAge: Duration(7 * 24 * time.Hour), Overflow: "reject", QueueQoS0: true},
			{Name: "in:cmd/+/set", Topic: "cmd/+/set", Direction: "in", QoS: 0, Overflow: "drop-oldest"},
			{Name: "both:sync/#", Topic: "sync/#", Direction: "both", QoS: 2, Overflow: "drop-oldest"},
		}},
		{"metrics", c.Metrics.Address, ""},
		{"admin", c.Admin.Socket, j("run/admin.sock")},
		{"audit", c.Audit.File, ""},
		{"line of bridge.routes[1].topic", c.Line("bridge.routes[1].topic"), 68},
		{"line of a default key falls back to its parent", c.Line("bridge.routes[1].max_age"), 68},
	}
	for _, ck := range checks {
		if !reflect.DeepEqual(ck.got, ck.want) {
			t.Errorf("%s: got %+v; want %+v", ck.name, ck.got, ck.want)
		}
	}
}

func TestLoadConfigGoodAnchors(t *testing.T) {
	c, err := Load(filepath.Join("testdata", "good", "anchors.yaml"))
	if err != nil {
		t.Fatalf("got %v; want no error", err)
	}
	r := c.Bridge.Routes
	if len(r) != 2 {
		t.Fatalf("got %d routes; want 2", len(r))
	}
	want := Route{Name: "out:energy/#", Topic: "energy/#", Direction: "out", QoS: 1, RemotePrefix: "sites/plant-7/", MaxAge: Duration(36 * time.Hour), Overflow: "drop-oldest"}
	if !reflect.DeepEqual(r[1], want) {
		t.Errorf("got merged route %+v; want %+v", r[1], want)
	}
	if c.Devices != "/etc/edgegw/devices.yaml" {
		t.Errorf("got devices %q; want the absolute path unchanged", c.Devices)
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	var ce *Error
	if err == nil || errors.As(err, &ce) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("got %v; want a not-exist error that is not a *Error", err)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    Size
		wantErr string
	}{
		{"0", 0, ""},
		{"4096", 4096, ""},
		{"10B", 10, ""},
		{"512MiB", 512 << 20, ""},
		{"2GiB", 2 << 30, ""},
		{"1GB", 1e9, ""},
		{"64 KiB", 64 << 10, ""},
		{"1TiB", 1 << 40, ""},
		{"", 0, `"": want a whole number and a unit`},
		{"-1GiB", 0, `"-1GiB": must not be negative`},
		{"1.5GiB", 0, `"1.5GiB": fractions are not supported`},
		{"2gib", 0, `"2gib": unknown unit "gib"`},
		{"GiB", 0, `"GiB": want a whole number`},
		{"99999999999TiB", 0, `"99999999999TiB": too large`},
		{"99999999999999999999", 0, `too large`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("got %v, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestSizeString(t *testing.T) {
	for _, tt := range []struct {
		in   Size
		want string
	}{{2 << 30, "2GiB"}, {1e9, "1GB"}, {1500, "1500B"}, {0, "0B"}, {3 << 10, "3KiB"}} {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("Size(%d).String(): got %q; want %q", int64(tt.in), got, tt.want)
		}
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{"90s", 90 * time.Second, ""},
		{"36h", 36 * time.Hour, ""},
		{"7d", 7 * 24 * time.Hour, ""},
		{"1d12h", 36 * time.Hour, ""},
		{"0s", 0, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"0d", 0, ""},
		{"", 0, `"": want a number and a unit`},
		{"10", 0, `"10": missing unit`},
		{"-5s", 0, `"-5s": must not be negative`},
		{"7days", 0, `"7days": want a number and a unit`},
		{"d", 0, `"d": want a number and a unit`},
		{"1d-1h", 0, `"1d-1h": want a number and a unit`},
		{"999999999d", 0, `"999999999d": too large`},
		{"106752d", 0, `too large`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDuration(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("got %v, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got.D() != tt.want {
				t.Errorf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// writeFiles creates files (and directories, for names ending in "/") under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

const tlsConfig = `version: 1
site: plant-7
listeners:
  - name: lan
    address: ":8883"
    tls:
      ca: pki/ca.crt
      cert: pki/server.crt
      key: pki/server.key
      crl: pki/crl.pem
devices: devices.yaml
policies: policies/
bridge:
  upstreams: [{url: "mqtts://upstream.example:8883"}]
  client_id: plant-7-gw
  tls: {ca: pki/upstream-ca.pem, cert: pki/gateway.crt, key: "tpm:handle=0x81000100"}
  routes: [{topic: "building/#"}]
`

func TestCheckFiles(t *testing.T) {
	all := map[string]string{
		"edgegw.yaml":         tlsConfig,
		"pki/ca.crt":          "x",
		"pki/server.crt":      "x",
		"pki/server.key":      "x",
		"pki/crl.pem":         "x",
		"pki/upstream-ca.pem": "x",
		"pki/gateway.crt":     "x",
		"devices.yaml":        "x",
		"policies/":           "",
	}
	tests := []struct {
		name   string
		drop   []string          // files not to create
		change map[string]string // files to replace
		want   []string          // after "<dir>/edgegw.yaml:"
	}{
		{name: "all present"},
		{name: "every file missing", drop: []string{"pki/ca.crt", "pki/server.crt", "pki/server.key", "pki/crl.pem", "pki/upstream-ca.pem", "pki/gateway.crt", "devices.yaml", "policies/"}, want: []string{
			"7: listeners[0].tls.ca: DIR/pki/ca.crt: no such file",
			"8: listeners[0].tls.cert: DIR/pki/server.crt: no such file",
			"9: listeners[0].tls.key: DIR/pki/server.key: no such file",
			"10: listeners[0].tls.crl: DIR/pki/crl.pem: no such file",
			"11: devices: DIR/devices.yaml: no such file",
			"12: policies: DIR/policies: no such file",
			"16: bridge.tls.ca: DIR/pki/upstream-ca.pem: no such file",
			"16: bridge.tls.cert: DIR/pki/gateway.crt: no such file",
		}},
		{name: "policies is a file", drop: []string{"policies/"}, change: map[string]string{"policies": "x"}, want: []string{
			"12: policies: DIR/policies: not a directory",
		}},
		{name: "devices is a directory", drop: []string{"devices.yaml"}, change: map[string]string{"devices.yaml/": ""}, want: []string{
			"11: devices: DIR/devices.yaml: is a directory; want a file",
		}},
		{name: "config errors and file errors together", drop: []string{"devices.yaml"}, change: map[string]string{"edgegw.yaml": tlsConfig + "metrics: {adress: x}\n"}, want: []string{
			"11: devices: DIR/devices.yaml: no such file",
			`18: metrics: unknown key "adress" (did you mean "address"?)`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			files := map[string]string{}
			for k, v := range all {
				files[k] = v
			}
			for _, d := range tt.drop {
				delete(files, d)
			}
			for k, v := range tt.change {
				files[k] = v
			}
			writeFiles(t, dir, files)
			cfgPath := filepath.Join(dir, "edgegw.yaml")
			c, err := Check(cfgPath)
			if tt.want == nil {
				if err != nil || c == nil {
					t.Fatalf("got %v; want a config and no error", err)
				}
				if err := c.CheckFiles(); err != nil {
					t.Errorf("CheckFiles: got %v; want nil", err)
				}
				return
			}
			if c != nil {
				t.Errorf("got a config; want nil")
			}
			got := errLines(t, err)
			var want []string
			for _, w := range tt.want {
				want = append(want, cfgPath+":"+strings.ReplaceAll(w, "DIR", dir))
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

func TestCheckFilesStatError(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"edgegw.yaml": tlsConfig, "devices.yaml": "x", "policies/": ""})
	c, err := Parse(filepath.Join(dir, "edgegw.yaml"), dir, []byte(tlsConfig))
	if err != nil {
		t.Fatal(err)
	}
	c.Listeners[0].TLS.CA = filepath.Join(dir, "devices.yaml", "ca.crt") // ENOTDIR
	got := errLines(t, c.CheckFiles())
	want := filepath.Join(dir, "edgegw.yaml") + ":7: listeners[0].tls.ca: " + filepath.Join(dir, "devices.yaml", "ca.crt") + ": not a directory"
	if len(got) == 0 || got[0] != want {
		t.Errorf("got %q; want first %q", got, want)
	}
}

func TestValidateBuiltInCode(t *testing.T) {
	c := Default()
	c.Version = 1
	c.Site = "lab"
	c.Listeners = []Listener{{Name: "local", Address: "127.0.0.1:0", Identity: "cn"}}
	c.Devices, c.Policies = "/d.yaml", "/p"
	if err := c.Validate(); err != nil {
		t.Fatalf("got %v; want nil", err)
	}
	c.Listeners[0].Address = "0.0.0.0:0"
	got := errLines(t, c.Validate())
	want := []string{`listeners[0].address: "0.0.0.0:0": a listener without tls must bind a loopback address (127.0.0.1, ::1 or localhost); add tls or bind 127.0.0.1`}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q; want %q", got, want)
	}
}

func TestConfigErrorf(t *testing.T) {
	c, err := Load(filepath.Join("testdata", "good", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	got := c.Errorf("bridge.routes[0].topic", "no policy lets anyone publish to %q", "building/#").Error()
	// The line of the first route's topic, found in the file itself so the
	// test follows edits of full.yaml.
	data, err := os.ReadFile(filepath.Join("testdata", "good", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	line := 0
	for i, l := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(l) == `topic: "building/#"` {
			line = i + 1
			break
		}
	}
	if line == 0 {
		t.Fatal(`full.yaml has no line 'topic: "building/#"'`)
	}
	want := fmt.Sprintf("%s:%d: bridge.routes[0].topic: no policy lets anyone publish to \"building/#\"", filepath.Join("testdata", "good", "full.yaml"), line)
	if got != want {
		t.Errorf("got %q; want %q", got, want)
	}
}

func TestEditDistanceSuggest(t *testing.T) {
	names := []string{"listeners", "devices", "policies", "bridge"}
	for _, tt := range []struct{ key, want string }{
		{"lisenters", "listeners"},
		{"listener", "listeners"},
		{"Devices", "devices"},
		{"polices", "policies"},
		{"brigde", "bridge"},
		{"mqtt_port", ""},
		{strings.Repeat("x", 100), ""},
	} {
		if got := suggest(tt.key, names); got != tt.want {
			t.Errorf("suggest(%q): got %q; want %q", tt.key, got, tt.want)
		}
	}
}

func TestLoadConfigAliasBomb(t *testing.T) {
	// Each level merges the previous one ten times: 10^8 values if expanded.
	var b strings.Builder
	b.WriteString("version: 1\nx0: &a0 {name: x}\n")
	for i := 1; i <= 8; i++ {
		fmt.Fprintf(&b, "x%d: &a%d {<<: [", i, i)
		for j := range 10 {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*a%d", i-1)
		}
		b.WriteString("]}\n")
	}
	b.WriteString("listeners:\n  - <<: *a8\n")
	_, err := Parse("bomb.yaml", "/", []byte(b.String()))
	got := errLines(t, err)
	want := "bomb.yaml:2: too many values after expanding aliases and merge keys (more than 20000); write the config out plainly"
	found := false
	for _, g := range got {
		found = found || g == want
	}
	if !found {
		t.Errorf("got %q; want among them %q", got, want)
	}
}

func TestLoadConfigGoodShadows(t *testing.T) {
	c, err := Load(filepath.Join("testdata", "good", "shadows.yaml"))
	if err != nil {
		t.Fatalf("got %v; want no error", err)
	}
	want := &ShadowConfig{TokenPrefix: "plant-7.gw", Sync: []ShadowSync{
		{Thing: "lamp-1", Direction: "both"},
		{Thing: "lock:3", Shadow: "$config", Direction: "down", DesiredOwner: "device", ReportedOwner: "cloud"},
	}}
	if !reflect.DeepEqual(c.Shadows, want) {
		t.Errorf("got shadows %+v; want %+v", c.Shadows, want)
	}
}
