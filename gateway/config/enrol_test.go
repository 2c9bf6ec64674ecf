package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/enrol"
)

func TestEnrolmentSection(t *testing.T) {
	src := `version: 1
site: lab
listeners:
  - name: lan
    address: "127.0.0.1:8883"
    tls: {ca: pki/ca.crt, cert: pki/server.crt, key: "file:pki/server.key"}
devices: devices.yaml
policies: policies/
enrolment:
  days: 90
  renewal_grace: 2d
  rate_limit: {burst: 3, every: 1m}
  templates:
    - name: sensors
      thing_name: "sensor-${SerialNumber}"
      parameters:
        - {name: SerialNumber, pattern: "[0-9A-F]{8}"}
        - {name: Floor, default: "0"}
      thing_type: temperature
      attributes: {floor: "${Floor}"}
      policies: [temperature]
      device_configuration: {reportInterval: "60"}
      pre_provisioning_hook: {command: [/usr/local/bin/allow-serial, --strict]}
`
	dir := t.TempDir()
	c, err := Parse("edgegw.yaml", dir, []byte(src))
	if err != nil {
		t.Fatalf("got %v; want no error", err)
	}
	if got, want := c.Enrolment.PKIDir, filepath.Join(dir, "pki"); got != want {
		t.Errorf("got pki_dir %q; want %q (the TLS listener's ca directory)", got, want)
	}
	zero := "0"
	want := enrol.Config{Days: 90, RenewalGrace: 48 * time.Hour, RateLimit: enrol.RateLimit{Burst: 3, Every: time.Minute},
		Templates: []enrol.Template{{
			Name: "sensors", ThingName: "sensor-${SerialNumber}", ThingType: "temperature",
			Parameters:          []enrol.Parameter{{Name: "SerialNumber", Pattern: "[0-9A-F]{8}"}, {Name: "Floor", Default: &zero}},
			Attributes:          map[string]string{"floor": "${Floor}"},
			Policies:            []string{"temperature"},
			DeviceConfiguration: map[string]string{"reportInterval": "60"},
			PreProvisioningHook: &enrol.Hook{Command: []string{"/usr/local/bin/allow-serial", "--strict"}},
		}}}
	if got := c.Enrolment.Enrol(); !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%+v\nwant\n%+v", got, want)
	}
	ec := c.Enrolment.Enrol()
	if err := ec.Validate("enrolment"); err != nil {
		t.Errorf("got %v validating the converted section; want nil", err)
	}
}

func TestEnrolmentMapErrors(t *testing.T) {
	src := "version: 1\nsite: lab\nlisteners: [{name: l, address: \"127.0.0.1:1883\"}]\ndevices: d.yaml\npolicies: p/\n" +
		"enrolment:\n  pki_dir: pki\n  templates:\n    - name: s\n      thing_name: x\n      attributes: [a, b]\n"
	_, err := Parse("edgegw.yaml", t.TempDir(), []byte(src))
	got := errLines(t, err)
	want := []string{"edgegw.yaml:11: enrolment.templates[0].attributes: want a mapping (key: value), got a list"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q; want %q", got, want)
	}
}

// The commented enrolment example of configs/edgegw.yaml, uncommented, is a valid section.
func TestEnrolmentExample(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "configs", "edgegw.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var block []string
	in := false
	for _, l := range strings.Split(string(b), "\n") {
		if l == "#enrolment:" {
			in = true
		}
		if in && !strings.HasPrefix(l, "#") {
			break
		}
		if in {
			block = append(block, strings.TrimPrefix(l, "#"))
		}
	}
	if len(block) < 10 {
		t.Fatalf("got %d lines of the enrolment example; want the commented #enrolment: section", len(block))
	}
	src := "version: 1\nsite: lab\nlisteners: [{name: l, address: \"127.0.0.1:1883\"}]\ndevices: d.yaml\npolicies: p/\n" + strings.Join(block, "\n") + "\n"
	c, err := Parse("edgegw.yaml", t.TempDir(), []byte(src))
	if err != nil {
		t.Fatalf("got %v; want the example to parse", err)
	}
	if n := len(c.Enrolment.Templates); n != 1 || c.Enrolment.Templates[0].PreProvisioningHook == nil {
		t.Errorf("got %d templates (%+v); want 1 with a pre-provisioning hook", n, c.Enrolment.Templates)
	}
}

// enrolment's durations are enrol.Config's time.Duration fields, read as every duration of
// the config is ("7d"; no negatives), with the key and line of a bad one.
func TestEnrolmentDurations(t *testing.T) {
	head := "version: 1\nsite: lab\nlisteners: [{name: l, address: \"127.0.0.1:1883\"}]\ndevices: d.yaml\npolicies: p/\n" +
		"enrolment:\n  pki_dir: pki\n  templates: [{name: s, thing_name: x}]\n"
	c, err := Parse("edgegw.yaml", t.TempDir(), []byte(head+"  token_ttl: 90m\n  renewal_grace: 1d12h\n"))
	if err != nil {
		t.Fatalf("got %v; want no error", err)
	}
	if c.Enrolment.TokenTTL != 90*time.Minute || c.Enrolment.RenewalGrace != 36*time.Hour {
		t.Errorf("got token_ttl %s, renewal_grace %s; want 1h30m0s, 36h0m0s", c.Enrolment.TokenTTL, c.Enrolment.RenewalGrace)
	}
	if c.Enrolment.RateLimit.Every != 0 || c.Enrolment.Templates[0].Name != "s" {
		t.Errorf("got %+v; want the section as written (defaults are enrol.New's, not written into the config)", c.Enrolment.Config)
	}
	for _, tc := range []struct{ line, want string }{
		{"  token_ttl: 5 minutes\n", `edgegw.yaml:9: enrolment.token_ttl: "5 minutes": want a number and a unit, e.g. 90s, 10m, 36h, 7d`},
		{"  rate_limit: {every: -1s}\n", `edgegw.yaml:9: enrolment.rate_limit.every: "-1s": must not be negative`},
		{"  renewal_grace: [1h]\n", `edgegw.yaml:9: enrolment.renewal_grace: want a single value, got a list`},
	} {
		_, err := Parse("edgegw.yaml", t.TempDir(), []byte(head+tc.line))
		if got := errLines(t, err); !reflect.DeepEqual(got, []string{tc.want}) {
			t.Errorf("%q: got %q; want %q", tc.line, got, tc.want)
		}
	}
}
