package bridge

import (
	"fmt"
	"strings"
	"time"
)

// Profile names the cloud a bridge talks to. A profile sets defaults the
// cloud needs (protocol, ALPN, user name, envelope, message size, publish
// rate) where the config left them empty, and CheckRoutes refuses routes
// that cloud would refuse, naming its rule. The limits and their sources are
// listed in the package doc.
type Profile string

// Profiles.
const (
	ProfileGeneric     Profile = "generic"       // any MQTT broker: no extra defaults or checks
	ProfileAWSIoTCore  Profile = "aws-iot-core"  // AWS IoT Core's device data endpoint
	ProfileAzureIoTHub Profile = "azure-iot-hub" // Azure IoT Hub's MQTT device endpoint
)

// ParseProfile accepts "generic", "aws-iot-core" and "azure-iot-hub"; ""
// is generic.
func ParseProfile(s string) (Profile, error) {
	switch p := Profile(s); p {
	case "", ProfileGeneric:
		return ProfileGeneric, nil
	case ProfileAWSIoTCore, ProfileAzureIoTHub:
		return p, nil
	}
	return "", fmt.Errorf("profile %q: want generic, aws-iot-core or azure-iot-hub", s)
}

// The clouds' rules, quoted in errors so an operator sees whose rule a route
// breaks. Sources: see the package doc.
const (
	AWSMaxPayload        = 128 * 1024 // bytes of PUBLISH payload
	AWSMaxTopicBytes     = 256
	AWSMaxTopicSlashes   = 7
	AWSMaxPublishRate    = 100 // PUBLISH requests per second per connection
	AWSMaxClientIDBytes  = 128
	AWSMaxSubsPerConn    = 50
	AWSALPN              = "x-amzn-mqtt-ca"
	AzureMaxPayload      = 256 * 1024
	AzureMaxKeepAlive    = 1177 * time.Second
	AzureAPIVersion      = "2021-04-12"
	awsPaceRate          = 90 // the profile's default MaxRate: under the limit, with room for retries
	ruleAWSSlashes       = "AWS IoT Core allows at most 7 forward slashes in a topic or filter (a leading $aws/rules/<rule>/ does not count)"
	ruleAWSReserved      = "AWS IoT Core reserves topics starting with '$'; only its own $aws/... topics may be used"
	ruleAWSTopicBytes    = "AWS IoT Core allows topics of at most 256 bytes"
	ruleAWSPayload       = "AWS IoT Core allows a message payload of at most 128 KB"
	ruleAWSRate          = "AWS IoT Core allows at most 100 publishes per second per connection"
	ruleAWSClientID      = "AWS IoT Core allows a client ID of at most 128 bytes that does not start with '$'"
	ruleAWSSubs          = "AWS IoT Core allows at most 50 subscriptions per connection"
	ruleAzureEvents      = "Azure IoT Hub accepts device-to-cloud messages only on devices/{deviceId}/messages/events/ (with a property bag)"
	ruleAzureDevicebound = "Azure IoT Hub delivers cloud-to-device messages only on the subscription devices/{deviceId}/messages/devicebound/#"
	ruleAzureProtocol    = "Azure IoT Hub's MQTT endpoint speaks MQTT 3.1.1"
	ruleAzurePayload     = "Azure IoT Hub allows device-to-cloud messages of at most 256 KB"
	ruleAzureKeepAlive   = "Azure IoT Hub allows a keep-alive of at most 1177 seconds"
	ruleAzureTLS         = "Azure IoT Hub accepts only TLS connections (mqtts://, port 8883)"
)

// RuleError is a setting or route a cloud would refuse.
type RuleError struct {
	Route string // the route's name; "" for a bridge setting
	What  string // what is wrong, with the value
	Rule  string // the cloud's rule
}

func (e *RuleError) Error() string {
	if e.Route != "" {
		return fmt.Sprintf("route %q: %s: %s", e.Route, e.What, e.Rule)
	}
	return e.What + ": " + e.Rule
}

