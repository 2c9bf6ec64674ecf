package hw

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// URI is a parsed key URI: *FileURI, *TPMURI or *PKCS11URI.
type URI interface{ scheme() string }

// FileURI is "file:PATH". PATH is taken verbatim (no percent-decoding); relative paths are
// made absolute by ResolveURI (the config calls it), not here.
type FileURI struct{ Path string }

// TPMURI is "tpm:ATTR;ATTR..." with ATTR one of
//
//	device=PATH        TPM character device (default /dev/tpmrm0, the kernel resource manager)
//	tcp=HOST:PORT      TPM simulator command port (swtpm, "Microsoft simulator" protocol)
//	platform=HOST:PORT simulator platform port (default: command port + 1); only with tcp=
//	handle=0x81XXXXXX  persistent key handle (owner range 0x81000000-0x817FFFFF)
//	blob=PATH          TSS2 PEM key blob ("-----BEGIN TSS2 PRIVATE KEY-----")
//
// Exactly one of handle= and blob=; at most one of device= and tcp=; no attribute twice.
type TPMURI struct {
	Device   string
	TCP      string
	Platform string
	Handle   uint32
	Blob     string
}

// PKCS11URI is an RFC 7512 URI: "pkcs11:" path-attrs ["?" query-attrs]. Path attributes
// (";"-separated, percent-encoded): token, serial, slot-id (the token: exactly one of them),
// object, id (the key: at least one), type (only "private"). Query attributes ("&"-separated):
// module-path (required), pin-source (a file path or file: URI holding the user PIN; required
// unless the token needs no login). pin-value is refused: put the PIN in a 0600 file and name it
// with pin-source.
type PKCS11URI struct {
	Token      string
	Serial     string
	SlotID     *int
	Object     string
	ID         []byte
	ModulePath string
	PINSource  string
}

func (*FileURI) scheme() string   { return "file" }
func (*TPMURI) scheme() string    { return "tpm" }
func (*PKCS11URI) scheme() string { return "pkcs11" }

// ParseURI parses a key URI. The grammar is:
//
//	key-uri = "file:" PATH
//	        / "tpm:" tpm-attr *( ";" tpm-attr )
//	        / "pkcs11:" [ p11-attr *( ";" p11-attr ) ] [ "?" q-attr *( "&" q-attr ) ]
//	        / "auto"                      (resolved by Open/Create/Info, not by ParseURI)
//
// See FileURI, TPMURI and PKCS11URI for the attributes. Errors wrap ErrBadURI or ErrUnsupported.
func ParseURI(uri string) (URI, error) {
	scheme, rest, ok := strings.Cut(uri, ":")
	if !ok || scheme == "" {
		return nil, fmt.Errorf("%w: no scheme (want file:, tpm:, pkcs11: or auto)", ErrBadURI)
	}
	switch strings.ToLower(scheme) {
	case "file":
		if rest == "" {
			return nil, fmt.Errorf("%w: file: needs a path, e.g. file:/etc/edgegw/gateway.key", ErrBadURI)
		}
		return &FileURI{Path: rest}, nil
	case "tpm":
		return parseTPM(rest)
	case "pkcs11":
		return parsePKCS11(rest)
	}
	return nil, fmt.Errorf("%w: unknown scheme %q (want file:, tpm:, pkcs11: or auto)", ErrUnsupported, scheme)
}

// splitAttrs splits "a=1;b=2" into pairs, refusing repeats and empty names.
func splitAttrs(s, sep string) ([][2]string, error) {
	var out [][2]string
	if s == "" {
		return nil, nil
	}
	seen := map[string]bool{}
	for _, part := range strings.Split(s, sep) {
		if part == "" {
			continue
		}
		name, value, ok := strings.Cut(part, "=")
		name = strings.ToLower(strings.TrimSpace(name))
		if !ok || name == "" {
			return nil, fmt.Errorf("%w: attribute %q is not name=value", ErrBadURI, part)
		}
		if seen[name] {
			return nil, fmt.Errorf("%w: attribute %q given twice", ErrBadURI, name)
		}
		seen[name] = true
		out = append(out, [2]string{name, value})
	}
	return out, nil
}

func checkHostPort(name, v string) error {
	host, port, err := net.SplitHostPort(v)
	if err != nil || host == "" {
		return fmt.Errorf("%w: %s=%q: want HOST:PORT, e.g. 127.0.0.1:2321", ErrBadURI, name, v)
	}
	if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
		return fmt.Errorf("%w: %s=%q: bad port", ErrBadURI, name, v)
	}
	return nil
}

