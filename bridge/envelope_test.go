package bridge

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/eclipse/paho.golang/paho"
	"github.com/edgegw/edgegw/store"
)

// envelopeParser returns the cloud side's reader of an envelope: device,
// seq and the topic without envelope levels.
func envelopeParser(env Envelope) func(p *paho.Publish) (string, uint64, string, bool) {
	switch env {
	case EnvelopeTopicSuffix:
		return func(p *paho.Publish) (string, uint64, string, bool) {
			dev, seq, topic, err := unwrapTopicSuffix(p.Topic)
			return dev, seq, topic, err == nil
		}
	case EnvelopeJSON:
		return func(p *paho.Publish) (string, uint64, string, bool) {
			dev, seq, _, err := unwrapJSON(p.Payload)
			return dev, seq, p.Topic, err == nil
		}
	case EnvelopePropertyBag:
		return func(p *paho.Publish) (string, uint64, string, bool) {
			i := strings.LastIndexByte(p.Topic, '/')
			v, err := url.ParseQuery(p.Topic[i+1:])
			if err != nil {
				return "", 0, p.Topic, false
			}
			seq, err := strconv.ParseUint(v.Get("seq"), 10, 64)
			return v.Get("device"), seq, p.Topic[:i+1] + v.Get("topic"), err == nil
		}
	}
	return userPropsParse
}

func unwrapTopicSuffix(topic string) (dev string, seq uint64, rest string, err error) {
	i := strings.LastIndexByte(topic, '/')
	j := strings.LastIndexByte(topic[:max(i, 0)], '/')
	if i < 0 || j < 0 {
		return "", 0, topic, strconv.ErrSyntax
	}
	seq, err = strconv.ParseUint(topic[i+1:], 10, 64)
	return topic[j+1 : i], seq, topic[:j], err
}

func unwrapJSON(payload []byte) (dev string, seq uint64, inner []byte, err error) {
	var e struct {
		Device  string          `json:"device"`
		Seq     uint64          `json:"seq"`
		Payload json.RawMessage `json:"payload"`
		B64     string          `json:"payload_base64"`
	}
	if err := json.Unmarshal(payload, &e); err != nil {
		return "", 0, nil, err
	}
	inner = e.Payload
	if e.B64 != "" || inner == nil {
		inner, err = base64.StdEncoding.DecodeString(e.B64)
	}
	return e.Device, e.Seq, inner, err
}

func TestWrapEnvelopes(t *testing.T) {
	r := Route{Name: "t", Topic: "building/#", Direction: Out, LocalPrefix: "site/", RemotePrefix: "devices/gw-1/messages/events/"}
	m := store.Message{Topic: "site/building/f1/temp", Device: "temp-01", Seq: 42}
	for _, tc := range []struct {
		name        string
		env         Envelope
		payload     string
		wantTopic   string
		wantPayload string
	}{
		{"user properties leave both", EnvelopeUserProperties, "21.5", "R", "21.5"},
		{"none leaves both", EnvelopeNone, "21.5", "R", "21.5"},
		{"topic suffix", EnvelopeTopicSuffix, "21.5", "R/temp-01/42", "21.5"},
		{"json with a JSON payload", EnvelopeJSON, `{"t":21.5}`, "R", `{"device":"temp-01","seq":42,"payload":{"t":21.5}}`},
		{"json with a binary payload", EnvelopeJSON, "\x00\xff", "R", `{"device":"temp-01","seq":42,"payload_base64":"AP8="}`},
		{"property bag", EnvelopePropertyBag, "21.5", "devices/gw-1/messages/events/device=temp-01&seq=42&topic=building%2Ff1%2Ftemp", "21.5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m.Payload = []byte(tc.payload)
			topic, payload := wrap(tc.env, UserProps{}, r, "R", m)
			if topic != tc.wantTopic || string(payload) != tc.wantPayload {
				t.Errorf("got %q %q; want %q %q", topic, payload, tc.wantTopic, tc.wantPayload)
			}
		})
	}
	// Round trips through the cloud-side readers.
	m.Payload = []byte("\x00binary")
	topic, payload := wrap(EnvelopeJSON, UserProps{}, r, "R", m)
	if dev, seq, inner, err := unwrapJSON(payload); err != nil || dev != "temp-01" || seq != 42 || string(inner) != "\x00binary" || topic != "R" {
		t.Errorf("json round trip: got %q %d %q %v; want temp-01 42 the payload", dev, seq, inner, err)
	}
	topic, _ = wrap(EnvelopeTopicSuffix, UserProps{}, r, "sites/x/temp", m)
	if dev, seq, rest, err := unwrapTopicSuffix(topic); err != nil || dev != "temp-01" || seq != 42 || rest != "sites/x/temp" {
		t.Errorf("topic suffix round trip: got %q %d %q %v", dev, seq, rest, err)
	}
}

func TestEnvelopeKeysFollowUserProps(t *testing.T) {
	r := Route{Name: "t", Topic: "#", Direction: Out}
	m := store.Message{Topic: "a", Device: "d", Seq: 7, Payload: []byte("1")}
	_, p := wrap(EnvelopeJSON, UserProps{DeviceKey: "thing", SeqKey: "n"}, r, "a", m)
	if want := `{"thing":"d","n":7,"payload":1}`; string(p) != want {
		t.Errorf("got %s; want %s", p, want)
	}
}
