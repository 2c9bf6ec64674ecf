package authz

import (
	"strings"
	"testing"
)

func TestValidThingName(t *testing.T) {
	for _, tc := range []struct {
		name, thing string
		want        bool
	}{
		{"letters digits and :_-", "sensor-a_1:b", true},
		{"one character", "a", true},
		{"128 characters", strings.Repeat("a", 128), true},
		{"129 characters", strings.Repeat("a", 129), false},
		{"empty", "", false},
		{"space", "sensor a", false},
		{"slash", "sensors/a", false},
		{"dot", "sensor.a", false},
		{"dollar (the bridge's inline client)", "$edgegw-bridge", false},
		{"non-ASCII", "sensör", false},
		{"wildcard", "sensor*", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ValidThingName(tc.thing); got != tc.want {
				t.Errorf("ValidThingName(%q) = %v; want %v", tc.thing, got, tc.want)
			}
		})
	}
}
