package main

import (
	"github.com/edgegw/edgegw/gateway/gatewaytest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkConfig writes runConfig's site with bridges appended and returns its
// path.
func checkConfig(t *testing.T, bridges string) string {
	t.Helper()
	p := runConfig(t)
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(bridges); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCheckBridgeProfiles: `edgegw check` refuses the routes and settings
// AWS IoT Core and Azure IoT Hub would refuse, each line naming the cloud's
// rule and the bridge's place in the file; valid bridges pass.
func TestCheckBridgeProfiles(t *testing.T) {
	tests := []struct {
		name    string
		bridges string
		want    []string // substrings of stderr; none: check passes
	}{
		{"aws ok", `bridges:
  - name: aws
    profile: aws-iot-core
    upstreams: [{url: "mqtt://127.0.0.1:1883"}]
    client_id: plant-7-gw
    routes:
      - {name: aws-t, topic: "sensors/#", remote_prefix: "sites/plant-7/"}
`, nil},
		{"aws refuses", `bridges:
  - name: aws
    profile: aws-iot-core
    upstreams: [{url: "mqtt://127.0.0.1:1883"}]
    client_id: plant-7-gw
    max_rate: 150
    routes:
      - {name: deep, topic: "a/b/c/d/e/#", remote_prefix: "x/y/z/w/"}
      - {name: reserved, topic: "t/#", remote_prefix: "$SYS/"}
`, []string{
			`run.yaml:13: bridges[0]: bridge aws: profile aws-iot-core: max_rate 150: AWS IoT Core allows at most 100 publishes per second per connection`,
		}},
		{"aws routes", `bridges:
  - name: aws
    profile: aws-iot-core
    upstreams: [{url: "mqtt://127.0.0.1:1883"}]
    client_id: plant-7-gw
    routes:
      - {name: deep, topic: "a/b/c/d/e/#", remote_prefix: "x/y/z/w/"}
      - {name: reserved, topic: "t/#", remote_prefix: "$SYS/"}
`, []string{
			`AWS IoT Core allows at most 7 forward slashes in a topic or filter`,
			`route "deep"`,
			`route "reserved": remote topic "$SYS/t/#": AWS IoT Core reserves topics starting with '$'`,
		}},
		{"azure refuses", `bridges:
  - name: hub
    profile: azure-iot-hub
    upstreams: [{url: "mqtts://hub.azure-devices.net"}]
    client_id: plant-7-gw
    tls: {cert: ../configs/devices.yaml, key: "file:../configs/devices.yaml"}
    routes:
      - {name: hub-t, topic: "sensors/#", remote_prefix: "telemetry/"}
      - {name: hub-c, topic: "cmd/#", direction: in}
`, []string{
			`route "hub-t": remote_prefix "telemetry/" (want "devices/plant-7-gw/messages/events/"): Azure IoT Hub accepts device-to-cloud messages only on devices/{deviceId}/messages/events/`,
			`route "hub-c": remote filter "cmd/#" (want "devices/plant-7-gw/messages/devicebound/#"): Azure IoT Hub delivers cloud-to-device messages only on the subscription devices/{deviceId}/messages/devicebound/#`,
		}},
		{"azure protocol", `bridges:
  - name: hub
    profile: azure-iot-hub
    protocol: 5
    upstreams: [{url: "mqtt://127.0.0.1:1883"}]
    client_id: plant-7-gw
    routes:
      - {name: hub-t, topic: "sensors/#", remote_prefix: "devices/plant-7-gw/messages/events/"}
`, []string{
			`protocol 5: Azure IoT Hub's MQTT endpoint speaks MQTT 3.1.1`,
			`Azure IoT Hub accepts only TLS connections`,
		}},
		{"same client id on one upstream", `bridges:
  - name: a
    upstreams: [{url: "mqtt://127.0.0.1:1883"}]
    client_id: gw
    routes: [{name: a-t, topic: "a/#"}]
  - name: b
    upstreams: [{url: "mqtt://127.0.0.1:1883"}]
    client_id: gw
    routes: [{name: b-t, topic: "a/#"}]
`, []string{`client_id "gw" on 127.0.0.1:1883 is also bridge a's`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := checkConfig(t, tt.bridges)
			if strings.Contains(tt.bridges, "../configs/devices.yaml") { // any readable file: check does not parse the certificate
				data, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(strings.ReplaceAll(string(data), "../configs/devices.yaml", filepath.Join(filepath.Dir(p), "devices.yaml"))), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			stdout, stderr, code := runEdgegw(t, "check", "-c", p)
			if tt.want == nil {
				if code != 0 {
					t.Fatalf("check: exit %d, stderr:\n%s\nwant 0", code, stderr)
				}
				if !strings.Contains(stdout, "OK (1 listener, 1 bridge, 1 route") {
					t.Errorf("stdout %q; want the OK summary with 1 bridge", stdout)
				}
				return
			}
			if code != 1 {
				t.Fatalf("check: exit %d; want 1 (stderr %q)", code, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr:\n%s\nwant a line containing %q", stderr, w)
				}
			}
		})
	}
}

// TestCheckTwoCloudsExample: configs/two-clouds.yaml passes `edgegw check`
// once the files it names exist. check parses certificates and keys and
// matches each certificate to its key, so the files are a real test PKI: the
// site's CA and server pair, and one CA and gateway pair per cloud. The
// paths the package creates (/var/lib/edgegw, /var/log/edgegw) are moved
// into the test's directory: this machine's, if any, are not the example's.
func TestCheckTwoCloudsExample(t *testing.T) {
	dir := t.TempDir()
	copyDir(t, filepath.Join("..", "..", "configs"), dir)
	site, aws, azure, scada := gatewaytest.NewPKI(t, "site"), gatewaytest.NewPKI(t, "aws"), gatewaytest.NewPKI(t, "azure"), gatewaytest.NewPKI(t, "scada")
	awsGW, azureGW := aws.Issue(t, "plant-7-gw"), azure.Issue(t, "plant-7-gw")
	state := filepath.Join(dir, "var-lib-edgegw")
	for dst, src := range map[string]string{
		"pki/ca.crt": site.CAFile, "pki/server.crt": site.ServerCert, "pki/server.key": site.ServerKey, "pki/crl.pem": site.CRLFile,
		"pki/AmazonRootCA1.pem": aws.CAFile, "pki/aws-gateway.crt": awsGW.CertFile, "var-lib-edgegw/gateway.key": awsGW.KeyFile,
		"pki/azure-roots.pem": azure.CAFile, "pki/azure-gateway.crt": azureGW.CertFile, "pki/azure-gateway.key": azureGW.KeyFile,
		"pki/scada-ca.pem": scada.CAFile,
	} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, dst)), 0o755); err != nil {
			t.Fatal(err)
		}
		gatewaytest.WriteFile(t, filepath.Join(dir, dst), data, 0o600)
	}
	gatewaytest.WriteFile(t, filepath.Join(dir, "scada.pass"), []byte("s3cret\n"), 0o600)
	logDir := filepath.Join(dir, "var-log-edgegw")
	if err := os.MkdirAll(logDir, 0o750); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "two-clouds.yaml")
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(data), "/var/lib/edgegw", state)
	text += "\naudit: {file: " + filepath.Join(logDir, "audit.log") + "}\n"
	gatewaytest.WriteFile(t, cfg, []byte(text), 0o644)
	stdout, stderr, code := runEdgegw(t, "check", "-c", cfg)
	if want := cfg + ": OK (2 listeners, 3 bridges, 5 routes, devices: devices.yaml, policies: policies/)\n"; code != 0 || stdout != want || stderr != "" {
		t.Fatalf("check: exit %d, stdout %q, stderr %q; want 0, %q and nothing on stderr", code, stdout, stderr, want)
	}
}
