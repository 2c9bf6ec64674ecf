package authz

import (
	"encoding/asn1"
	"fmt"
	"strconv"
	"strings"
)

// keySpec is a policy variable or condition key, e.g. iot:ClientId,
// iot:Connection.Thing.Attributes[floor], iot:Certificate.Subject.Organization.1.
// Every supported key is fixed for the life of a connection, which is why Bind can
// substitute variables and evaluate conditions once.
type keySpec struct {
	name  string // as written in the policy
	kind  keyKind
	attr  string                // kThingAttr: attribute name
	oid   asn1.ObjectIdentifier // kCertSubject, kCertIssuer
	san   string                // kCertSAN: lower-case field name
	index int                   // which value of a multi-valued certificate field
	list  bool                  // .List: every value (condition keys only)
}

type keyKind uint8

const (
	kClientID keyKind = iota + 1
	kThingName
	kThingType
	kThingAttached
	kThingAttr
	kCertSubject
	kCertIssuer
	kCertSAN
	kCertIAN
	kCertSerial
	kSourceIP
	kConnectAttrs
	kWillTopic       // iot:LastWillTopic: present on a CONNECT that carries a will
	kDomainName      // iot:DomainName: the TLS server name (SNI) the client asked for
	kCertID          // iot:CertificateId: SHA-256 of the client certificate, lower-case hex
	kSecureTransport // aws:SecureTransport: "true" on a TLS connection
	kAbsent          // a key edgegw never has for an MQTT request: always absent
)

func (k *keySpec) isCert() bool {
	return k.kind >= kCertSubject && k.kind <= kCertSerial || k.kind == kCertID
}
func (k *keySpec) isThing() bool {
	return k.kind >= kThingName && k.kind <= kThingAttr
}
func (k *keySpec) multi() bool { return k.list || k.kind == kConnectAttrs }

// connectOnly reports whether the key exists only while a CONNECT is evaluated.
func (k *keySpec) connectOnly() bool { return k.kind == kConnectAttrs || k.kind == kWillTopic }

var dnFields = map[string]asn1.ObjectIdentifier{
	"commonname":                 {2, 5, 4, 3},
	"surname":                    {2, 5, 4, 4},
	"serialnumber":               {2, 5, 4, 5},
	"country":                    {2, 5, 4, 6},
	"locality":                   {2, 5, 4, 7},
	"state":                      {2, 5, 4, 8},
	"organization":               {2, 5, 4, 10},
	"organizationalunit":         {2, 5, 4, 11},
	"title":                      {2, 5, 4, 12},
	"givenname":                  {2, 5, 4, 42},
	"initials":                   {2, 5, 4, 43},
	"generationqualifier":        {2, 5, 4, 44},
	"distinguishednamequalifier": {2, 5, 4, 46},
	"pseudonym":                  {2, 5, 4, 65},
}

var sanFields = map[string]bool{
	"rfc822name": true, "dnsname": true, "directoryname": true,
	"uniformresourceidentifier": true, "ipaddress": true, "registeredid": true,
}

