package config

import (
	"strings"
	"testing"
)

// TestListenerThing: `thing` is accepted on a plaintext loopback listener
// and refused, with where and what to do, on a tls listener or when it is
// not a thing name.
func TestListenerThing(t *testing.T) {
	const head = "version: 1\nsite: lab\ndevices: devices.yaml\npolicies: policies/\nlisteners:\n"
	tests := []struct {
		name     string
		listener string
		want     string // "" = valid
	}{
		{"loopback", "  - {name: local, address: \"127.0.0.1:1883\", thing: node-red}\n", ""},
		{"with tls", "  - {name: lan, address: \":8883\", thing: node-red, tls: {ca: ca.pem, cert: s.pem, key: \"file:s.key\"}}\n",
			`6: listeners[0].thing: "node-red": only for a plaintext loopback listener`},
		{"not a thing name", "  - {name: local, address: \"127.0.0.1:1883\", thing: \"node red\"}\n",
			`6: listeners[0].thing: "node red": want a thing name from devices.yaml`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("edgegw.yaml", "/etc/edgegw", []byte(head+tc.listener))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("got %v; want no error", err)
				}
				if got := c.Listeners[0].Thing; got != "node-red" {
					t.Errorf("thing = %q; want node-red", got)
				}
				return
			}
			if err == nil {
				t.Fatalf("got no error; want %q", tc.want)
			}
			found := false
			for _, l := range errLines(t, err) {
				found = found || strings.Contains(l, tc.want)
			}
			if !found {
				t.Errorf("got %v; want a line containing %q", errLines(t, err), tc.want)
			}
		})
	}
}
