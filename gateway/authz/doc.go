// Package authz is edgegw's least-privilege policy engine: it evaluates AWS IoT Core
// policy documents (JSON or the same structure in YAML) against a device registry
// (devices.yaml), offline, with the semantics AWS documents: deny by default, any
// matching Deny wins, IAM wildcards (`*`, `?`), MQTT `+` and `#` literal, policy
// variables from the client ID, the registry thing and the client certificate.
//
// The package is pure: it does no file or network I/O, does not import mochi, and
// imports nothing from this module. Callers read the files and pass their bytes as
// [Source] values; cmd and gateway may import authz, never the other way round.
//
// Life cycle: [Load] parses and compiles the registry and every policy once (a reload
// builds a new immutable [Engine]; the broker swaps an atomic pointer). [Engine.Bind]
// runs once per connection: it finds the thing, its attached policies, substitutes
// every policy variable and evaluates every Condition (all supported condition keys
// are fixed for the life of a connection), producing a [Session]. [Session.Allowed]
// is the hot path (every PUBLISH, SUBSCRIBE and delivery): no parsing, no allocation.
// [Session.Explain] gives the same decision with the deciding statement and every
// variable, for `edgegw policy test` and audit logs.
package authz
