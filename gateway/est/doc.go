// Package est is an RFC 7030 (Enrollment over Secure Transport) client: cacerts, simpleenroll
// and simplereenroll over HTTPS with TLS client authentication by any crypto.Signer (the
// current certificate's key, or a key in a TPM or HSM), answers parsed from base64
// certs-only PKCS#7 (CMS SignedData without signers). Renew re-enrols an identity with a new
// key made by a KeyFactory: the CSR carries the current subject and subjectAltNames, as RFC 7030
// 4.2.2 requires, and is authenticated by the current certificate in TLS.
//
// Not implemented: serverkeygen (the key never leaves the device), fullcmc, csrattrs, and the
// tls-unique channel binding of RFC 7030 3.5 (the TLS client certificate is the proof of
// identity). A 202 answer is returned as *RetryError for the caller to retry after its delay.
//
// PKCS#7 is parsed with encoding/asn1, which reads DER only: a server answering in BER with
// indefinite lengths is refused with a parse error.
//
// Interop: globalsign_test.go runs cacerts, simpleenroll and simplereenroll (keys in files and
// in swtpm) against GlobalSign's estserver v1.0.6, which answers in DER. It is built from
// testdata/estserver, a module of its own: est v1.0.6 needs go-tpm's pre-0.9 tpm2 API, which the
// go-tpm version hw uses no longer has, so it cannot be a tool dependency of this module.
//
// Package est imports nothing from this module (keys arrive as crypto.Signer; at most hw
// may be imported); it must not import gateway, mochi, badger, prometheus, paho, store or bridge.
package est
