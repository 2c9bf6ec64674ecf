package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// rulesBase is a valid config; tests append `rules:` or listeners to it.
const rulesBase = `version: 1
site: s
listeners:
  - name: local
    address: "127.0.0.1:1883"
%s
devices: devices.yaml
policies: policies/
bridge:
  upstreams: [{url: "mqtts://up.example:8883"}]
  client_id: gw
  tls: {cert: gw.crt, key: "file:gw.key"}
  routes:
    - {name: cloud, topic: "rules/#", direction: out}
    - {name: down, topic: "cmd/#", direction: in}
`

func TestRulesConfig(t *testing.T) {
	tests := []struct {
		name     string
		listener string // YAML under the listener
		tail     string // YAML after the base
		want     []string
	}{
		{name: "valid", tail: `rules:
  - name: r
    sql: "SELECT * FROM 'a/#'"
    identity: engine
    actions:
      - republish: {topic: "alarms/x", qos: 1, headers: {content_type: "application/json", user_properties: [{key: k, value: v}]}}
      - forward: {route: cloud, topic: "rules/${topic()}"}
    error_action: {republish: {topic: "rules/errors"}}
`},
		{name: "unknown rule key", tail: `rules:
  - name: r
    sql: "SELECT * FROM 'a/#'"
    action: []
`, want: []string{`:19: rules[0]: unknown key "action" (did you mean "actions"?)`}},
		{name: "forward into an unknown route", tail: `rules:
  - name: r
    sql: "SELECT * FROM 'a/#'"
    actions: [{forward: {route: clod}}]
`, want: []string{`:19: rules[0].actions[0].forward.route: "clod": no outbound bridge route has this name; outbound routes: cloud`}},
		{name: "forward into an inbound route", tail: `rules:
  - name: r
    sql: "SELECT * FROM 'a/#'"
    actions: [{forward: {route: down}}]
`, want: []string{`rules[0].actions[0].forward.route: "down": no outbound bridge route`}},
		{name: "republish without identity", tail: `rules:
  - name: r
    sql: "SELECT * FROM 'a/#'"
    actions: [{republish: {topic: x}}]
`, want: []string{`:17: rules[0].identity: required with a republish action`}},
		{name: "qos not a number", tail: `rules:
  - name: r
    sql: "SELECT * FROM 'a/#'"
    identity: e
    actions: [{republish: {topic: x, qos: one}}]
`, want: []string{`:20: rules[0].actions[0].republish.qos: want a whole number, got "one"`}},
		{name: "authorizer valid", listener: `    authorizer: {command: [./auth.sh, -v], timeout: 2s, rate: 0.5, burst: 2, max_concurrent: 3}`},
		{name: "authorizer url and command", listener: `    authorizer: {url: "http://127.0.0.1:9000/a", command: [x]}`,
			want: []string{`:6: listeners[0].authorizer.url: give url or command, not both`}},
		{name: "authorizer neither", listener: `    authorizer: {timeout: 2s}`,
			want: []string{`:6: listeners[0].authorizer: give url`}},
		{name: "authorizer timeout too long", listener: `    authorizer: {command: [x], timeout: 2m}`,
			want: []string{`:6: listeners[0].authorizer.timeout: 2m0s: want more than 0 and at most 1m`}},
		{name: "authorizer rate not a number", listener: `    authorizer: {command: [x], rate: fast}`,
			want: []string{`:6: listeners[0].authorizer.rate: "fast": want a number`}},
		{name: "authorizer unknown key", listener: `    authorizer: {command: [x], timout: 1s}`,
			want: []string{`:6: listeners[0].authorizer: unknown key "timout" (did you mean "timeout"?)`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(rulesBase, "%s", tc.listener, 1) + tc.tail
			c, err := Parse("edgegw.yaml", "/etc/edgegw", []byte(src))
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("got %v; want no error", err)
				}
				if a := c.Listeners[0].Authorizer; a != nil {
					if got, want := a.Command[0], filepath.Join("/etc/edgegw", "auth.sh"); got != want {
						t.Errorf("command[0] = %q; want %q (relative to the config directory)", got, want)
					}
					if a.Timeout.D() != 2*time.Second || a.Rate != 0.5 || a.Burst != 2 || a.MaxConcurrent != 3 {
						t.Errorf("authorizer = %+v; want timeout 2s, rate 0.5, burst 2, max_concurrent 3", a)
					}
				}
				return
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("got %v; want a *config.Error", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got errors:\n%v\nwant one containing %q", err, w)
				}
			}
		})
	}
}
