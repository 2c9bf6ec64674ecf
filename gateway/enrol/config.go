package enrol

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Defaults of Config.
const (
	// DefaultTokenTTL is how long a certificateOwnershipToken is good for: one hour, as in
	// AWS IoT ("the certificateOwnershipToken ... expires after one hour", fleet-provision-api).
	DefaultTokenTTL = time.Hour
	// DefaultRenewalGrace is how long the old certificate of a renewal stays valid when the
	// new one is never seen connecting.
	DefaultRenewalGrace = 7 * 24 * time.Hour
	// DefaultHookTimeout bounds a pre-provisioning hook; AWS gives its Lambda 5 seconds.
	DefaultHookTimeout = 5 * time.Second
	// DefaultBurst and DefaultEvery: each certificate may make DefaultBurst requests at once,
	// then one every DefaultEvery (a token bucket per certificate serial).
	DefaultBurst = 5
	DefaultEvery = 10 * time.Second
)

// Config is the enrolment section of the gateway configuration:
//
//	enrolment:
//	  days: 365                 # lifetime of certificates issued by enrolment and renewal
//	  token_ttl: 1h             # certificateOwnershipToken lifetime
//	  renewal_grace: 168h       # old certificate revoked after this even if the new one never connects
//	  rate_limit: {burst: 5, every: 10s}   # per client certificate (token bucket)
//	  templates:
//	    - name: sensors
//	      thing_name: "sensor-${SerialNumber}"
//	      parameters:
//	        - {name: SerialNumber, pattern: "[0-9A-F]{8}"}
//	        - {name: Floor, default: "0"}
//	      thing_type: temperature
//	      attributes: {floor: "${Floor}"}
//	      policies: [temperature]
//	      device_configuration: {reportInterval: "60"}
//	      pre_provisioning_hook: {command: [/usr/local/bin/allow-serial], timeout: 5s}
type Config struct {
	Days         int           `yaml:"days"`
	TokenTTL     time.Duration `yaml:"token_ttl"`
	RenewalGrace time.Duration `yaml:"renewal_grace"`
	RateLimit    RateLimit     `yaml:"rate_limit"`
	Templates    []Template    `yaml:"templates"`
}

// RateLimit is a token bucket per client certificate: Burst requests at once, then one per
// Every.
type RateLimit struct {
	Burst int           `yaml:"burst"`
	Every time.Duration `yaml:"every"`
}

// Template is a provisioning template: the local equivalent of an AWS IoT provisioning
// template's Parameters and its AWS::IoT::Thing resource (ThingName, ThingTypeName,
// AttributePayload), the policies it attaches and its DeviceConfiguration section.
//
// ThingName and attribute values may contain ${Name} references, the equivalent of AWS's
// {"Fn::Join": ["", ["prefix-", {"Ref": "Name"}]]}: Name is one of Parameters or one of the
// built-ins AWS::IoT::Certificate::CommonName and AWS::IoT::Certificate::Id.
type Template struct {
	Name                string            `yaml:"name"`
	Parameters          []Parameter       `yaml:"parameters"`
	ThingName           string            `yaml:"thing_name"`
	ThingType           string            `yaml:"thing_type"`
	Attributes          map[string]string `yaml:"attributes"`
	Policies            []string          `yaml:"policies"`
	DeviceConfiguration map[string]string `yaml:"device_configuration"`
	PreProvisioningHook *Hook             `yaml:"pre_provisioning_hook"`

	thingRE *regexp.Regexp // what a CSR's CN may be before the parameters are known
	params  map[string]*Parameter
}

// Parameter is a template parameter a device may (or, without Default, must) send.
type Parameter struct {
	Name string `yaml:"name"`
	// Pattern is an RE2 expression the whole value must match; default [a-zA-Z0-9:_-]{1,128}
	// (a value that can be part of a thing name).
	Pattern string  `yaml:"pattern"`
	Default *string `yaml:"default"`

	re *regexp.Regexp
}

