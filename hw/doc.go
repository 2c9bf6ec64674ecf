// Package hw turns a key URI into a crypto.Signer, wherever the key lives: a PEM file, a TPM 2.0
// (through github.com/google/go-tpm, pure Go) or a PKCS#11 token (through crypto11, cgo only).
// It also provides the 32-byte queue encryption secret, optionally sealed to the TPM.
//
// Accepted key URIs (see ParseURI for the exact grammar):
//
//	file:/etc/edgegw/gateway.key                      PKCS#8, SEC1 EC or PKCS#1 RSA PEM, mode 0600
//	tpm:handle=0x81000100                             persistent key in /dev/tpmrm0
//	tpm:blob=/var/lib/edgegw/gateway.tpm2.pem         TSS2 PEM key blob ("TSS2 PRIVATE KEY")
//	tpm:tcp=127.0.0.1:2321;handle=0x81000100          swtpm / TPM simulator (platform port +1)
//	pkcs11:token=gw;object=gateway?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/etc/edgegw/pin
//	auto                                              TPM if /dev/tpmrm0 works, else a file key
//
// Secret URIs for OpenSecret and OpenOrCreateSecret: "file:PATH" and
// "tpm-sealed:PATH[;device=...|;tcp=...]". OpenOrCreateSecret (the daemon) makes a missing one;
// OpenSecret (inspection tools) creates only the tpm-sealed blob, as it always did.
//
// A TPM that does not answer (hung, or swtpm stopped) fails a command after TPMTimeout (key
// generation TPMCreateTimeout) with ErrTimeout, naming the TPM and what to do; the TCP and
// device transports of go-tpm have no deadline of their own (see tpm.go).
//
// ReadCRLs is the one reader of CRL files (the listener's trust and the metrics use it).
//
// Role: the only package of edgegw that opens private key material. It imports nothing from
// this module (cmd/edgegw/deps_test.go enforces it) and never logs or prints keys or PINs.
package hw
