// Package pki is the site certificate authority of edgegw: it creates the site CA (or finishes
// one signed by an enterprise root), issues per-device client certificates, signs device CSRs,
// revokes certificates into a signed CRL and keeps the registry of issued certificates.
//
// Everything lives in one directory (DIR):
//
//	ca.crt        the CA certificate (followed by its chain when the CA came from import-ca)
//	ca.key        the CA private key, PKCS#8 PEM, 0600 (absent when the key lives behind a URI)
//	ca.json       CA settings: key URI, server host names, CRL lifetime
//	ca.csr        only between `pki init --csr` and `pki import-ca`
//	server.crt    the broker's TLS server certificate (serverAuth, SANs)
//	server.key    its key, PKCS#8 PEM, 0600
//	crl.pem       CRL v2, signed by the CA, with CRL number and nextUpdate
//	issued.json   every certificate issued: serial, thing, type, validity, status, revocation
//	.lock         flock(2) target: one pki operation at a time
//
// On an installed system `edgegw pki` runs as root and the daemon as user edgegw: with
// Options.Owner (DaemonOwner) DIR becomes 0750 root:edgegw and server.key 0600 edgegw, while
// ca.key stays root's. See Owner.
//
// Every operation takes the lock, prepares all its outputs in memory, writes them to temporary
// files (fsync) and only then renames them into place (and fsyncs the directories), so a crash
// or a refused request leaves the previous state intact.
//
// Revocation follows AWS IoT semantics: the thing stays in the registry (devices.yaml), the
// certificate is revoked (crl.pem and issued.json). The running gateway reloads crl.pem when it
// changes; LoadCRL is the API it uses.
//
// Package pki may import only hw from this module (keys by URI); it must not import gateway,
// mochi, store or bridge.
package pki