// Hook is a pre-provisioning hook: a command run before a thing is registered, the local
// equivalent of AWS IoT's pre-provisioning hook Lambda. It gets the Lambda's input JSON on
// stdin ({"claimCertificateId", "certificateId", "certificatePem", "templateArn", "clientId",
// "parameters"}) and must print its output JSON ({"allowProvisioning": bool,
// "parameterOverrides": {...}}) on stdout within Timeout. Anything else (exit status other
// than 0, timeout, bad JSON, allowProvisioning false or missing) refuses the device.
type Hook struct {
	Command []string      `yaml:"command"`
	Timeout time.Duration `yaml:"timeout"`
}

const defaultParamPattern = `[a-zA-Z0-9:_-]{1,128}`

// Built-in template references.
const (
	RefCommonName    = "AWS::IoT::Certificate::CommonName"
	RefCertificateID = "AWS::IoT::Certificate::Id"
)

var (
	refRE       = regexp.MustCompile(`\$\{([^}]*)\}`)
	nameRE      = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,36}$`) // AWS template names: [0-9A-Za-z_-]+, 1-36
	paramNameRE = regexp.MustCompile(`^[a-zA-Z0-9_:.-]{1,128}$`)
)

// Validate checks the section; errors name the key (prefix is the section's path in the
// config, e.g. "enrolment"). It works on a copy: c, and the templates, parameters and hooks
// it shares with its caller's (a parsed config file), are left as they are. New fills the
// defaults into its own copy.
func (c Config) Validate(prefix string) error {
	_, err := c.prepared(prefix)
	return err
}

// Clone returns a deep copy of c: nothing in it is shared with c.
func (c Config) Clone() Config {
	out := c
	out.Templates = make([]Template, len(c.Templates))
	for i, t := range c.Templates {
		t.Parameters = slices.Clone(t.Parameters)
		for j, p := range t.Parameters {
			if p.Default != nil {
				d := *p.Default
				t.Parameters[j].Default = &d
			}
		}
		t.Attributes = maps.Clone(t.Attributes)
		t.Policies = slices.Clone(t.Policies)
		t.DeviceConfiguration = maps.Clone(t.DeviceConfiguration)
		if h := t.PreProvisioningHook; h != nil {
			t.PreProvisioningHook = &Hook{Command: slices.Clone(h.Command), Timeout: h.Timeout}
		}
		t.thingRE, t.params = nil, nil
		out.Templates[i] = t
	}
	if c.Templates == nil {
		out.Templates = nil
	}
	return out
}

// prepared returns a copy of c with the defaults filled and the templates compiled, or what
// is wrong with c.
func (c Config) prepared(prefix string) (Config, error) {
	c = c.Clone()
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", prefix, key, fmt.Sprintf(format, args...)))
	}
	if c.Days < 0 {
		bad("days", "%d: want a number of days > 0 (or leave it out for the default)", c.Days)
	}
	if c.TokenTTL == 0 {
		c.TokenTTL = DefaultTokenTTL
	}
	if c.TokenTTL < time.Second {
		bad("token_ttl", "%s: want at least 1s", c.TokenTTL)
	}
	if c.RenewalGrace == 0 {
		c.RenewalGrace = DefaultRenewalGrace
	}
	if c.RenewalGrace < 0 {
		bad("renewal_grace", "%s: want a positive duration such as 168h", c.RenewalGrace)
	}
	if c.RateLimit.Burst == 0 {
		c.RateLimit.Burst = DefaultBurst
	}
	if c.RateLimit.Every == 0 {
		c.RateLimit.Every = DefaultEvery
	}
	if c.RateLimit.Burst < 0 || c.RateLimit.Every < 0 {
		bad("rate_limit", "burst and every must be positive")
	}
	seen := map[string]bool{}
	for i := range c.Templates {
		t := &c.Templates[i]
		key := fmt.Sprintf("templates[%d]", i)
		if !nameRE.MatchString(t.Name) {
			bad(key+".name", "%q: use 1-36 characters from a-z A-Z 0-9 _ -", t.Name)
		} else if seen[t.Name] {
			bad(key+".name", "%q is defined twice", t.Name)
		}
		seen[t.Name] = true
		if err := t.compile(); err != nil {
			bad(key, "%v", err)
		}
		if h := t.PreProvisioningHook; h != nil {
			if len(h.Command) == 0 || h.Command[0] == "" {
				bad(key+".pre_provisioning_hook.command", "empty: give the program and its arguments as a list")
			}
			if h.Timeout == 0 {
				h.Timeout = DefaultHookTimeout
			}
			if h.Timeout < 0 {
				bad(key+".pre_provisioning_hook.timeout", "%s: want a positive duration", h.Timeout)
			}
		}
	}
	return c, errors.Join(errs...)
}

// compile checks the template's parameters and references and builds the CN pattern.
func (t *Template) compile() error {
	t.params = map[string]*Parameter{}
	for j := range t.Parameters {
		p := &t.Parameters[j]
		if !paramNameRE.MatchString(p.Name) || strings.HasPrefix(p.Name, "AWS::") {
			return fmt.Errorf("parameters[%d].name %q: use 1-128 characters from a-z A-Z 0-9 _ : . - (AWS:: names are built in)", j, p.Name)
		}
		if t.params[p.Name] != nil {
			return fmt.Errorf("parameters[%d].name %q is defined twice", j, p.Name)
		}
		pat := p.Pattern
		if pat == "" {
			pat = defaultParamPattern
		}
		re, err := regexp.Compile(`^(?:` + pat + `)$`)
		if err != nil {
			return fmt.Errorf("parameters[%d].pattern %q: %v", j, p.Pattern, err)
		}
		p.re = re
		if p.Default != nil && !re.MatchString(*p.Default) {
			return fmt.Errorf("parameters[%d].default %q does not match its pattern", j, *p.Default)
		}
		t.params[p.Name] = p
	}
	if t.ThingName == "" {
		return errors.New("thing_name: empty; e.g. \"sensor-${SerialNumber}\" or \"${AWS::IoT::Certificate::CommonName}\"")
	}
	check := func(key, s string) error {
		for _, m := range refRE.FindAllStringSubmatch(s, -1) {
			if m[1] != RefCommonName && m[1] != RefCertificateID && t.params[m[1]] == nil {
				return fmt.Errorf("%s: ${%s} is neither a parameter of this template nor %s or %s", key, m[1], RefCommonName, RefCertificateID)
			}
		}
		return nil
	}
	if err := check("thing_name", t.ThingName); err != nil {
		return err
	}
	for k, v := range t.Attributes {
		if err := check("attributes."+k, v); err != nil {
			return err
		}
	}
	// The CN pattern: literal parts quoted, each reference by its parameter's pattern.
	var b strings.Builder
	b.WriteString("^")
	last := 0
	for _, loc := range refRE.FindAllStringSubmatchIndex(t.ThingName, -1) {
		b.WriteString(regexp.QuoteMeta(t.ThingName[last:loc[0]]))
		name := t.ThingName[loc[2]:loc[3]]
		switch {
		case name == RefCommonName:
			b.WriteString(`.+`)
		case name == RefCertificateID:
			b.WriteString(`[0-9a-f]{64}`)
		default:
			b.WriteString(`(?:` + strings.TrimSuffix(strings.TrimPrefix(t.params[name].re.String(), `^(?:`), `)$`) + `)`)
		}
		last = loc[1]
	}
	b.WriteString(regexp.QuoteMeta(t.ThingName[last:]))
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	if err != nil {
		return fmt.Errorf("thing_name %q: %v", t.ThingName, err)
	}
	t.thingRE = re
	return nil
}

// expand substitutes ${...} references in s.
func expand(s string, params map[string]string) string {
	return refRE.ReplaceAllStringFunc(s, func(m string) string { return params[m[2:len(m)-1]] })
}
