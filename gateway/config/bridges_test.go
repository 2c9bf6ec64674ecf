package config

import (
	"reflect"
	"strings"
	"testing"
)

const bridgesHead = `version: 1
site: plant-7
listeners: [{name: local, address: "127.0.0.1:1883"}]
devices: devices.yaml
policies: policies/
store: {dir: /var/lib/edgegw/queue}
`

func TestBridgesGood(t *testing.T) {
	c, err := Parse("edgegw.yaml", "/etc/edgegw", []byte(bridgesHead+`bridges:
  - name: aws
    profile: aws-iot-core
    upstreams: [{url: "mqtts://a.iot.example:443", alpn: [x-amzn-mqtt-ca]}]
    client_id: plant-7-gw
    tls: {ca: aws-ca.pem, cert: aws.crt, key: "file:aws.key"}
    max_rate: 50
    routes:
      - {name: aws-telemetry, topic: "sensors/#", remote_prefix: "sites/plant-7/"}
  - name: scada
    protocol: "3.1.1"
    envelope: json
    upstreams: [{url: "mqtt://127.0.0.1:1884"}]
    client_id: plant-7-scada
    username: gw
    password_file: scada.pass
    routes:
      - {name: scada-telemetry, topic: "sensors/#"}
`))
	if err != nil {
		t.Fatalf("got %v; want no error", err)
	}
	bs := c.BridgeList()
	if len(bs) != 2 || bs[0].Name != "aws" || bs[1].Name != "scada" {
		t.Fatalf("got %d bridges; want aws and scada", len(bs))
	}
	if got, want := bs[1].PasswordFile, "/etc/edgegw/scada.pass"; got != want {
		t.Errorf("password_file: got %q; want %q", got, want)
	}
	if got, want := bs[0].TLS.Key, "file:/etc/edgegw/aws.key"; got != want {
		t.Errorf("tls.key: got %q; want %q", got, want)
	}
	if got, want := bs[0].Upstreams[0].ALPN, []string{"x-amzn-mqtt-ca"}; !reflect.DeepEqual(got, want) {
		t.Errorf("alpn: got %q; want %q", got, want)
	}
	for _, tt := range []struct{ name, want string }{
		{"default", "/var/lib/edgegw/queue"},
		{"aws", "/var/lib/edgegw/queue-aws"},
	} {
		if got := c.BridgeQueueDir(tt.name); got != tt.want {
			t.Errorf("BridgeQueueDir(%q): got %q; want %q", tt.name, got, tt.want)
		}
	}
}

func TestBridgeSectionIsDefault(t *testing.T) {
	c, err := Parse("edgegw.yaml", "/etc/edgegw", []byte(bridgesHead+`bridge:
  upstreams: [{url: "mqtt://127.0.0.1:1884"}]
  client_id: plant-7-gw
  routes: [{topic: "sensors/#"}]
`))
	if err != nil {
		t.Fatalf("got %v; want no error", err)
	}
	bs := c.BridgeList()
	if len(bs) != 1 || bs[0].Name != DefaultBridgeName || c.BridgePath(0) != "bridge" {
		t.Fatalf("got %d bridges (first %q at %q); want one named default at bridge", len(bs), bs[0].Name, c.BridgePath(0))
	}
	if got := c.BridgeQueueDir(bs[0].Name); got != "/var/lib/edgegw/queue" {
		t.Errorf("queue dir: got %q; want store.dir", got)
	}
}

