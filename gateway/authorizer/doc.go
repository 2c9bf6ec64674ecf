// Package authorizer is edgegw's custom authorizer hook: AWS IoT Core's custom
// authentication, run on the gateway. At CONNECT the broker hands [Authorizer.Connect]
// what AWS passes to a custom authorizer Lambda (the token and its verified signature
// when token signing is configured; protocolData.mqtt {username, password in base64,
// clientId}; protocolData.tls {serverName}; connectionMetadata {id}) plus what only
// the gateway knows (the client certificate's identity and the source address, in an
// "edgegw" object AWS's event does not have, so an authorizer written for Lambda
// reads the same event). The authorizer answers as a Lambda does: isAuthenticated,
// principalId, policyDocuments, disconnectAfterInSeconds, refreshAfterInSeconds.
//
// The returned policy documents are parsed and enforced by gateway/authz, the engine
// that enforces the registry's policies; the decision is cached per connection
// ([Conn]) and refreshed when the answer says. Everything that is not a clear
// "authenticated, with these valid policies" denies (fail closed) with a typed reason
// for the audit line ([*DenyError] wrapping ErrTimeout, ErrTransport, ErrMalformed,
// ErrPolicy, ErrNotAuthenticated, ErrRateLimited, ErrBusy, ErrSignature,
// ErrSessionExpired).
//
// Two transports, both on the local machine only (the authorizer sees passwords):
//
//	url: http://127.0.0.1:9000/authorize    POST the event as JSON, the answer is the JSON body
//	url: http://[::1]:9000/authorize        (https too; the host must be a loopback address
//	url: http://localhost:9000/authorize     or localhost, and every dial is checked to be loopback)
//	url: unix:/run/edgegw/authorizer.sock   POST / over a unix socket
//	command: [/usr/lib/edgegw/auth, --x]     run per call: the event on stdin, the answer on
//	                                         stdout; killed (its process group) at the timeout
//
// Calls are bounded: a token bucket (rate, burst) and a cap on calls in flight; a
// call waits for a free slot only within its own timeout, so a hanging authorizer
// denies its own connects within the timeout while the other slots serve the rest.
//
// Imports: of this module only gateway/authz. Never mochi, badger or prometheus:
// the broker wires it in, the observe room reads [Authorizer.Stats].
package authorizer
