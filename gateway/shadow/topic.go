package shadow

import (
	"fmt"
	"strings"

	"github.com/edgegw/edgegw/gateway/authz"
)

// Op is a Device Shadow operation.
type Op uint8

// The three operations a client requests by publishing to ShadowTopicPrefix/OP.
const (
	OpGet Op = iota + 1
	OpUpdate
	OpDelete
)

func (o Op) String() string {
	switch o {
	case OpGet:
		return "get"
	case OpUpdate:
		return "update"
	case OpDelete:
		return "delete"
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// Kind is what a shadow topic carries: a request, or one of the responses the
// service publishes.
type Kind uint8

// Topic kinds: KindRequest is ShadowTopicPrefix/OP itself; the rest are its
// sub-topics (device-shadow-mqtt).
const (
	KindRequest Kind = iota
	KindAccepted
	KindRejected
	KindDelta     // update/delta
	KindDocuments // update/documents
)

var kindNames = [...]string{"", "accepted", "rejected", "delta", "documents"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		if k == KindRequest {
			return "request"
		}
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Topic is one parsed shadow topic. Shadow is "" for the classic (unnamed) shadow.
type Topic struct {
	Thing  string
	Shadow string
	Op     Op
	Kind   Kind
}

// String builds the topic:
// $aws/things/THING/shadow[/name/SHADOW]/OP[/KIND].
func (t Topic) String() string {
	var b strings.Builder
	b.Grow(len("$aws/things//shadow/name//update/documents") + len(t.Thing) + len(t.Shadow))
	b.WriteString("$aws/things/")
	b.WriteString(t.Thing)
	b.WriteString("/shadow/")
	if t.Shadow != "" {
		b.WriteString("name/")
		b.WriteString(t.Shadow)
		b.WriteByte('/')
	}
	b.WriteString(t.Op.String())
	if t.Kind != KindRequest {
		b.WriteByte('/')
		b.WriteString(kindNames[t.Kind])
	}
	return b.String()
}

// with returns the same shadow's topic for another operation and kind.
func (t Topic) with(op Op, k Kind) Topic {
	t.Op, t.Kind = op, k
	return t
}

// ParseTopic classifies any Device Shadow topic, request or response:
//
//	$aws/things/THING/shadow/{get,update,delete}
//	$aws/things/THING/shadow/{get,delete}/{accepted,rejected}
//	$aws/things/THING/shadow/update/{accepted,rejected,delta,documents}
//	$aws/things/THING/shadow/name/SHADOW/...   (the same, for a named shadow)
//
// THING must be a valid thing name and SHADOW a valid shadow name (see
// authz.ValidThingName and ValidShadowName); anything else is not a shadow topic.
func ParseTopic(topic string) (Topic, bool) {
	rest, ok := strings.CutPrefix(topic, "$aws/things/")
	if !ok {
		return Topic{}, false
	}
	thing, rest, ok := strings.Cut(rest, "/")
	if !ok || !authz.ValidThingName(thing) {
		return Topic{}, false
	}
	rest, ok = strings.CutPrefix(rest, "shadow/")
	if !ok {
		return Topic{}, false
	}
	t := Topic{Thing: thing}
	if r, named := strings.CutPrefix(rest, "name/"); named {
		name, r, ok := strings.Cut(r, "/")
		if !ok || !ValidShadowName(name) {
			return Topic{}, false
		}
		t.Shadow, rest = name, r
	}
	opName, kindName, _ := strings.Cut(rest, "/")
	switch opName {
	case "get":
		t.Op = OpGet
	case "update":
		t.Op = OpUpdate
	case "delete":
		t.Op = OpDelete
	default:
		return Topic{}, false
	}
	switch kindName {
	case "":
		if strings.HasSuffix(rest, "/") {
			return Topic{}, false
		}
		t.Kind = KindRequest
	case "accepted":
		t.Kind = KindAccepted
	case "rejected":
		t.Kind = KindRejected
	case "delta":
		t.Kind = KindDelta
	case "documents":
		t.Kind = KindDocuments
	default:
		return Topic{}, false
	}
	if (t.Kind == KindDelta || t.Kind == KindDocuments) && t.Op != OpUpdate {
		return Topic{}, false
	}
	return t, true
}

// Match reports whether topic is a shadow request the service answers
// (ShadowTopicPrefix/get, /update or /delete) and for which thing, shadow ("" for
// the classic shadow) and operation. Response topics do not match: a client
// publishing to .../update/accepted is an ordinary publish.
func Match(topic string) (thing, shadowName string, op Op, ok bool) {
	t, ok := ParseTopic(topic)
	if !ok || t.Kind != KindRequest {
		return "", "", 0, false
	}
	return t.Thing, t.Shadow, t.Op, true
}

// ValidShadowName reports whether s is a named shadow's name: 1 to 64 characters
// of [$a-zA-Z0-9:_-] (the GetThingShadow API reference, shadowName).
func ValidShadowName(s string) bool {
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == ':' || c == '_' || c == '-' || c == '$'
		if !ok {
			return false
		}
	}
	return true
}

// Permission is the AWS IoT policy action and resource a shadow request needs,
// for the caller's authorizer: the broker evaluates it against the client's
// policies before it calls Handle. Resource is relative: "thing/THING" for the
// classic shadow, "thing/THING/SHADOW" for a named one (AWS IoT Core action
// resources: https://docs.aws.amazon.com/iot/latest/developerguide/iot-action-resources.html);
// the authorizer adds the arn:aws:iot:REGION:ACCOUNT: prefix if it matches
// full ARNs.
//
// AWS checks these actions for the REST API and the console; over MQTT it checks
// iot:Publish on the request topic and iot:Subscribe/iot:Receive on the response
// topics (device-shadow-mqtt, "Example policy"). edgegw's broker checks both.
type Permission struct {
	Action   string // iot:GetThingShadow, iot:UpdateThingShadow or iot:DeleteThingShadow
	Resource string // thing/THING or thing/THING/SHADOW
}

// PermissionFor returns what a request of op on a shadow needs; shadowName is
// "" for the classic shadow.
func PermissionFor(op Op, thing, shadowName string) Permission {
	var a string
	switch op {
	case OpGet:
		a = "iot:GetThingShadow"
	case OpUpdate:
		a = "iot:UpdateThingShadow"
	case OpDelete:
		a = "iot:DeleteThingShadow"
	}
	r := "thing/" + thing
	if shadowName != "" {
		r += "/" + shadowName
	}
	return Permission{Action: a, Resource: r}
}