// parseKey parses a variable or condition key name. Names are matched
// case-insensitively as in IAM; attribute names inside [] are case-sensitive.
func parseKey(s string) (*keySpec, string) {
	l := strings.ToLower(s)
	k := &keySpec{name: s}
	switch l {
	case "iot:clientid":
		k.kind = kClientID
	case "aws:sourceip":
		k.kind = kSourceIP
	case "iot:connectattributes":
		k.kind = kConnectAttrs
	case "iot:connection.thing.thingname":
		k.kind = kThingName
	case "iot:connection.thing.thingtypename":
		k.kind = kThingType
	case "iot:connection.thing.isattached":
		k.kind = kThingAttached
	case "iot:certificate.serialnumber":
		k.kind = kCertSerial
	case "iot:lastwilltopic":
		k.kind = kWillTopic
	case "iot:domainname":
		k.kind = kDomainName
	case "iot:certificateid":
		k.kind = kCertID
	case "aws:securetransport":
		k.kind = kSecureTransport
	default:
		const attrs = "iot:connection.thing.attributes["
		if strings.HasPrefix(l, attrs) && strings.HasSuffix(l, "]") {
			k.kind, k.attr = kThingAttr, s[len(attrs):len(s)-1]
			if k.attr == "" || strings.ContainsAny(k.attr, "[]") {
				return nil, fmt.Sprintf("bad thing attribute name in %q", s)
			}
			return k, ""
		}
		rest, ok := strings.CutPrefix(l, "iot:certificate.")
		if !ok {
			return nil, ""
		}
		group, field, ok := strings.Cut(rest, ".")
		if !ok {
			return nil, ""
		}
		field, sel, hasSel := strings.Cut(field, ".")
		switch group {
		case "subject", "issuer":
			oid, ok := dnFields[field]
			if !ok {
				return nil, ""
			}
			k.kind, k.oid = kCertSubject, oid
			if group == "issuer" {
				k.kind = kCertIssuer
			}
		case "subjectalternativename", "issueralternativename":
			if !sanFields[field] {
				return nil, ""
			}
			k.kind, k.san = kCertSAN, field
			if group == "issueralternativename" {
				k.kind = kCertIAN
			}
		default:
			return nil, ""
		}
		if hasSel {
			if sel == "list" {
				k.list = true
			} else if n, err := strconv.Atoi(sel); err == nil && n >= 0 && n < 1000 && strconv.Itoa(n) == sel {
				k.index = n
			} else {
				return nil, ""
			}
		}
	}
	return k, ""
}

// template is a Resource or condition value with its variables located. Parts are
// pattern text (where `*` and `?` are wildcards for globbing operators), literal text
// (from the IAM escapes ${*}, ${?}, ${$}) or a variable.
type template struct {
	raw     string
	parts   []tpart
	vars    bool
	unknown []string // variables edgegw does not know (they never resolve)
}

type tpart struct {
	text string
	lit  bool
	key  *keySpec
}

// parseTemplate locates `${...}` variables in s. With vars false (a policy without
// Version 2012-10-17) the text is taken as is, as IAM does.
func parseTemplate(s string, vars bool) (template, string) {
	t := template{raw: s}
	if !vars {
		t.parts = []tpart{{text: s}}
		return t, ""
	}
	rest := s
	for rest != "" {
		i := strings.Index(rest, "${")
		if i < 0 {
			t.parts = append(t.parts, tpart{text: rest})
			break
		}
		if i > 0 {
			t.parts = append(t.parts, tpart{text: rest[:i]})
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return t, fmt.Sprintf("unbalanced \"${\" in %q: missing \"}\"", s)
		}
		name := rest[i+2 : i+j]
		rest = rest[i+j+1:]
		switch name {
		case "*", "?", "$":
			t.parts = append(t.parts, tpart{text: name, lit: true})
			continue
		}
		k, msg := parseKey(name)
		if msg != "" {
			return t, msg
		}
		if k == nil {
			if !validKeyName(name) {
				return t, fmt.Sprintf("unknown variable \"${%s}\" in %q", name, s)
			}
			// AWS accepts a document with a variable it does not know; the
			// variable never resolves, so the statement never applies.
			k = &keySpec{name: name, kind: kAbsent}
			t.unknown = append(t.unknown, name)
		}
		if k.multi() {
			return t, fmt.Sprintf("variable \"${%s}\" has several values and can only be a condition key", name)
		}
		t.parts = append(t.parts, tpart{key: k})
		t.vars = true
	}
	return t, ""
}

