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
// The schema is enrol.Config's (gateway/enrol owns its fields, defaults and documentation),
// embedded with the config's own key pki_dir; its durations read as the config's do ("7d").
// validate checks it with enrol.Config.Validate, which writes nothing into it, so the rules
// live in one place.
type Enrolment struct {
	PKIDir       string `yaml:"pki_dir"`
	enrol.Config `yaml:",inline"`
}

// The section's parts are enrol's types; the config names them as it does the rules'.
type (
	EnrolRateLimit = enrol.RateLimit
	EnrolTemplate  = enrol.Template
	EnrolParameter = enrol.Parameter
	EnrolHook      = enrol.Hook
)

// Enrol returns the section as the enrolment service's configuration: a copy sharing nothing
// with the parsed config (enrol.New fills the defaults into its own copy).
func (e *Enrolment) Enrol() enrol.Config { return e.Config.Clone() }

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
	err := e.Config.Validate(p)
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