// applyProfile fills what the profile decides and the config left empty.
// Upstreams must already be a private copy.
func (c *Config) applyProfile() {
	switch c.Profile {
	case ProfileAWSIoTCore:
		if c.Protocol == 0 {
			c.Protocol = MQTT5
		}
		if c.MaxPayload == 0 {
			c.MaxPayload = AWSMaxPayload
		}
		if c.MaxRate == 0 {
			c.MaxRate = awsPaceRate
		}
		// Port 443 carries MQTT with a client certificate only when the
		// TLS ClientHello asks for ALPN x-amzn-mqtt-ca.
		for i := range c.Upstreams {
			u := &c.Upstreams[i]
			if u.URL != nil && isTLSScheme(u.URL.Scheme) && u.URL.Port() == "443" && len(u.ALPN) == 0 && len(c.ALPN) == 0 {
				u.ALPN = []string{AWSALPN}
			}
		}
	case ProfileAzureIoTHub:
		if c.Protocol == 0 {
			c.Protocol = MQTT311
		}
		if c.Envelope == "" {
			c.Envelope = EnvelopePropertyBag
		}
		if c.MaxPayload == 0 {
			c.MaxPayload = AzureMaxPayload
		}
		if c.Username == "" && len(c.Upstreams) > 0 && c.Upstreams[0].URL != nil {
			c.Username = AzureUsername(c.Upstreams[0].URL.Hostname(), c.ClientID)
		}
	}
}

// AzureUsername is the MQTT user name Azure IoT Hub expects from a device:
// {iothub-hostname}/{deviceId}/?api-version=2021-04-12.
func AzureUsername(hubHost, deviceID string) string {
	return hubHost + "/" + deviceID + "/?api-version=" + AzureAPIVersion
}

// checkProfile reports bridge settings the profile's cloud would refuse
// (after defaults).
func (c *Config) checkProfile() []error {
	var errs []error
	switch c.Profile {
	case ProfileAWSIoTCore:
		if len(c.ClientID) > AWSMaxClientIDBytes || strings.HasPrefix(c.ClientID, "$") {
			errs = append(errs, &RuleError{What: fmt.Sprintf("client_id %q", c.ClientID), Rule: ruleAWSClientID})
		}
		if c.MaxRate > AWSMaxPublishRate {
			errs = append(errs, &RuleError{What: fmt.Sprintf("max_rate %v", c.MaxRate), Rule: ruleAWSRate})
		}
		if c.DrainRate > AWSMaxPublishRate {
			errs = append(errs, &RuleError{What: fmt.Sprintf("drain_rate %v", c.DrainRate), Rule: ruleAWSRate})
		}
		if c.MaxPayload > AWSMaxPayload {
			errs = append(errs, &RuleError{What: fmt.Sprintf("max_payload %d", c.MaxPayload), Rule: ruleAWSPayload})
		}
	case ProfileAzureIoTHub:
		if c.Protocol != MQTT311 {
			errs = append(errs, &RuleError{What: "protocol " + c.Protocol.String(), Rule: ruleAzureProtocol})
		}
		if c.Envelope != EnvelopePropertyBag {
			errs = append(errs, &RuleError{What: fmt.Sprintf("envelope %q (want property-bag)", c.Envelope), Rule: ruleAzureEvents})
		}
		if c.KeepAlive > AzureMaxKeepAlive {
			errs = append(errs, &RuleError{What: fmt.Sprintf("keepalive %v", c.KeepAlive), Rule: ruleAzureKeepAlive})
		}
		if c.MaxPayload > AzureMaxPayload {
			errs = append(errs, &RuleError{What: fmt.Sprintf("max_payload %d", c.MaxPayload), Rule: ruleAzurePayload})
		}
		for i, u := range c.Upstreams {
			if u.URL != nil && !isTLSScheme(u.URL.Scheme) {
				errs = append(errs, &RuleError{What: fmt.Sprintf("upstreams[%d] %s", i, u.URL.Redacted()), Rule: ruleAzureTLS})
			}
		}
	}
	return errs
}

