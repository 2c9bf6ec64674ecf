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
// What AWS accepts is accepted: empty condition value lists (IAM set semantics:
// ForAllValues over an empty request set holds, ForAnyValue does not, StringEquals []
// never holds, StringNotEquals [] always does), every key AWS IoT documents for MQTT
// (see [Identity] for which field gives which key), Numeric operators, and keys or
// variables edgegw does not know: like AWS, such a key is absent from the request
// and such a variable never resolves; each one is reported in [Engine.Notes]. Date
// and Binary operators are refused (no key edgegw evaluates is a date or bytes).
//
// Life cycle: [Load] parses and compiles the registry and every policy once (a reload
// builds a new immutable [Engine]; the broker swaps an atomic pointer). [Engine.Bind]
// runs once per connection: it finds the thing, its attached policies, substitutes
// every policy variable and evaluates every Condition (all supported condition keys
// are fixed for the life of a connection), producing a [Session]. [Session.Allowed]
// is the hot path (every PUBLISH, SUBSCRIBE and delivery): no parsing, no allocation.
// [Session.Explain] gives the same decision with the deciding statement and every
// variable, for `edgegw policy test` and audit logs.
//
// A running gateway loads with [LoadEach]: a policy file that does not load is
// returned as a [*FileError] and everything attaching it is refused at Bind with
// [ErrPolicyBroken] (fail closed, never half a policy set), while every other
// thing keeps working. [NewSession] enforces policies from elsewhere (a custom
// authorizer's answer, parsed with [ParsePolicy]) with the same semantics.
package authz