func TestBridgesBad(t *testing.T) {
	up := `    upstreams: [{url: "mqtt://127.0.0.1:1884"}]
    client_id: gw-%s
`
	bridge := func(name string) string { return "  - name: " + name + "\n" + strings.ReplaceAll(up, "%s", name) }
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"both sections", "bridge:\n  upstreams: [{url: \"mqtt://127.0.0.1:1\"}]\n  client_id: x\n  routes: [{topic: a}]\nbridges:\n" + bridge("a") + "    routes: [{topic: b}]\n",
			[]string{`edgegw.yaml:11: bridges: bridge and bridges are both set: keep one (bridge is the same as a one-element bridges list named default)`}},
		{"no name", "bridges:\n  - upstreams: [{url: \"mqtt://127.0.0.1:1\"}]\n    client_id: x\n    routes: [{topic: a}]\n",
			[]string{`edgegw.yaml:8: bridges[0].name: required in a bridges list: a name for logs, status, metrics and the queue directory, e.g. aws`}},
		{"duplicate bridge", "bridges:\n" + bridge("a") + "    routes: [{name: r1, topic: a}]\n" + bridge("a") + "    routes: [{name: r2, topic: a}]\n",
			[]string{`edgegw.yaml:12: bridges[1].name: "a": duplicate bridge name (also bridges[0]); give each bridge its own name`}},
		{"route in two bridges", "bridges:\n" + bridge("a") + "    routes: [{topic: \"sensors/#\"}]\n" + bridge("b") + "    routes: [{topic: \"sensors/#\"}]\n",
			[]string{`edgegw.yaml:15: bridges[1].routes[0]: "out:sensors/#" is also the name of bridges[0].routes[0]: a route name names its queue, so names must be unique across bridges (e.g. b-out:sensors/#)`}},
		{"bad name", "bridges:\n" + bridge("a b") + "    routes: [{topic: a}]\n",
			[]string{`edgegw.yaml:8: bridges[0].name: "a b": use 1 to 64 letters, digits, '-' or '_'`}},
		{"named bridge section", "bridge:\n  name: aws\n  upstreams: [{url: \"mqtt://127.0.0.1:1\"}]\n  client_id: x\n  routes: [{topic: a}]\n",
			[]string{`edgegw.yaml:8: bridge.name: "aws": the bridge of a bridge section is named default (its queue is store.dir); use a bridges list for named bridges`}},
		{"password without username", "bridges:\n" + bridge("a") + "    password_file: p\n    routes: [{topic: a}]\n",
			[]string{`edgegw.yaml:11: bridges[0].password_file: a password needs a username (MQTT sends no password without one)`}},
		{"bad proxy", "bridges:\n" + bridge("a") + "    proxy: \"socks5://u:secret@h:1\"\n    routes: [{topic: a}]\n",
			[]string{`edgegw.yaml:11: bridges[0].proxy: "socks5://u:xxxxx@h:1": want http://[user:password@]host:port (an HTTP CONNECT proxy)`}},
		{"negative limits", "bridges:\n" + bridge("a") + "    max_rate: -1\n    routes: [{topic: a}]\n",
			[]string{`edgegw.yaml:11: bridges[0].max_rate: -1: must not be negative (0 = unlimited)`}},
		{"empty alpn", "bridges:\n  - name: a\n    upstreams: [{url: \"mqtt://127.0.0.1:1\", alpn: [\"\"]}]\n    client_id: x\n    routes: [{topic: a}]\n",
			[]string{`edgegw.yaml:9: bridges[0].upstreams[0].alpn[0]: "": an ALPN protocol is 1 to 255 bytes, e.g. x-amzn-mqtt-ca`}},
		{"tls without cert or username", "bridges:\n  - name: a\n    upstreams: [{url: \"mqtts://up.example\"}]\n    client_id: x\n    tls: {ca: ca.pem}\n    routes: [{topic: a}]\n",
			[]string{`edgegw.yaml:11: bridges[0].tls.cert: required: the gateway's certificate, e.g. pki/gateway.crt`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("edgegw.yaml", "/etc/edgegw", []byte(bridgesHead+tt.yaml))
			if err == nil {
				t.Fatalf("got no error; want %q", tt.want)
			}
			if got := errLines(t, err); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestBridgeTLSUsernameOnly: with a username, tls may verify the server
// only (no client certificate).
func TestBridgeTLSUsernameOnly(t *testing.T) {
	_, err := Parse("edgegw.yaml", "/etc/edgegw", []byte(bridgesHead+`bridges:
  - name: hive
    upstreams: [{url: "mqtts://up.example"}]
    client_id: x
    username: gw
    password_file: hive.pass
    tls: {ca: ca.pem}
    routes: [{topic: a}]
`))
	if err != nil {
		t.Fatalf("got %v; want no error", err)
	}
}

func TestBridgesGoodFile(t *testing.T) {
	c, err := Load("testdata/good/bridges.yaml")
	if err != nil {
		t.Fatalf("got %v; want no error", err)
	}
	bs := c.BridgeList()
	if len(bs) != 2 || bs[0].Proxy != "http://proxy.example:3128" || bs[0].MaxPayload != 128<<10 || bs[1].Envelope != "json" || len(bs[1].Routes) != 2 {
		t.Fatalf("got %+v; want the file's two bridges", bs)
	}
}
