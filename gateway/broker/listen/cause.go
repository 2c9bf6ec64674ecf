package listen

import (
	"crypto/x509"
	"errors"
	"net"
	"strings"

	"github.com/edgegw/edgegw/gateway/audit"
)

// CauseOf classifies why a TLS handshake (handshake true) or a CONNECT was
// refused, for audit.Event.Cause. Our own errors and x509's are typed; crypto/tls
// reports a missing client certificate and the alerts a peer sends (e.g.
// "remote error: tls: expired certificate") only as text, so those are read
// from the message here, at the one place the error is at hand. A CONNECT
// refusal nothing else explains gets fallback.
func CauseOf(err error, handshake bool, fallback audit.Cause) audit.Cause {
	var ne net.Error
	var invalid x509.CertificateInvalidError
	var unknown x509.UnknownAuthorityError
	switch {
	case errors.Is(err, ErrRevoked):
		return audit.CauseRevoked
	case handshake && errors.As(err, &ne) && ne.Timeout():
		return audit.CauseHandshakeTimeout
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return audit.CauseExpired
	case errors.As(err, &unknown):
		return audit.CauseUnknownCA
	}
	r := strings.ToLower(err.Error())
	switch {
	case strings.Contains(r, "revoked"):
		return audit.CauseRevoked
	case handshake && (strings.Contains(r, "timeout") || strings.Contains(r, "deadline")):
		return audit.CauseHandshakeTimeout
	case strings.Contains(r, "expired") || strings.Contains(r, "not yet valid"):
		return audit.CauseExpired
	case strings.Contains(r, "unknown authority") || strings.Contains(r, "unknown certificate authority") || strings.Contains(r, "no longer trusted"):
		return audit.CauseUnknownCA
	case strings.Contains(r, "didn't provide a certificate") || strings.Contains(r, "no certificate") || strings.Contains(r, "certificate required"):
		return audit.CauseNoCertificate
	case handshake:
		return audit.CauseTLS
	}
	return fallback
}