// tpmTransportAttrs parses device/tcp/platform; other attributes go to extra.
func tpmTransportAttrs(attrs [][2]string, u *TPMURI, extra func(name, value string) error) error {
	for _, a := range attrs {
		name, v := a[0], a[1]
		switch name {
		case "device":
			if v == "" {
				return fmt.Errorf("%w: device= is empty", ErrBadURI)
			}
			u.Device = v
		case "tcp":
			if err := checkHostPort(name, v); err != nil {
				return err
			}
			u.TCP = v
		case "platform":
			if err := checkHostPort(name, v); err != nil {
				return err
			}
			u.Platform = v
		default:
			if err := extra(name, v); err != nil {
				return err
			}
		}
	}
	if u.Device != "" && u.TCP != "" {
		return fmt.Errorf("%w: give device= or tcp=, not both", ErrBadURI)
	}
	if u.Platform != "" && u.TCP == "" {
		return fmt.Errorf("%w: platform= needs tcp=", ErrBadURI)
	}
	if u.TCP != "" && u.Platform == "" {
		host, port, _ := net.SplitHostPort(u.TCP)
		p, _ := strconv.Atoi(port)
		u.Platform = net.JoinHostPort(host, strconv.Itoa(p+1))
	}
	if u.TCP == "" && u.Device == "" {
		u.Device = defaultTPMDevice
	}
	return nil
}

func parseTPM(rest string) (*TPMURI, error) {
	attrs, err := splitAttrs(rest, ";")
	if err != nil {
		return nil, err
	}
	u := &TPMURI{}
	haveHandle := false
	err = tpmTransportAttrs(attrs, u, func(name, v string) error {
		switch name {
		case "handle":
			h, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(v), "0x"), 16, 32)
			if err != nil || !strings.HasPrefix(strings.ToLower(v), "0x") {
				return fmt.Errorf("%w: handle=%q: want a hex persistent handle such as 0x81000100", ErrBadURI, v)
			}
			if h < 0x81000000 || h > 0x817FFFFF {
				return fmt.Errorf("%w: handle=%q is not an owner persistent handle (0x81000000-0x817FFFFF)", ErrBadURI, v)
			}
			u.Handle, haveHandle = uint32(h), true
		case "blob":
			if v == "" {
				return fmt.Errorf("%w: blob= is empty", ErrBadURI)
			}
			u.Blob = v
		default:
			return fmt.Errorf("%w: unknown tpm: attribute %q (want device, tcp, platform, handle, blob)", ErrBadURI, name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	switch {
	case haveHandle && u.Blob != "":
		return nil, fmt.Errorf("%w: give handle= or blob=, not both", ErrBadURI)
	case !haveHandle && u.Blob == "":
		return nil, fmt.Errorf("%w: tpm: needs handle=0x81XXXXXX (persistent key) or blob=PATH (key blob)", ErrBadURI)
	}
	return u, nil
}

func parsePKCS11(rest string) (*PKCS11URI, error) {
	path, query, _ := strings.Cut(rest, "?")
	pattrs, err := splitAttrs(path, ";")
	if err != nil {
		return nil, err
	}
	qattrs, err := splitAttrs(query, "&")
	if err != nil {
		return nil, err
	}
	u := &PKCS11URI{}
	for _, a := range pattrs {
		v, err := url.PathUnescape(a[1])
		if err != nil {
			return nil, fmt.Errorf("%w: %s: bad percent-encoding", ErrBadURI, a[0])
		}
		switch a[0] {
		case "token":
			u.Token = v
		case "serial":
			u.Serial = v
		case "slot-id":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("%w: slot-id=%q is not a number", ErrBadURI, v)
			}
			u.SlotID = &n
		case "object":
			u.Object = v
		case "id":
			u.ID = []byte(v)
		case "type":
			if v != "private" {
				return nil, fmt.Errorf("%w: type=%q: only type=private names a signing key", ErrBadURI, v)
			}
		default:
			return nil, fmt.Errorf("%w: pkcs11: attribute %q (this gateway understands token, serial, slot-id, object, id, type)", ErrUnsupported, a[0])
		}
	}
	for _, a := range qattrs {
		v, err := url.PathUnescape(a[1])
		if err != nil {
			return nil, fmt.Errorf("%w: %s: bad percent-encoding", ErrBadURI, a[0])
		}
		switch a[0] {
		case "module-path":
			u.ModulePath = v
		case "pin-source":
			u.PINSource = strings.TrimPrefix(v, "file:")
			u.PINSource = strings.TrimPrefix(u.PINSource, "//") // file:///path
			if u.PINSource == "" {
				return nil, fmt.Errorf("%w: pin-source is empty", ErrBadURI)
			}
		case "pin-value":
			return nil, fmt.Errorf("%w: pin-value is refused (a PIN in a config file leaks into logs and backups): write the PIN to a 0600 file and use pin-source=/path/to/file", ErrPIN)
		default:
			return nil, fmt.Errorf("%w: pkcs11: query attribute %q (this gateway understands module-path, pin-source)", ErrUnsupported, a[0])
		}
	}
	n := 0
	for _, set := range []bool{u.Token != "", u.Serial != "", u.SlotID != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, fmt.Errorf("%w: pkcs11: name the token with exactly one of token=, serial=, slot-id=", ErrBadURI)
	}
	if u.Object == "" && len(u.ID) == 0 {
		return nil, fmt.Errorf("%w: pkcs11: name the key with object= (label) and/or id=", ErrBadURI)
	}
	if u.ModulePath == "" {
		return nil, fmt.Errorf("%w: pkcs11: needs ?module-path=/path/to/module.so, e.g. /usr/lib/softhsm/libsofthsm2.so", ErrBadURI)
	}
	return u, nil
}
