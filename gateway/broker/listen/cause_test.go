package listen

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/edgegw/edgegw/gateway/audit"
)

// TestCauseOf: every refusal gets the cause the auth-failure metric reports,
// from typed errors where there are types and from crypto/tls's text where
// there are none. (Moved from the gateway's TestClassifyAuthFailure, which
// read the audit reason; the reasons are the same.)
func TestCauseOf(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       error
		handshake bool
		fallback  audit.Cause // what the refusing site passes
		want      audit.Cause
	}{
		{"no client certificate", errors.New("tls: client didn't provide a certificate"), true, audit.CauseTLS, audit.CauseNoCertificate},
		{"unknown CA, text", errors.New("tls: failed to verify certificate: x509: certificate signed by unknown authority"), true, audit.CauseTLS, audit.CauseUnknownCA},
		{"unknown CA, typed", fmt.Errorf("tls: failed to verify certificate: %w", x509.UnknownAuthorityError{}), true, audit.CauseTLS, audit.CauseUnknownCA},
		{"expired, text", errors.New("tls: failed to verify certificate: x509: certificate has expired or is not yet valid"), true, audit.CauseTLS, audit.CauseExpired},
		{"expired, typed", fmt.Errorf("no longer trusted: %w", x509.CertificateInvalidError{Reason: x509.Expired}), false, audit.CauseUnknownThing, audit.CauseExpired},
		{"revoked, text", errors.New("client certificate serial 5: certificate revoked"), true, audit.CauseTLS, audit.CauseRevoked},
		{"revoked, typed", fmt.Errorf("client certificate serial 5: %w", ErrRevoked), true, audit.CauseTLS, audit.CauseRevoked},
		{"handshake timeout, text", errors.New("read tcp 127.0.0.1:8883->127.0.0.1:5: i/o timeout"), true, audit.CauseTLS, audit.CauseHandshakeTimeout},
		{"handshake timeout, typed", fmt.Errorf("read: %w", os.ErrDeadlineExceeded), true, audit.CauseTLS, audit.CauseHandshakeTimeout},
		{"other TLS failure", errors.New("tls: first record does not look like a TLS handshake"), true, audit.CauseTLS, audit.CauseTLS},
		{"bad password", errors.New("bad user name or password"), false, audit.CauseBadPassword, audit.CauseBadPassword},
		{"connect not allowed", errors.New("iot:Connect client/x not allowed: default deny"), false, audit.CauseNotAuthorized, audit.CauseNotAuthorized},
		{"CA removed while connected", errors.New("no longer trusted: x509: certificate signed by unknown authority"), false, audit.CauseUnknownThing, audit.CauseUnknownCA},
		{"unknown thing", errors.New(`thing "ghost" is not in the registry`), false, audit.CauseUnknownThing, audit.CauseUnknownThing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := CauseOf(tc.err, tc.handshake, tc.fallback); got != tc.want {
				t.Errorf("causeOf(%q) = %s; want %s", tc.err, got, tc.want)
			}
		})
	}
}
