package bridge

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/store"
)

func TestCheckRoutes(t *testing.T) {
	const dev = "plant-7-gw"
	out := func(name, topic, remotePrefix string) Route {
		return Route{Name: name, Topic: topic, Direction: Out, QoS: 1, RemotePrefix: remotePrefix}
	}
	in := func(name, topic, remotePrefix string) Route {
		return Route{Name: name, Topic: topic, Direction: In, QoS: 1, RemotePrefix: remotePrefix}
	}
	manyIn := make([]Route, 51)
	for i := range manyIn {
		manyIn[i] = in("cmd"+string(rune('A'+i%26))+string(rune('a'+i/26)), "cmd/#", "x/")
	}
	for _, tc := range []struct {
		name     string
		profile  Profile
		envelope Envelope
		routes   []Route
		want     []string // substrings, one per expected error, in order; nil = accepted
	}{
		{"generic accepts anything", ProfileGeneric, EnvelopeUserProperties,
			[]Route{out("t", "a/b/c/d/e/f/g/h/i/#", "$SYS/")}, nil},
		{"aws: 7 slashes", ProfileAWSIoTCore, EnvelopeUserProperties,
			[]Route{out("t", "building/+/+/temp", "sites/plant-7/")}, nil},
		{"aws: 8 slashes", ProfileAWSIoTCore, EnvelopeUserProperties,
			[]Route{out("deep", "a/b/c/d/e/f/g", "sites/x/")},
			[]string{`route "deep": remote topic "sites/x/a/b/c/d/e/f/g" has 8 slashes: AWS IoT Core allows at most 7 forward slashes`}},
		{"aws: '#' counts its fixed part only", ProfileAWSIoTCore, EnvelopeUserProperties,
			[]Route{out("t", "a/b/c/d/e/#", "sites/x/")}, nil},
		{"aws: topic suffix adds two levels", ProfileAWSIoTCore, EnvelopeTopicSuffix,
			[]Route{out("t", "a/b/c/d/e", "sites/x/")},
			[]string{"has 8 slashes"}},
		{"aws: basic ingest prefix does not count", ProfileAWSIoTCore, EnvelopeUserProperties,
			[]Route{out("t", "a/b/c/d/e/f/g", "$aws/rules/ingest/")}, nil},
		{"aws: reserved $ topics", ProfileAWSIoTCore, EnvelopeUserProperties,
			[]Route{out("sys", "x", "$SYS/"), out("shadow", "update", "$aws/things/gw/shadow/")},
			[]string{`route "sys": remote topic "$SYS/x": AWS IoT Core reserves topics starting with '$'`}},
		{"aws: topic of 257 bytes", ProfileAWSIoTCore, EnvelopeUserProperties,
			[]Route{out("long", strings.Repeat("x", 250), "sites/x/")},
			[]string{"remote topic of 258 bytes: AWS IoT Core allows topics of at most 256 bytes"}},
		{"aws: deep in filter", ProfileAWSIoTCore, EnvelopeUserProperties,
			[]Route{in("cmd", "a/b/c/d/e/f/+", "sites/x/")},
			[]string{`route "cmd": remote topic "sites/x/a/b/c/d/e/f/+" has 8 slashes`}},
		{"aws: 51 subscriptions", ProfileAWSIoTCore, EnvelopeUserProperties, manyIn,
			[]string{"51 in routes (one subscription each): AWS IoT Core allows at most 50 subscriptions per connection"}},
		{"azure: events and devicebound", ProfileAzureIoTHub, EnvelopePropertyBag,
			[]Route{out("tel", "building/#", "devices/"+dev+"/messages/events/"), in("c2d", "#", "devices/"+dev+"/messages/devicebound/")}, nil},
		{"azure: telemetry elsewhere", ProfileAzureIoTHub, EnvelopePropertyBag,
			[]Route{out("tel", "building/#", "sites/plant-7/")},
			[]string{`route "tel": remote_prefix "sites/plant-7/" (want "devices/plant-7-gw/messages/events/"): Azure IoT Hub accepts device-to-cloud messages only on devices/{deviceId}/messages/events/`}},
		{"azure: another device's events", ProfileAzureIoTHub, EnvelopePropertyBag,
			[]Route{out("tel", "#", "devices/other/messages/events/")},
			[]string{"Azure IoT Hub accepts device-to-cloud messages only"}},
		{"azure: subscription other than devicebound/#", ProfileAzureIoTHub, EnvelopePropertyBag,
			[]Route{in("c2d", "cmd/#", "devices/"+dev+"/messages/devicebound/")},
			[]string{`route "c2d": remote filter "devices/plant-7-gw/messages/devicebound/cmd/#" (want "devices/plant-7-gw/messages/devicebound/#"): Azure IoT Hub delivers cloud-to-device messages only on the subscription devices/{deviceId}/messages/devicebound/#`}},
		{"azure: both directions", ProfileAzureIoTHub, EnvelopePropertyBag,
			[]Route{{Name: "cmd", Topic: "#", Direction: Both, RemotePrefix: "devices/" + dev + "/messages/events/"}},
			[]string{`route "cmd": direction both: Azure IoT Hub accepts`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := CheckRoutes(tc.profile, dev, tc.envelope, tc.routes)
			if len(errs) != len(tc.want) {
				t.Fatalf("got %d errors %v; want %d %q", len(errs), errs, len(tc.want), tc.want)
			}
			for i, err := range errs {
				var re *RuleError
				if !errors.As(err, &re) || re.Rule == "" {
					t.Errorf("error %d: %v is not a *RuleError naming a rule", i, err)
				}
				if !strings.Contains(err.Error(), tc.want[i]) {
					t.Errorf("error %d: got %q; want it to contain %q", i, err, tc.want[i])
				}
			}
		})
	}
}

