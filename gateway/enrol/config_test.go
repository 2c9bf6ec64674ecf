package enrol

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// The section as a site engineer writes it (the example in Config's doc), decoded strictly.
const exampleYAML = `
days: 365
token_ttl: 1h
renewal_grace: 168h
rate_limit: {burst: 5, every: 10s}
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
    pre_provisioning_hook: {command: [/usr/local/bin/allow-serial], timeout: 5s}
`

func TestConfigYAML(t *testing.T) {
	var c Config
	dec := yaml.NewDecoder(strings.NewReader(exampleYAML))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("decoding the example: %v", err)
	}
	c, err := c.prepared("enrolment")
	if err != nil {
		t.Fatal(err)
	}
	tm := c.Templates[0]
	if c.TokenTTL != time.Hour || c.RenewalGrace != 168*time.Hour || c.RateLimit.Every != 10*time.Second ||
		tm.PreProvisioningHook.Timeout != 5*time.Second || *tm.Parameters[1].Default != "0" || tm.DeviceConfiguration["reportInterval"] != "60" {
		t.Errorf("decoded %+v; want the example's values", c)
	}
	if !tm.thingRE.MatchString("sensor-00A1B2C3") || tm.thingRE.MatchString("sensor-1") {
		t.Errorf("thing name pattern %s", tm.thingRE)
	}
	var bad Config
	dec = yaml.NewDecoder(bytes.NewReader([]byte("templates: [{name: a, thing_nam: x}]")))
	dec.KnownFields(true)
	if err := dec.Decode(&bad); err == nil || !strings.Contains(err.Error(), "thing_nam") {
		t.Errorf("a misspelt key decoded: %v", err)
	}
}
