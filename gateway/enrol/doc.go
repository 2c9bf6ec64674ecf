// Package enrol lets sensors enrol and renew their certificates over MQTT against the site CA,
// with the request/response shape of AWS IoT's device provisioning MQTT API (fleet
// provisioning), so firmware written for AWS IoT enrols at the edge unchanged:
//
//	$aws/certificates/create-from-csr/json                      CreateCertificateFromCsr
//	$aws/certificates/create/json                               CreateKeysAndCertificate: always rejected (NotSupported)
//	$aws/provisioning-templates/<template>/provision/json       RegisterThing
//
// each answered on the request topic + "/accepted" or + "/rejected" (statusCode, errorCode,
// errorMessage; the codes are the Code* constants). Each topic has a /cbor twin (…/cbor,
// …/cbor/accepted) carrying the same documents in CBOR (RFC 8949; the subset is in cbor.go).
//
// Two kinds of callers:
//   - a claim certificate (`edgegw pki claim`, SAN URI urn:edgegw:claim:<name>): its CSR's CN
//     must be a thing name one of the templates can give; the certificate is signed as pending
//     (pki.StatusPending, AWS's PENDING_ACTIVATION) and becomes active, with its registry entry,
//     when RegisterThing names a template whose thing name (from the parameters, after the
//     optional pre-provisioning hook) equals that CN. A pending certificate whose token expires
//     is revoked by Sweep, as AWS deletes it.
//   - a device certificate of this CA (renewal): the CSR's CN must be the caller's thing; the new
//     certificate is active at once beside the old one, which is revoked with reason superseded
//     by the first Sweep after the new one connected (Connected) or after the grace period.
//     Sweep revokes everything due in one CRL, so 2,000 renewals are not 2,000 CRLs.
//
// A certificateOwnershipToken is 256 random bits, bound to the issued certificate and to the
// client that asked for it (certificate serial and client ID), single use, valid for
// Config.TokenTTL (1 h, as AWS). Only its SHA-256 is stored, in the PKI directory's enrol.json,
// with the renewals waiting for Connected, so both survive a restart. Every request spends a
// token of the calling certificate's bucket (Config.RateLimit).
//
// CreateCertificateFromCsr requests are signed in batches (batch.go): requests that arrive
// while one batch is being signed are signed together in the next, with one issued.json and
// one enrol.json commit, so 2,000 sensors renewing within a minute cost tens of commits, not
// thousands. Measured with `edgegw-load renew` (2,000 devices, 60 s window, the fleet
// publishing QoS 1 throughout): every device renewed, 0 messages lost, every old certificate
// revoked within one sweep of the last renewal.
//
// Service does no MQTT I/O: Handle takes a request and returns the responses to publish to
// the requesting connection only. Certificates and the registry are written through
// gateway/pki (Issue, Activate, RevokeSerials), the same code `edgegw pki sign` uses.
//
// Broker wiring (what the broker does with a Service):
//   - after the publish policy allowed a PUBLISH whose topic matches one of Filters, hand it to
//     Handle (with the QoS 1 PUBACK as usual) and do not route it to subscribers;
//   - Caller: ClientID, ThingName (from the verified certificate, as for policies), Claim =
//     IsClaimCert(leaf), Serial = pki.SerialHex(leaf.SerialNumber), Cert = leaf, Source;
//   - publish each Response (QoS 0 or the request's QoS, not retained) to the requesting
//     client only, never through the topic tree: a response carries an ownership token;
//   - call Connected(serial) after every successful CONNECT of a certificate (lock-free, writes
//     nothing: the next Sweep records it), and Sweep(now) every few seconds;
//   - OnEvent feeds the audit log and metrics.
//
// Tokens are bound to the certificate serial and client ID, not to one TCP connection, so a
// client that reconnects between the two calls (mosquitto_rr does) still registers.
//
// Package enrol may import gateway/pki, gateway/authz and hw from this module only; it must not
// import mochi, badger, prometheus, paho, gateway, store or bridge.
package enrol