func TestProfileRefusesSettings(t *testing.T) {
	base := func(p Profile, mut func(*Config)) Config {
		c := Config{Profile: p, ClientID: "gw", TLS: &tls.Config{}, Upstreams: []Upstream{{URL: mustURL(t, "mqtts://cloud.example")}}}
		mut(&c)
		return c
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // "" = valid
	}{
		{"aws defaults", base(ProfileAWSIoTCore, func(*Config) {}), ""},
		{"aws client id with $", base(ProfileAWSIoTCore, func(c *Config) { c.ClientID = "$gw" }), "AWS IoT Core allows a client ID of at most 128 bytes"},
		{"aws client id of 129 bytes", base(ProfileAWSIoTCore, func(c *Config) { c.ClientID = strings.Repeat("g", 129) }), "client ID of at most 128 bytes"},
		{"aws max rate 150", base(ProfileAWSIoTCore, func(c *Config) { c.MaxRate = 150 }), "max_rate 150: AWS IoT Core allows at most 100 publishes per second per connection"},
		{"aws max payload 1 MiB", base(ProfileAWSIoTCore, func(c *Config) { c.MaxPayload = 1 << 20 }), "max_payload 1048576: AWS IoT Core allows a message payload of at most 128 KB"},
		{"azure defaults", base(ProfileAzureIoTHub, func(*Config) {}), ""},
		{"azure MQTT 5", base(ProfileAzureIoTHub, func(c *Config) { c.Protocol = MQTT5; c.Envelope = EnvelopePropertyBag }), "protocol 5: Azure IoT Hub's MQTT endpoint speaks MQTT 3.1.1"},
		{"azure json envelope", base(ProfileAzureIoTHub, func(c *Config) { c.Envelope = EnvelopeJSON }), `envelope "json" (want property-bag)`},
		{"azure keepalive 30 min", base(ProfileAzureIoTHub, func(c *Config) { c.KeepAlive = 30 * time.Minute }), "at most 1177 seconds"},
		{"azure plaintext", base(ProfileAzureIoTHub, func(c *Config) { c.Upstreams[0].URL = mustURL(t, "mqtt://hub.example") }), "Azure IoT Hub accepts only TLS connections"},
		{"user properties on 3.1.1", base(ProfileGeneric, func(c *Config) { c.Protocol = MQTT311; c.Envelope = EnvelopeUserProperties }), "MQTT 3.1.1 has no user properties"},
		{"password without user", base(ProfileGeneric, func(c *Config) { c.Password = []byte("x") }), "a password needs a username"},
		{"two password sources", base(ProfileGeneric, func(c *Config) { c.Username = "u"; c.Password = []byte("x"); c.PasswordFile = "/p" }), "keep one"},
		{"socks proxy", base(ProfileGeneric, func(c *Config) { c.Proxy = mustURL(t, "socks5://127.0.0.1:1080") }), "scheme must be http://"},
		{"bad name", base(ProfileGeneric, func(c *Config) { c.Name = "a b" }), `name "a b"`},
		{"unknown profile", base("gcp", func(*Config) {}), `profile "gcp"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.cfg
			c.setDefaults()
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("got %v; want valid", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v; want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestMessageProblem(t *testing.T) {
	for _, tc := range []struct {
		name    string
		profile Profile
		topic   string
		payload int
		want    string
	}{
		{"aws fine", ProfileAWSIoTCore, "a/b/c/d/e/f/g/h", 100, ""},
		{"aws 8 slashes", ProfileAWSIoTCore, "a/b/c/d/e/f/g/h/i", 100, "topic with 8 slashes: AWS IoT Core allows at most 7"},
		{"aws basic ingest", ProfileAWSIoTCore, "$aws/rules/r/a/b/c/d/e/f/g/h", 100, ""},
		{"aws payload 128 KiB", ProfileAWSIoTCore, "a", 128 * 1024, ""},
		{"aws payload over 128 KiB", ProfileAWSIoTCore, "a", 128*1024 + 1, "payload of 131073 bytes: AWS IoT Core allows a message payload of at most 128 KB"},
		{"azure payload over 256 KiB", ProfileAzureIoTHub, "devices/d/messages/events/", 256*1024 + 1, "Azure IoT Hub allows device-to-cloud messages of at most 256 KB"},
		{"generic deep", ProfileGeneric, strings.Repeat("a/", 40), 1 << 20, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{Profile: tc.profile, Upstreams: []Upstream{{URL: mustURL(t, "mqtts://h")}}}
			c.setDefaults()
			got := c.messageProblem(tc.topic, tc.payload)
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Errorf("got %q; want %q", got, tc.want)
			}
		})
	}
}

func TestCheckBridges(t *testing.T) {
	up := func(s string) []Upstream { return []Upstream{{URL: mustURL(t, s)}} }
	tel := Route{Name: "telemetry", Topic: "building/#", Direction: Out}
	for _, tc := range []struct {
		name string
		cfgs []Config
		want []string
	}{
		{"two distinct bridges", []Config{
			{Name: "aws", ClientID: "gw", Upstreams: up("mqtts://a.example"), Routes: []Route{tel}},
			{Name: "scada", ClientID: "gw", Upstreams: up("mqtts://b.example"), Routes: []Route{{Name: "scada-telemetry", Topic: "building/#", Direction: Out}}},
		}, nil},
		{"same name", []Config{
			{Name: "aws", ClientID: "gw-1", Upstreams: up("mqtts://a.example")},
			{Name: "aws", ClientID: "gw-2", Upstreams: up("mqtts://b.example")},
		}, []string{`bridges[1]: name "aws" used twice`}},
		{"route name in two bridges", []Config{
			{Name: "a", ClientID: "gw", Upstreams: up("mqtts://a.example"), Routes: []Route{tel}},
			{Name: "b", ClientID: "gw", Upstreams: up("mqtts://b.example"), Routes: []Route{tel}},
		}, []string{`bridges[1] (b): route "telemetry" is also a route of bridge a: route names name queues and must be unique across bridges`}},
		{"same client id on the same upstream", []Config{
			{Name: "a", ClientID: "gw", Upstreams: up("mqtts://a.example")},
			{Name: "b", ClientID: "gw", Upstreams: up("mqtts://A.example:8883")},
		}, []string{`bridges[1] (b): client_id "gw" on A.example:8883 is also bridge a's`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := CheckBridges(tc.cfgs)
			if len(errs) != len(tc.want) {
				t.Fatalf("got %v; want %q", errs, tc.want)
			}
			for i, err := range errs {
				if !strings.Contains(err.Error(), tc.want[i]) {
					t.Errorf("got %q; want it to contain %q", err, tc.want[i])
				}
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	both := Route{Name: "cmd", Topic: "cmd/#", Direction: Both}
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{"MQTT 5 default", Config{Routes: []Route{both}}, nil},
		{"3.1.1 without envelope", Config{Protocol: MQTT311}, []string{"envelope none: upstream messages carry no device and sequence number"}},
		{"3.1.1 with json", Config{Protocol: MQTT311, Envelope: EnvelopeJSON}, nil},
		{"3.1.1 both route", Config{Protocol: MQTT311, Envelope: EnvelopeJSON, Routes: []Route{both}}, []string{`route "cmd": direction both on MQTT 3.1.1: there is no No Local`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.cfg.Warnings()
			if len(got) != len(tc.want) {
				t.Fatalf("got %q; want %q", got, tc.want)
			}
			for i := range got {
				if !strings.Contains(got[i], tc.want[i]) {
					t.Errorf("got %q; want it to contain %q", got[i], tc.want[i])
				}
			}
		})
	}
}

// TestNewRefusesRoutesTheCloudRefuses: New, SetRoutes and Check (for
// `edgegw check`) refuse the same routes.
func TestNewRefusesRoutesTheCloudRefuses(t *testing.T) {
	cfg := Config{Profile: ProfileAWSIoTCore, ClientID: "gw", TLS: &tls.Config{}, Upstreams: []Upstream{{URL: mustURL(t, "mqtts://cloud.example")}},
		Routes: []Route{{Name: "deep", Topic: "a/b/c/d/e/f/g/h/i", Direction: Out}}}
	if _, err := New(cfg, newMemQueue(t), newRecPublisher(), nil); err == nil || !strings.Contains(err.Error(), "at most 7 forward slashes") {
		t.Fatalf("New: %v; want the 7-slash rule", err)
	}
	err := cfg.Check()
	if err == nil || !strings.Contains(err.Error(), `bridge default: profile aws-iot-core: route "deep"`) {
		t.Errorf("Check: %v; want the same refusal, naming bridge and route", err)
	}
	cfg.Routes = nil
	if err := cfg.Check(); err != nil {
		t.Errorf("Check without routes: %v; want nil", err)
	}
	b, err := New(cfg, newMemQueue(t), newRecPublisher(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SetRoutes([]Route{{Name: "sys", Topic: "x", Direction: Out, RemotePrefix: "$SYS/"}}); err == nil || !strings.Contains(err.Error(), "reserves topics starting with '$'") {
		t.Errorf("SetRoutes: %v; want the reserved-topic rule", err)
	}
}

// TestAWSProfileDeadLettersWhatTheCloudRefuses: a '#' route passes the
// route check, so each message's real topic and size are checked before
// sending; what AWS IoT Core would refuse is dead-lettered with its rule,
// and the rest flows on, in order.
func TestAWSProfileDeadLettersWhatTheCloudRefuses(t *testing.T) {
	m := startMosquitto(t, mosquittoOpts{})
	c := startCloud(t, m, "sites/#")
	q := newTestQueue(t)
	cfg := testConfig(m, telemetry)
	cfg.Profile = ProfileAWSIoTCore
	var (
		mu  sync.Mutex
		dls []DeadLetter
	)
	cfg.OnDeadLetter = func(d DeadLetter) { mu.Lock(); dls = append(dls, d); mu.Unlock() }
	put := func(topic string, size int) uint64 {
		seq, err := q.Enqueue(context.Background(), store.Message{Route: telemetry.Name, Topic: topic, Payload: make([]byte, size), QoS: 1, Device: "sensor-01", Time: time.Now().UnixNano()})
		if err != nil {
			t.Fatal(err)
		}
		return seq
	}
	var good []uint64
	good = append(good, put("building/sensor-01/temp", 10))
	deep := put("building/1/2/3/4/5/6/7", 10) // sites/plant-7/building/1/.../7: 9 slashes
	good = append(good, put("building/sensor-01/temp", AWSMaxPayload))
	big := put("building/sensor-01/temp", AWSMaxPayload+1)
	good = append(good, put("building/sensor-01/temp", 10))
	b := runBridge(t, cfg, q, nil)
	eventually(t, 20*time.Second, "the good messages upstream", func() bool {
		_, _, missing := c.report(good)
		return len(missing) == 0
	})
	eventually(t, 10*time.Second, "two dead letters", func() bool { return b.State().DeadLettered == 2 })
	mu.Lock()
	defer mu.Unlock()
	want := map[uint64]string{deep: "AWS IoT Core allows at most 7 forward slashes", big: "AWS IoT Core allows a message payload of at most 128 KB"}
	for _, d := range dls {
		if w, ok := want[d.Seq]; !ok || !strings.Contains(d.Reason, w) {
			t.Errorf("dead letter seq %d reason %q; want %q", d.Seq, d.Reason, w)
		}
	}
	if n := c.outOfOrder(); n != 0 {
		t.Errorf("out of order: %d; want 0", n)
	}
}
