package bridge

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"

	"github.com/edgegw/edgegw/store"
)

// Envelope says how each upstream message carries the publishing device and
// the gateway's sequence number, which the cloud needs to drop the
// duplicates at-least-once delivery can make. The names used are
// UserProps.DeviceKey and UserProps.SeqKey ("device" and "seq" when empty).
type Envelope string

// Envelopes.
const (
	// EnvelopeUserProperties: MQTT 5 user properties device=<thing>,
	// seq=<decimal>; topic and payload unchanged. MQTT 5 only; the default
	// there.
	EnvelopeUserProperties Envelope = "user-properties"
	// EnvelopeTopicSuffix: two topic levels are appended,
	// <remote topic>/<device>/<seq>. The cloud subscribes with
	// <filter>/+/+ and reads them back from the topic.
	EnvelopeTopicSuffix Envelope = "topic-suffix"
	// EnvelopeJSON: the payload is wrapped as
	// {"device":"<thing>","seq":<n>,"payload":<the payload>} when the
	// payload is valid JSON, else {"device":..,"seq":..,"payload_base64":"<base64>"}.
	EnvelopeJSON Envelope = "json"
	// EnvelopePropertyBag: Azure IoT Hub's form. The remote topic is the
	// route's remote_prefix (devices/{deviceId}/messages/events/) followed by
	// a URL-encoded property bag device=<thing>&seq=<n>&topic=<local topic
	// without local_prefix>; IoT Hub turns the bag into application
	// properties of the message.
	EnvelopePropertyBag Envelope = "property-bag"
	// EnvelopeNone: device and sequence are not sent; the cloud cannot tell
	// a resent message from a new one. Config.Warnings says so.
	EnvelopeNone Envelope = "none"
)

// ParseEnvelope accepts the Envelope spellings above.
func ParseEnvelope(s string) (Envelope, error) {
	switch e := Envelope(s); e {
	case EnvelopeUserProperties, EnvelopeTopicSuffix, EnvelopeJSON, EnvelopePropertyBag, EnvelopeNone:
		return e, nil
	}
	return "", fmt.Errorf("envelope %q: want user-properties (MQTT 5 only), topic-suffix, json, property-bag or none", s)
}

func (u UserProps) keys() (dev, seq string) {
	dev, seq = u.DeviceKey, u.SeqKey
	if dev == "" {
		dev = "device"
	}
	if seq == "" {
		seq = "seq"
	}
	return dev, seq
}

// wrap returns the upstream topic and payload of m under envelope e for a
// route r and its already mapped remote topic. User properties and none
// leave both unchanged (user properties are added by appendPublish).
func wrap(e Envelope, keys UserProps, r Route, remote string, m store.Message) (string, []byte) {
	switch e {
	case EnvelopeTopicSuffix:
		return remote + "/" + m.Device + "/" + strconv.FormatUint(m.Seq, 10), m.Payload
	case EnvelopeJSON:
		dk, sk := keys.keys()
		dst := make([]byte, 0, len(m.Payload)+64)
		dst = append(dst, '{')
		dst = appendJSONString(dst, dk)
		dst = append(dst, ':')
		dst = appendJSONString(dst, m.Device)
		dst = append(dst, ',')
		dst = appendJSONString(dst, sk)
		dst = append(dst, ':')
		dst = strconv.AppendUint(dst, m.Seq, 10)
		if json.Valid(m.Payload) {
			dst = append(dst, `,"payload":`...)
			dst = append(dst, m.Payload...)
		} else {
			dst = append(dst, `,"payload_base64":"`...)
			dst = base64.StdEncoding.AppendEncode(dst, m.Payload)
			dst = append(dst, '"')
		}
		return string(remote), append(dst, '}')
	case EnvelopePropertyBag:
		dk, sk := keys.keys()
		v := url.Values{}
		v.Set(dk, m.Device)
		v.Set(sk, strconv.FormatUint(m.Seq, 10))
		v.Set("topic", trimPrefix(m.Topic, r.LocalPrefix))
		return r.RemotePrefix + v.Encode(), m.Payload
	}
	return remote, m.Payload
}

func trimPrefix(s, prefix string) string {
	if len(s) >= len(prefix) && s[:len(prefix)] == prefix {
		return s[len(prefix):]
	}
	return s
}

func appendJSONString(dst []byte, s string) []byte {
	b, _ := json.Marshal(s) // a string always marshals
	return append(dst, b...)
}