// glob substitutes the variables (as literal text) and compiles the pattern; why is
// non-empty when a variable cannot be resolved, and the statement then does not apply.
func (t *template) glob(c *bindCtx) (g glob, why string) {
	for _, p := range t.parts {
		switch {
		case p.key != nil:
			v, why := c.substitute(p.key)
			if why != "" {
				return glob{}, why
			}
			g.appendLit(v)
		case p.lit:
			g.appendLit(p.text)
		default:
			g.appendText(p.text)
		}
	}
	return g, ""
}

// str substitutes the variables and returns the plain string (for exact operators).
func (t *template) str(c *bindCtx) (string, string) {
	if !t.vars {
		return t.plain(), ""
	}
	var b strings.Builder
	for _, p := range t.parts {
		if p.key != nil {
			v, why := c.substitute(p.key)
			if why != "" {
				return "", why
			}
			b.WriteString(v)
		} else {
			b.WriteString(p.text)
		}
	}
	return b.String(), ""
}

func (t *template) plain() string {
	if len(t.parts) == 1 {
		return t.parts[0].text
	}
	var b strings.Builder
	for _, p := range t.parts {
		b.WriteString(p.text)
	}
	return b.String()
}

// validKeyName reports whether s has the form of an IAM condition key or policy
// variable, PREFIX:NAME (e.g. iot:Thing.ThingName, aws:ResourceTag/env), so that a
// key edgegw does not know is accepted as AWS accepts it.
func validKeyName(s string) bool {
	prefix, name, ok := strings.Cut(s, ":")
	if !ok || prefix == "" || name == "" || len(s) > 256 {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := prefix[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	for _, r := range name {
		if r <= ' ' || r == '$' || r == '{' || r == '}' || r == '*' || r == '?' {
			return false
		}
	}
	return true
}

// absentKeys are condition keys AWS documents for other requests (API calls,
// tunnels, tagging): an MQTT request never carries them, at AWS as here. Keys are
// lower case; an entry ending in "/" is a prefix.
var absentKeys = []string{
	"aws:requesttag/", "aws:resourcetag/", "aws:tagkeys", "aws:principaltag/", "aws:principalarn",
	"aws:principalaccount", "aws:principalorgid", "aws:requestedregion", "aws:sourcevpc", "aws:sourcevpce",
	"aws:sourcearn", "aws:sourceaccount", "aws:calledvia", "aws:userid", "aws:username",
	"iot:thinggrouparn", "iot:tunneldestinationservice", "iot:clientmode", "iot:delete",
}

// absentKeyNote explains, for a load note, why an unknown key is always absent.
func absentKeyNote(name string) string {
	l := strings.ToLower(name)
	for _, a := range absentKeys {
		if l == a || strings.HasSuffix(a, "/") && strings.HasPrefix(l, a) {
			return fmt.Sprintf("condition key %q is never present in an MQTT request (AWS sets it for other requests); conditions on it are evaluated with the key absent", name)
		}
	}
	msg := fmt.Sprintf("condition key %q is not one edgegw knows; as in AWS, a key the request does not carry is absent", name)
	if g := suggestKey(l); g != "" {
		msg += fmt.Sprintf(" (did you mean %s?)", g)
	}
	return msg + "; supported keys are " + supportedKeys
}

var knownKeyNames = []string{
	"iot:ClientId", "aws:SourceIp", "iot:ConnectAttributes", "iot:LastWillTopic", "iot:DomainName",
	"iot:CertificateId", "aws:SecureTransport", "iot:Connection.Thing.ThingName",
	"iot:Connection.Thing.ThingTypeName", "iot:Connection.Thing.IsAttached",
}

func suggestKey(lname string) string {
	best, bestD := "", 4
	for _, k := range knownKeyNames {
		// iot:Thing.ThingName (in some AWS pages) for iot:Connection.Thing.ThingName.
		if rest, ok := strings.CutPrefix(lname, "iot:"); ok && strings.Contains(rest, ".") &&
			strings.HasSuffix(strings.ToLower(k), "."+rest) {
			return k
		}
		if d := editDistance(lname, strings.ToLower(k)); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}
