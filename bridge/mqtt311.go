package bridge

import (
	"errors"
	"fmt"
)

// The MQTT version a bridge speaks, and the upstream's refusal of our
// CONNECT as an error an operator can act on. The 3.1.1 packets themselves
// are encoded and read in package bridge/wire.

// Protocol is the MQTT version a bridge speaks upstream.
type Protocol byte

// Protocols. The zero value means MQTT 5 after defaults.
const (
	MQTT311 Protocol = 4 // MQTT 3.1.1 (OASIS 2014), CONNECT protocol level 4
	MQTT5   Protocol = 5 // MQTT 5.0 (OASIS 2019)
)

// String returns the config spelling: "3.1.1" or "5".
func (p Protocol) String() string {
	switch p {
	case MQTT311:
		return "3.1.1"
	case MQTT5:
		return "5"
	}
	return fmt.Sprintf("Protocol(%d)", byte(p))
}

// ParseProtocol accepts "5", "5.0", "3.1.1" and "311".
func ParseProtocol(s string) (Protocol, error) {
	switch s {
	case "5", "5.0":
		return MQTT5, nil
	case "3.1.1", "311":
		return MQTT311, nil
	}
	return 0, fmt.Errorf("protocol %q: want 5 or 3.1.1", s)
}

// ConnackError is an upstream's refusal of our CONNECT: a CONNACK with a
// 3.1.1 return code other than 0, or an MQTT 5 reason code >= 0x80.
type ConnackError struct {
	Upstream string   // host:port
	Protocol Protocol // the version the CONNACK was read as
	Code     byte
	Reason   string // the code's meaning, with the server's reason string if any
}

func (e *ConnackError) Error() string {
	return fmt.Sprintf("%s refused the connection: CONNACK 0x%02x %s", e.Upstream, e.Code, e.Reason)
}

// Is lets callers test for the two refusals an operator acts on.
func (e *ConnackError) Is(target error) bool {
	switch target {
	case ErrBadCredentials:
		return (e.Protocol == MQTT311 && e.Code == 4) || (e.Protocol == MQTT5 && e.Code == 0x86)
	case ErrNotAuthorized:
		return (e.Protocol == MQTT311 && e.Code == 5) || (e.Protocol == MQTT5 && e.Code == 0x87)
	}
	return false
}

// Sentinels a *ConnackError matches with errors.Is.
var (
	ErrBadCredentials = errors.New("upstream refused the user name or password")
	ErrNotAuthorized  = errors.New("upstream refused: not authorized")
)

// connack311Reason explains a 3.1.1 CONNACK return code [MQTT-3.2.2.3] and
// what the operator can do about it.
func connack311Reason(code byte) string {
	switch code {
	case 1:
		return "unacceptable protocol version: the upstream does not speak MQTT 3.1.1 (try protocol: 5)"
	case 2:
		return "identifier rejected: the upstream refuses this client_id"
	case 3:
		return "server unavailable: the upstream's MQTT service is down; retrying"
	case 4:
		return "bad user name or password: check username and password_file"
	case 5:
		return "not authorized: the upstream refuses this identity (check the client certificate, or username and password_file, and the upstream's ACL)"
	}
	return "unknown return code (protocol error)"
}
