// Package mosqimport carries a Mosquitto 2.0 broker configuration over to
// edgegw: it reads a mosquitto.conf (with its include_dir files and its
// acl_file) and produces an edgegw.yaml, AWS IoT policy documents and a
// device registry (devices.yaml), plus a report naming every line
// (file:line) that could not be carried over, or only with a difference,
// and why. `edgegw import mosquitto FILE -o DIR` is [Import] followed by
// [Result.WriteDir].
//
// The package reads files (the configuration, its includes, the ACL file and
// the password file, only to name their hash formats) and writes the output
// directory; it does no network I/O. It imports gateway/authz (to validate the
// policies and registry it writes) and the standard library only: never
// gateway, mochi, badger, prometheus or paho.
//
// # What carries over
//
// Listeners: `listener PORT [HOST]` (and the default `port`) with cafile,
// certfile, keyfile, crlfile, tls_version become edgegw listeners. edgegw
// always requires a client certificate on a non-loopback listener and takes
// the thing name from the certificate's CN (Mosquitto's
// use_identity_as_username); a plaintext listener must bind a loopback
// address, so a plaintext listener on all interfaces is imported on
// 127.0.0.1 with a report line. password_file is kept by reference (its
// hash formats, bcrypt "$2b$", Mosquitto's "$7$" PBKDF2-SHA512 and "$6$"
// SHA-512, are named in the report); it becomes each listener's extra factor
// where Mosquitto checked passwords.
//
// Bridges: the first `connection` block becomes the bridge (edgegw has one
// upstream identity); `address`/`addresses` become its upstreams in failover
// order, `topic PATTERN [out|in|both] [QOS] [LOCAL-PREFIX] [REMOTE-PREFIX]`
// lines its routes (the prefixes have the same meaning in both), bridge_cafile,
// bridge_certfile and bridge_keyfile its TLS, remote_clientid its client ID.
// A bridge edgegw cannot run as written (no client certificate, a plaintext
// upstream that is not loopback) is written commented out, so the output
// always passes `edgegw check`; later connection blocks are reported.
//
// # ACL semantics (Mosquitto 2.0.11, Debian 12's version, read from its source)
//
//   - `topic` lines after `user NAME` apply to that user; `topic` lines before
//     any `user` line apply to anonymous clients only; `pattern` lines apply
//     to every client, with %c replaced by the client ID and %u by the user
//     name (a pattern with %u never matches an anonymous client).
//   - A client's own lines are checked first, then the patterns; within each
//     list `deny` lines come first: a matching deny refuses, the first
//     matching line with the wanted access grants. A pattern deny does not
//     take back what a user line granted.
//   - SUBSCRIBE is never refused by the ACL file (the default ACL check
//     returns success for subscriptions); `read` is checked for every
//     message delivered (and every retained message). `write` is checked on
//     PUBLISH; publishing to $SYS is refused to everyone except
//     $SYS/broker/connection/+/state.
//   - `#` and `+` at the start of an ACL topic never match a topic that
//     starts with '$' (so `topic read #` does not grant $SYS).
//
// # How it is translated
//
// Every client gets the policy "mosquitto-base": iot:Connect on
// client/${iot:Connection.Thing.ThingName} (the client ID must be the thing
// name, edgegw's rule; Mosquitto accepted any client ID: reported once) and
// iot:Subscribe on topicfilter/* (Mosquitto grants every subscription; what
// a client gets is decided by iot:Receive, as by Mosquitto's read check).
// `read` becomes iot:Receive on topic/..., `write` iot:Publish, `readwrite`
// both, `deny` a Deny of both. A `user NAME` becomes a listed thing NAME with
// the policy "acl-user-NAME": the Mosquitto user name is the thing name,
// which is exact when Mosquitto took the user name from the certificate
// (use_identity_as_username, edgegw's identity: cn) and otherwise means each
// user needs a certificate with CN = user name. Pattern lines become the
// policy "acl-patterns", attached with the base policy by a group matching
// every thing name. %c becomes ${iot:ClientId}; %u becomes
// ${iot:Connection.Thing.ThingName}, not ${iot:Certificate.Subject.CommonName}:
// it is the same value (the thing is the CN), it also resolves on a plaintext
// loopback listener where there is no certificate, and it always resolves
// because Connect pins the client ID to the thing name. That matters for
// Deny statements: a Deny whose variable did not resolve would not apply.
// Thing names are [a-zA-Z0-9:_-]+, so a substituted value never contains
// '/', '+', '#', '*', '?' or '$' and is matched literally.
//
// AWS policy globs are not MQTT filters: `*` crosses levels and `+`/`#` are
// literal. An ACL topic is translated to globs that match the same topic
// names: "a/b" stays, "a/#" becomes "a" and "a/*", "#" becomes "*",
// "a/+/#" becomes "a/*". A `+` followed by more levels, "a/+/c", becomes
// "a/*/c" with a Deny of "a/*/*/c" (the `*` spanning more than one level).
// A topic starting with a wildcard gets a Deny of "$*", as Mosquitto's
// wildcards never match '$' topics. Literal '*', '?' and "${" are escaped
// (${*}, ${?}, ${$}). Where a Deny added this way, or a Mosquitto deny that
// had to be widened, also hits topics another line of the same client
// grants, or where a pattern deny overlaps a user's grant (Mosquitto checks
// the user's lines first, AWS lets any Deny win), the line is imported so
// that edgegw grants less, never more, and the report names the line and the
// other line involved. Anonymous-only lines (before any `user`) are not
// imported: edgegw has no anonymous clients.
package mosqimport
