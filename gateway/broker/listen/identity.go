package listen

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/edgegw/edgegw/gateway/authz"
)

// IdentitySource says where a listener takes the thing name from.
type IdentitySource uint8

// Identity sources (listener key `identity`).
const (
	// IdentityCN: the subject CommonName of the client certificate (default).
	IdentityCN IdentitySource = iota
	// IdentitySANURI: the first URI SAN. The thing name is its last segment:
	// "urn:edgegw:thing:temp-01" -> "temp-01", "spiffe://site/thing/temp-01" -> "temp-01".
	IdentitySANURI
	// IdentitySANDNS: the first label of the first DNS SAN:
	// "temp-01.sensors.plant-7.example" -> "temp-01".
	IdentitySANDNS
)

// ParseIdentitySource parses "cn" (or ""), "san-uri", "san-dns".
func ParseIdentitySource(s string) (IdentitySource, error) {
	switch s {
	case "", "cn":
		return IdentityCN, nil
	case "san-uri":
		return IdentitySANURI, nil
	case "san-dns":
		return IdentitySANDNS, nil
	}
	return 0, fmt.Errorf("identity %q: want cn, san-uri or san-dns", s)
}

func (s IdentitySource) String() string {
	return [...]string{"cn", "san-uri", "san-dns"}[s]
}

// ErrNoIdentity is returned when no thing name can be derived.
var ErrNoIdentity = errors.New("no thing name in the client certificate")

// PeerIdentity is who a connection is, established before any policy check.
type PeerIdentity struct {
	ThingName string
	Cert      *x509.Certificate   // leaf; nil on plaintext listeners
	Chain     []*x509.Certificate // verified chain, leaf first
	Serial    string              // leaf serial, hex ("" without cert)
	SourceIP  netip.Addr
}

// ThingNameFromCert derives the thing name from a verified leaf certificate.
func ThingNameFromCert(c *x509.Certificate, src IdentitySource) (string, error) {
	var name string
	switch src {
	case IdentityCN:
		name = c.Subject.CommonName
	case IdentitySANURI:
		if len(c.URIs) == 0 {
			return "", fmt.Errorf("%w: certificate has no URI SAN", ErrNoIdentity)
		}
		u := c.URIs[0]
		s := strings.TrimRight(u.Opaque+u.Path, "/")
		if i := strings.LastIndexAny(s, "/:"); i >= 0 {
			s = s[i+1:]
		}
		name = s
	case IdentitySANDNS:
		if len(c.DNSNames) == 0 {
			return "", fmt.Errorf("%w: certificate has no DNS SAN", ErrNoIdentity)
		}
		name, _, _ = strings.Cut(c.DNSNames[0], ".")
	}
	if name == "" {
		return "", fmt.Errorf("%w (%s)", ErrNoIdentity, src)
	}
	if !authz.ValidThingName(name) {
		return "", fmt.Errorf("thing name %q from %s: want 1-128 letters, digits and :_-", name, src)
	}
	return name, nil
}

// connectionStater is satisfied by *tls.Conn and by our Conn.
type connectionStater interface {
	ConnectionState() tls.ConnectionState
}

// PeerIdentityOf builds the identity of a connection. On a TLS connection with a
// verified chain the thing name comes from the certificate; without one (a
// plaintext loopback listener, or client_auth: none) the client ID is the
// thing name.
func PeerIdentityOf(conn net.Conn, clientID string, src IdentitySource) (PeerIdentity, error) {
	var id PeerIdentity
	if conn != nil {
		if ap, err := netip.ParseAddrPort(conn.RemoteAddr().String()); err == nil {
			id.SourceIP = ap.Addr().Unmap()
		}
	}
	if cs, ok := conn.(connectionStater); ok {
		st := cs.ConnectionState()
		if len(st.VerifiedChains) > 0 && len(st.VerifiedChains[0]) > 0 {
			id.Chain = st.VerifiedChains[0]
			id.Cert = id.Chain[0]
			id.Serial = id.Cert.SerialNumber.Text(16)
			name, err := ThingNameFromCert(id.Cert, src)
			if err != nil {
				return id, err
			}
			id.ThingName = name
			return id, nil
		}
	}
	if !authz.ValidThingName(clientID) {
		return id, fmt.Errorf("%w: without a certificate the client ID is the thing name; %q is not a valid thing name", ErrNoIdentity, clientID)
	}
	id.ThingName = clientID
	return id, nil
}
