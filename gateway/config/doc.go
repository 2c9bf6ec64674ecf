// Package config is edgegw's configuration file: the YAML schema (Config),
// strict decoding with file:line errors (unknown keys are errors, with a
// "did you mean"), units (Size: 512MiB, 2GiB; Duration: 90s, 7d), relative
// paths resolved against the file's directory, and validation per section.
// `edgegw check` and SIGHUP both go through Check.
//
// Defaults are the components': a broker limit or a bridge timing left out
// of the file stays zero here and the broker (broker.DefaultLimits) or the
// bridge (bridge.Config) applies its own default; written, it is validated
// here. Key URIs are hw's grammar (hw.ResolveURI, hw.ParseURI); topic
// filters and names are bridge/topic's rule.
//
// It imports no runtime package (no broker, bridge, store, observe): only
// the leaves hw, gateway/authz, gateway/loopback and bridge/topic (MQTT topic
// syntax, not the bridge), and gateway/enrol (pure: pki, authz, hw) whose
// Config.Validate checks the enrolment section (enrol.go).
package config
