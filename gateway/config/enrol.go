package config

import (
	"path/filepath"
	"strings"

	"github.com/edgegw/edgegw/gateway/enrol"
)

// Enrolment is the enrolment section: sensors enrol and renew their certificates over the
// local broker with AWS IoT's fleet-provisioning MQTT API (gateway/enrol serves it). Without
// it the provisioning topics are ordinary topics.
//
//	enrolment:
//	  pki_dir: pki               # the site CA; default: the directory of the first TLS listener's ca
//	  days: 365                  # lifetime of enrolled and renewed certificates
//	  token_ttl: 1h              # certificateOwnershipToken lifetime
//	  renewal_grace: 7d          # the old certificate is revoked after this even if the new one never connects
//	  rate_limit: {burst: 5, every: 10s}   # per client certificate
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
//
// The schema is enrol.Config's with the config's durations ("7d"); Enrol converts it and
// validate checks it with enrol.Config.Validate, so the rules live in one place.
type Enrolment struct {
	PKIDir       string          `yaml:"pki_dir"`
	Days         int             `yaml:"days"`
	TokenTTL     Duration        `yaml:"token_ttl"`
	RenewalGrace Duration        `yaml:"renewal_grace"`
	RateLimit    EnrolRateLimit  `yaml:"rate_limit"`
	Templates    []EnrolTemplate `yaml:"templates"`
}

// EnrolRateLimit is enrol.RateLimit.
type EnrolRateLimit struct {
	Burst int      `yaml:"burst"`
	Every Duration `yaml:"every"`
}

// EnrolTemplate is enrol.Template (a provisioning template).
type EnrolTemplate struct {
	Name                string            `yaml:"name"`
	Parameters          []EnrolParameter  `yaml:"parameters"`
	ThingName           string            `yaml:"thing_name"`
	ThingType           string            `yaml:"thing_type"`
	Attributes          map[string]string `yaml:"attributes"`
	Policies            []string          `yaml:"policies"`
	DeviceConfiguration map[string]string `yaml:"device_configuration"`
	PreProvisioningHook *EnrolHook        `yaml:"pre_provisioning_hook"`
}

// EnrolParameter is enrol.Parameter.
type EnrolParameter struct {
	Name    string  `yaml:"name"`
	Pattern string  `yaml:"pattern"`
	Default *string `yaml:"default"`
}

// EnrolHook is enrol.Hook: the program gets the pre-provisioning hook's input JSON on stdin.
type EnrolHook struct {
	Command []string `yaml:"command"`
	Timeout Duration `yaml:"timeout"`
}

// Enrol returns the section as the enrolment service's configuration (defaults are filled
// by enrol.Config.Validate, which enrol.New calls).
func (e *Enrolment) Enrol() enrol.Config {
	c := enrol.Config{
		Days: e.Days, TokenTTL: e.TokenTTL.D(), RenewalGrace: e.RenewalGrace.D(),
		RateLimit: enrol.RateLimit{Burst: e.RateLimit.Burst, Every: e.RateLimit.Every.D()},
	}
	for _, t := range e.Templates {
		et := enrol.Template{
			Name: t.Name, ThingName: t.ThingName, ThingType: t.ThingType,
			Attributes: t.Attributes, Policies: t.Policies, DeviceConfiguration: t.DeviceConfiguration,
		}
		for _, p := range t.Parameters {
			et.Parameters = append(et.Parameters, enrol.Parameter{Name: p.Name, Pattern: p.Pattern, Default: p.Default})
		}
		if h := t.PreProvisioningHook; h != nil {
			et.PreProvisioningHook = &enrol.Hook{Command: h.Command, Timeout: h.Timeout.D()}
		}
		c.Templates = append(c.Templates, et)
	}
	return c
}

// validateEnrolment resolves enrolment.pki_dir and checks the section with
// enrol.Config.Validate, whose errors name the key ("enrolment.templates[0].name: ...").
func (c *Config) validateEnrolment(r *report) {
	e := c.Enrolment
	if e == nil {
		return
	}
	const p = "enrolment"
	if e.PKIDir == "" {
		for _, l := range c.Listeners {
			if l.TLS != nil && l.TLS.CA != "" {
				e.PKIDir = filepath.Dir(l.TLS.CA)
				break
			}
		}
	} else if !filepath.IsAbs(e.PKIDir) && c.Dir != "" {
		e.PKIDir = filepath.Join(c.Dir, e.PKIDir)
	}
	if e.PKIDir == "" {
		r.add(p+".pki_dir", "required without a TLS listener: the site CA's directory (where `edgegw pki init` wrote ca.crt)")
	}
	if len(e.Templates) == 0 {
		r.add(p+".templates", "required: at least one provisioning template, e.g. {name: sensors, thing_name: \"sensor-${SerialNumber}\", parameters: [{name: SerialNumber}]}")
	}
	ec := e.Enrol()
	err := ec.Validate(p)
	if err == nil {
		return
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		// "enrolment.templates[0].name: msg": the key path, then what is wrong.
		path, msg, ok := strings.Cut(e.Error(), ": ")
		if !ok || !strings.HasPrefix(path, p) {
			path, msg = p, e.Error()
		}
		r.add(path, "%s", msg)
	}
}