// CheckRoutes returns, for a bridge of profile p whose client ID is
// clientID (Azure: the device ID), an error for every route the cloud would
// refuse, each a *RuleError naming the route and the cloud's rule. Generic
// checks nothing. Routes ending in '#' are checked on their fixed part; the
// bridge checks each message's actual topic and size before sending and
// dead-letters what the cloud would refuse, with the same rule as reason.
// envelope is the bridge's envelope (topic-suffix adds two levels).
func CheckRoutes(p Profile, clientID string, envelope Envelope, routes []Route) []error {
	var errs []error
	add := func(r Route, what, rule string) {
		name := r.Name
		if name == "" {
			name = r.Direction.String() + ":" + r.Topic
		}
		errs = append(errs, &RuleError{Route: name, What: what, Rule: rule})
	}
	switch p {
	case ProfileAWSIoTCore:
		subs := 0
		for _, r := range routes {
			f := r.RemoteFilter()
			extra := 0
			if r.Direction.out() && envelope == EnvelopeTopicSuffix {
				extra = 2
			}
			if n := awsSlashes(fixedPart(f)) + extra; n > AWSMaxTopicSlashes {
				add(r, fmt.Sprintf("remote topic %q has %d slashes", f+strings.Repeat("/+", extra), n), ruleAWSSlashes)
			}
			if strings.HasPrefix(f, "$") && !strings.HasPrefix(f, "$aws/") {
				add(r, fmt.Sprintf("remote topic %q", f), ruleAWSReserved)
			}
			if len(f) > AWSMaxTopicBytes {
				add(r, fmt.Sprintf("remote topic of %d bytes", len(f)), ruleAWSTopicBytes)
			}
			if r.Direction.in() {
				subs++
			}
		}
		if subs > AWSMaxSubsPerConn {
			errs = append(errs, &RuleError{What: fmt.Sprintf("%d in routes (one subscription each)", subs), Rule: ruleAWSSubs})
		}
	case ProfileAzureIoTHub:
		events := "devices/" + clientID + "/messages/events/"
		devicebound := "devices/" + clientID + "/messages/devicebound/#"
		for _, r := range routes {
			if r.Direction == Both {
				add(r, "direction both", ruleAzureEvents+"; "+ruleAzureDevicebound+": use one out and one in route")
				continue
			}
			if r.Direction.out() && r.RemotePrefix != events {
				add(r, fmt.Sprintf("remote_prefix %q (want %q)", r.RemotePrefix, events), ruleAzureEvents)
			}
			if r.Direction.in() && r.RemoteFilter() != devicebound {
				add(r, fmt.Sprintf("remote filter %q (want %q)", r.RemoteFilter(), devicebound), ruleAzureDevicebound)
			}
		}
	}
	return errs
}

// fixedPart is a filter up to (not including) a trailing "/#" or "#".
func fixedPart(f string) string {
	switch {
	case f == "#":
		return ""
	case strings.HasSuffix(f, "/#"):
		return f[:len(f)-2]
	}
	return f
}

// awsSlashes counts the slashes AWS counts: a leading $aws/rules/<rule>/
// (Basic Ingest) is exempt.
func awsSlashes(topic string) int {
	if rest, ok := strings.CutPrefix(topic, "$aws/rules/"); ok {
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			topic = rest[i+1:]
		} else {
			topic = ""
		}
	}
	return strings.Count(topic, "/")
}

// messageProblem is the cloud rule an actual upstream message breaks, or "".
// It runs per message before the PUBLISH is written (routes with '#' can
// produce any depth).
// checksTopic says whether messageProblem looks at the topic (it always
// looks at the payload's size).
func (c *Config) checksTopic() bool { return c.Profile == ProfileAWSIoTCore }

func (c *Config) messageProblem(topic string, payload int) string {
	if c.MaxPayload > 0 && payload > c.MaxPayload {
		switch c.Profile {
		case ProfileAWSIoTCore:
			return fmt.Sprintf("payload of %d bytes: %s", payload, ruleAWSPayload)
		case ProfileAzureIoTHub:
			return fmt.Sprintf("payload of %d bytes: %s", payload, ruleAzurePayload)
		}
		return fmt.Sprintf("payload of %d bytes exceeds max_payload %d", payload, c.MaxPayload)
	}
	if c.Profile == ProfileAWSIoTCore {
		if n := awsSlashes(topic); n > AWSMaxTopicSlashes {
			return fmt.Sprintf("topic with %d slashes: %s", n, ruleAWSSlashes)
		}
		if len(topic) > AWSMaxTopicBytes {
			return fmt.Sprintf("topic of %d bytes: %s", len(topic), ruleAWSTopicBytes)
		}
		if strings.HasPrefix(topic, "$") && !strings.HasPrefix(topic, "$aws/") {
			return ruleAWSReserved
		}
	}
	return ""
}
