package shadow_test

import (
	"strings"
	"testing"

	"github.com/edgegw/edgegw/gateway/authz"
	"github.com/edgegw/edgegw/gateway/shadow"
)

// TestParseTopic covers every topic of docMQTT, for classic and named shadows,
// and the near misses.
func TestParseTopic(t *testing.T) {
	tests := []struct {
		topic string
		want  shadow.Topic
		ok    bool
	}{
		{"$aws/things/lamp/shadow/get", shadow.Topic{Thing: "lamp", Op: shadow.OpGet, Kind: shadow.KindRequest}, true},
		{"$aws/things/lamp/shadow/get/accepted", shadow.Topic{Thing: "lamp", Op: shadow.OpGet, Kind: shadow.KindAccepted}, true},
		{"$aws/things/lamp/shadow/get/rejected", shadow.Topic{Thing: "lamp", Op: shadow.OpGet, Kind: shadow.KindRejected}, true},
		{"$aws/things/lamp/shadow/update", shadow.Topic{Thing: "lamp", Op: shadow.OpUpdate, Kind: shadow.KindRequest}, true},
		{"$aws/things/lamp/shadow/update/accepted", shadow.Topic{Thing: "lamp", Op: shadow.OpUpdate, Kind: shadow.KindAccepted}, true},
		{"$aws/things/lamp/shadow/update/rejected", shadow.Topic{Thing: "lamp", Op: shadow.OpUpdate, Kind: shadow.KindRejected}, true},
		{"$aws/things/lamp/shadow/update/delta", shadow.Topic{Thing: "lamp", Op: shadow.OpUpdate, Kind: shadow.KindDelta}, true},
		{"$aws/things/lamp/shadow/update/documents", shadow.Topic{Thing: "lamp", Op: shadow.OpUpdate, Kind: shadow.KindDocuments}, true},
		{"$aws/things/lamp/shadow/delete", shadow.Topic{Thing: "lamp", Op: shadow.OpDelete, Kind: shadow.KindRequest}, true},
		{"$aws/things/lamp/shadow/delete/accepted", shadow.Topic{Thing: "lamp", Op: shadow.OpDelete, Kind: shadow.KindAccepted}, true},
		{"$aws/things/lamp/shadow/delete/rejected", shadow.Topic{Thing: "lamp", Op: shadow.OpDelete, Kind: shadow.KindRejected}, true},
		{"$aws/things/mySimulatedThing/shadow/name/simShadow1/update", shadow.Topic{Thing: "mySimulatedThing", Shadow: "simShadow1", Op: shadow.OpUpdate}, true},
		{"$aws/things/a:b_c-9/shadow/name/$pkg:x_-/update/documents", shadow.Topic{Thing: "a:b_c-9", Shadow: "$pkg:x_-", Op: shadow.OpUpdate, Kind: shadow.KindDocuments}, true},
		// A named shadow called "name" and one called like an operation.
		{"$aws/things/lamp/shadow/name/name/get", shadow.Topic{Thing: "lamp", Shadow: "name", Op: shadow.OpGet}, true},
		{"$aws/things/lamp/shadow/name/update/delete", shadow.Topic{Thing: "lamp", Shadow: "update", Op: shadow.OpDelete}, true},

		{"$aws/things/lamp/shadow/get/delta", shadow.Topic{}, false},
		{"$aws/things/lamp/shadow/delete/documents", shadow.Topic{}, false},
		{"$aws/things/lamp/shadow/update/accepted/x", shadow.Topic{}, false},
		{"$aws/things/lamp/shadow/update/", shadow.Topic{}, false},
		{"$aws/things/lamp/shadow/list", shadow.Topic{}, false},
		{"$aws/things/lamp/shadow", shadow.Topic{}, false},
		{"$aws/things/lamp/shadow/name/update", shadow.Topic{}, false},
		{"$aws/things/lamp/shadow/name//update", shadow.Topic{}, false},
		{"$aws/things//shadow/update", shadow.Topic{}, false},
		{"$aws/things/+/shadow/update", shadow.Topic{}, false},
		{"$aws/things/lamp/shadow/name/#/update", shadow.Topic{}, false},
		{"$aws/things/la$mp/shadow/update", shadow.Topic{}, false},
		{"$aws/things/" + strings.Repeat("t", 129) + "/shadow/update", shadow.Topic{}, false},
		{"$aws/things/lamp/shadow/name/" + strings.Repeat("s", 65) + "/update", shadow.Topic{}, false},
		{"$AWS/things/lamp/shadow/update", shadow.Topic{}, false},
		{"$aws/things/lamp/Shadow/update", shadow.Topic{}, false},
		{"$aws/things/lamp/shadow/Update", shadow.Topic{}, false},
		{"things/lamp/shadow/update", shadow.Topic{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.topic, func(t *testing.T) {
			got, ok := shadow.ParseTopic(tt.topic)
			if ok != tt.ok || got != tt.want {
				t.Fatalf("ParseTopic = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
			if ok {
				if s := got.String(); s != tt.topic {
					t.Fatalf("Topic.String() = %q; want %q", s, tt.topic)
				}
			}
		})
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		topic         string
		thing, shadow string
		op            shadow.Op
		ok            bool
	}{
		{"$aws/things/lamp/shadow/update", "lamp", "", shadow.OpUpdate, true},
		{"$aws/things/lamp/shadow/name/cfg/get", "lamp", "cfg", shadow.OpGet, true},
		{"$aws/things/lamp/shadow/name/cfg/delete", "lamp", "cfg", shadow.OpDelete, true},
		{"$aws/things/lamp/shadow/update/accepted", "", "", 0, false},
		{"$aws/things/lamp/shadow/name/cfg/get/rejected", "", "", 0, false},
		{"building/7/temp", "", "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.topic, func(t *testing.T) {
			thing, name, op, ok := shadow.Match(tt.topic)
			if thing != tt.thing || name != tt.shadow || op != tt.op || ok != tt.ok {
				t.Fatalf("Match = %q, %q, %v, %v; want %q, %q, %v, %v", thing, name, op, ok, tt.thing, tt.shadow, tt.op, tt.ok)
			}
		})
	}
}

// TestNames checks the name rules of docAPINames.
func TestNames(t *testing.T) {
	tests := []struct {
		name         string
		thing, named bool
	}{
		{"lamp", true, true},
		{"A-z_0:9", true, true},
		{"$package", false, true},
		{"", false, false},
		{strings.Repeat("x", 64), true, true},
		{strings.Repeat("x", 65), true, false},
		{strings.Repeat("x", 128), true, false},
		{strings.Repeat("x", 129), false, false},
		{"a/b", false, false},
		{"a+b", false, false},
		{"a#", false, false},
		{"a b", false, false},
		{"é", false, false},
	}
	for _, tt := range tests {
		if got := authz.ValidThingName(tt.name); got != tt.thing {
			t.Errorf("ValidThingName(%q) = %v; want %v", tt.name, got, tt.thing)
		}
		if got := shadow.ValidShadowName(tt.name); got != tt.named {
			t.Errorf("ValidShadowName(%q) = %v; want %v", tt.name, got, tt.named)
		}
	}
}

// TestPermissionFor checks the resources of AWS IoT Core's action resources
// table: thing/THING, and thing/THING/SHADOW for a named shadow.
func TestPermissionFor(t *testing.T) {
	tests := []struct {
		op     shadow.Op
		shadow string
		want   shadow.Permission
	}{
		{shadow.OpGet, "", shadow.Permission{Action: "iot:GetThingShadow", Resource: "thing/lamp"}},
		{shadow.OpUpdate, "", shadow.Permission{Action: "iot:UpdateThingShadow", Resource: "thing/lamp"}},
		{shadow.OpDelete, "", shadow.Permission{Action: "iot:DeleteThingShadow", Resource: "thing/lamp"}},
		{shadow.OpUpdate, "cfg", shadow.Permission{Action: "iot:UpdateThingShadow", Resource: "thing/lamp/cfg"}},
	}
	for _, tt := range tests {
		if got := shadow.PermissionFor(tt.op, "lamp", tt.shadow); got != tt.want {
			t.Errorf("PermissionFor(%v, lamp, %q) = %+v; want %+v", tt.op, tt.shadow, got, tt.want)
		}
	}
}
