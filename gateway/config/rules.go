package config

import (
	"fmt"
	"github.com/edgegw/edgegw/gateway/rules"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Rules and the custom authorizer, as the config file holds them. The rules
// engine (gateway/rules) and the authorizer (gateway/authorizer) own their
// semantics and compile what is written here; this file only decodes the
// schema strictly, resolves paths and checks what needs the rest of the config
// (a forward action names an outbound bridge route). The wiring converts these
// types field for field (config imports no runtime package).
//
//	rules:
//	  - name: hot_rooms
//	    sql: "SELECT temp, topic(2) AS room FROM 'building/+/temp' WHERE temp > 30"
//	    identity: rules-engine          # the thing whose policies authorize republish
//	    actions:
//	      - republish: {topic: "alarms/${topic(2)}", qos: 1}
//	      - forward: {route: cloud}
//	    error_action:
//	      republish: {topic: "rules/errors"}
//
//	listeners:
//	  - name: local
//	    address: "127.0.0.1:1883"
//	    authorizer:
//	      command: [authorizers/check.sh]   # relative to this file's directory
//	      timeout: 5s

// The rules' schema is the rules engine's own (gateway/rules owns its
// fields, defaults and documentation); the config names its types so that
// a rule is written down once.
type (
	Rule             = rules.Config
	RuleAction       = rules.ActionConfig
	RuleRepublish    = rules.RepublishConfig
	RuleHeaders      = rules.HeadersConfig
	RuleUserProperty = rules.UserPropertyConfig
	RuleForward      = rules.ForwardConfig
)

// Authorizer is a listener's `authorizer:` section (see
// gateway/authorizer.Config). Zero limits take the authorizer's defaults.
type Authorizer struct {
	URL           string                `yaml:"url"`
	Command       []string              `yaml:"command"`
	Timeout       Duration              `yaml:"timeout"`
	Rate          Float                 `yaml:"rate"`
	Burst         int                   `yaml:"burst"`
	MaxConcurrent int                   `yaml:"max_concurrent"`
	TokenSigning  *AuthorizerTokenCheck `yaml:"token_signing"`
}

// AuthorizerTokenCheck is authorizer.token_signing.
type AuthorizerTokenCheck struct {
	TokenKeyName string   `yaml:"token_key_name"`
	PublicKeys   []string `yaml:"public_keys"`
}

// Float is a decimal number read from the config (e.g. rate: 0.5).
type Float float64

func (f *Float) decodeScalar(v string) error {
	n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil {
		return fmt.Errorf("%q: want a number, e.g. 20 or 0.5", v)
	}
	*f = Float(n)
	return nil
}

// resolveRulePaths makes the authorizer's relative paths absolute against
// the config directory: a command whose first element contains a slash
// ("authorizers/check.sh", "./check.sh") and the token signing keys. A bare
// command name ("python3") is left to the PATH lookup.
func (c *Config) resolveRulePaths() {
	for i := range c.Listeners {
		a := c.Listeners[i].Authorizer
		if a == nil {
			continue
		}
		if len(a.Command) > 0 && strings.Contains(a.Command[0], "/") && !filepath.IsAbs(a.Command[0]) {
			a.Command[0] = filepath.Join(c.Dir, a.Command[0])
		}
		if a.TokenSigning != nil {
			for j, k := range a.TokenSigning.PublicKeys {
				if k != "" && !filepath.IsAbs(k) {
					a.TokenSigning.PublicKeys[j] = filepath.Join(c.Dir, k)
				}
			}
		}
	}
}

// validateRules checks what the rules need from the rest of the config: a
// forward action must name an outbound bridge route. The SQL, templates and
// names are checked by the rules engine when the wiring compiles them
// (brokerconf.CompileRules), which reports them at the rule's line.
func (c *Config) validateRules(r *report) {
	out := map[string]bool{}
	var names []string
	if c.Bridge != nil {
		for _, rt := range c.Bridge.Routes {
			if rt.Direction == DirectionOut || rt.Direction == DirectionBoth {
				out[rt.ID()] = true
				names = append(names, rt.ID())
			}
		}
	}
	check := func(p string, a *RuleAction) {
		if a == nil || a.Forward == nil || a.Forward.Route == "" {
			return
		}
		if out[a.Forward.Route] {
			return
		}
		if c.Bridge == nil {
			r.add(p+".forward.route", "%q: there is no bridge section, so no route to forward into; add bridge.routes or use republish", a.Forward.Route)
			return
		}
		r.add(p+".forward.route", "%q: no outbound bridge route has this name; outbound routes: %s", a.Forward.Route, strings.Join(names, ", "))
	}
	for i := range c.Rules {
		p := fmt.Sprintf("rules[%d]", i)
		for j := range c.Rules[i].Actions {
			check(fmt.Sprintf("%s.actions[%d]", p, j), &c.Rules[i].Actions[j])
		}
		check(p+".error_action", c.Rules[i].ErrorAction)
		hasRepublish := c.Rules[i].ErrorAction != nil && c.Rules[i].ErrorAction.Republish != nil
		for _, a := range c.Rules[i].Actions {
			hasRepublish = hasRepublish || a.Republish != nil
		}
		if hasRepublish && c.Rules[i].Identity == "" {
			r.add(p+".identity", "required with a republish action: the registry thing whose policies allow the rule to publish, e.g. identity: rules-engine")
		}
	}
	for i, l := range c.Listeners {
		a := l.Authorizer
		if a == nil {
			continue
		}
		p := fmt.Sprintf("listeners[%d].authorizer", i)
		switch {
		case a.URL == "" && len(a.Command) == 0:
			r.add(p, "give url (a local HTTP endpoint, e.g. http://127.0.0.1:9000/authorize) or command (an executable)")
		case a.URL != "" && len(a.Command) > 0:
			r.add(p+".url", "give url or command, not both")
		}
		if a.Timeout < 0 || a.Timeout.D() > time.Minute || a.Timeout == 0 && r.has(p+".timeout") {
			r.add(p+".timeout", "%s: want more than 0 and at most 1m (AWS allows an authorizer 5s)", a.Timeout)
		}
		if a.Rate < 0 || a.Rate == 0 && r.has(p+".rate") {
			r.add(p+".rate", "want calls per second above 0")
		}
		if a.Burst < 0 || a.Burst == 0 && r.has(p+".burst") {
			r.add(p+".burst", "%d: want at least 1", a.Burst)
		}
		if a.MaxConcurrent < 0 || a.MaxConcurrent == 0 && r.has(p+".max_concurrent") {
			r.add(p+".max_concurrent", "%d: want at least 1", a.MaxConcurrent)
		}
	}
}
