package listen

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/edgegw/edgegw/gateway/audit"
)

// RevokedError is the handshake refusal of a client certificate on a CRL;
// it matches ErrRevoked with errors.Is and carries the certificate, so the
// audit line names the device and the serial (hex, as everywhere).
type RevokedError struct{ Cert *x509.Certificate }

func (e *RevokedError) Error() string {
	return fmt.Sprintf("client certificate serial %s: %v", e.Cert.SerialNumber.Text(16), ErrRevoked)
}

func (e *RevokedError) Unwrap() error { return ErrRevoked }

// peerCertOf is the client certificate a handshake error is about, when
// the error carries it (revoked, or failed verification: expired, unknown
// CA); nil otherwise.
func peerCertOf(err error) *x509.Certificate {
	var re *RevokedError
	if errors.As(err, &re) {
		return re.Cert
	}
	var ve *tls.CertificateVerificationError
	if errors.As(err, &ve) && len(ve.UnverifiedCertificates) > 0 {
		return ve.UnverifiedCertificates[0]
	}
	return nil
}

// HandshakeFailedEvent is the audit line of a refused TLS handshake on the
// listener named listener: with the device (as the listener's identity rule
// src names it) and the hex serial whenever the client presented a
// certificate.
func HandshakeFailedEvent(listener string, src IdentitySource, remote string, err error) audit.Event {
	ev := audit.Event{Event: audit.EventHandshakeFailed, Listener: listener, Remote: remote, Reason: err.Error(), Cause: CauseOf(err, true, audit.CauseTLS)}
	if c := peerCertOf(err); c != nil {
		ev.Serial = c.SerialNumber.Text(16)
		if name, nerr := ThingNameFromCert(c, src); nerr == nil {
			ev.Device = name
		}
	}
	return ev
}
