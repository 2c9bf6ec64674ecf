package authz

import (
	"crypto/x509"
	"fmt"
	"strings"
)

// bindCtx resolves keys for one connection.
type bindCtx struct {
	id       Identity
	thing    *Thing
	thingWhy string // non-empty when thing variables do not resolve
	connect  bool   // evaluating for a CONNECT (iot:ConnectAttributes present)
}

func newBindCtx(id Identity, t *Thing) *bindCtx {
	c := &bindCtx{id: id, thing: t}
	switch {
	case t == nil:
		c.thingWhy = "no registry thing is attached to this connection"
	case id.ClientID != t.Name:
		c.thingWhy = fmt.Sprintf("client ID %q is not the thing name %q (thing variables resolve only when they are equal)", id.ClientID, t.Name)
	}
	return c
}

func (c *bindCtx) with(connect bool) *bindCtx {
	d := *c
	d.connect = connect
	return &d
}

// values returns every value of key k, or why it is absent.
func (c *bindCtx) values(k *keySpec) ([]string, string) {
	switch {
	case k.kind == kClientID:
		if c.id.ClientID == "" {
			return nil, "the client ID is empty"
		}
		return []string{c.id.ClientID}, ""
	case k.kind == kSourceIP:
		if !c.id.SourceIP.IsValid() {
			return nil, "no source address"
		}
		return []string{c.id.SourceIP.Unmap().String()}, ""
	case k.kind == kConnectAttrs:
		if !c.connect {
			return nil, "present on CONNECT only"
		}
		v := []string{}
		if !c.id.CleanSession {
			v = append(v, "PersistentConnect")
		}
		if c.id.HasWill {
			v = append(v, "LastWill")
		}
		return v, ""
	case k.isThing():
		if c.thingWhy != "" {
			return nil, c.thingWhy
		}
		switch k.kind {
		case kThingName:
			return []string{c.thing.Name}, ""
		case kThingAttached:
			return []string{"true"}, ""
		case kThingType:
			if c.thing.Type == "" {
				return nil, fmt.Sprintf("thing %q has no type", c.thing.Name)
			}
			return []string{c.thing.Type}, ""
		default:
			v, ok := c.thing.Attributes[k.attr]
			if !ok {
				return nil, fmt.Sprintf("thing %q has no attribute %q", c.thing.Name, k.attr)
			}
			return []string{v}, ""
		}
	case k.isCert():
		cert := c.id.Cert
		if cert == nil {
			return nil, "no client certificate"
		}
		var all []string
		switch k.kind {
		case kCertSerial:
			if cert.SerialNumber == nil {
				return nil, "certificate has no serial number"
			}
			return []string{cert.SerialNumber.String()}, ""
		case kCertSubject, kCertIssuer:
			names := cert.Subject.Names
			if k.kind == kCertIssuer {
				names = cert.Issuer.Names
			}
			for _, n := range names {
				if n.Type.Equal(k.oid) {
					if s, ok := n.Value.(string); ok {
						all = append(all, s)
					}
				}
			}
		case kCertSAN:
			all = sanValues(cert, k.san)
			if all == nil && (k.san == "directoryname" || k.san == "registeredid") {
				return nil, "edgegw does not read this subject alternative name type"
			}
		case kCertIAN:
			return nil, "edgegw does not read the issuer alternative name"
		}
		if k.list {
			if len(all) == 0 {
				return nil, "the certificate has no such value"
			}
			return all, ""
		}
		if k.index >= len(all) {
			if len(all) == 0 {
				return nil, "the certificate has no such value"
			}
			return nil, fmt.Sprintf("the certificate has %d such value(s); .%d asks for value #%d", len(all), k.index, k.index+1)
		}
		return all[k.index : k.index+1], ""
	}
	return nil, "unsupported key"
}

func sanValues(cert *x509.Certificate, field string) []string {
	var out []string
	switch field {
	case "dnsname":
		out = append(out, cert.DNSNames...)
	case "rfc822name":
		out = append(out, cert.EmailAddresses...)
	case "uniformresourceidentifier":
		for _, u := range cert.URIs {
			out = append(out, u.String())
		}
	case "ipaddress":
		for _, ip := range cert.IPAddresses {
			out = append(out, ip.String())
		}
	}
	return out
}

// maxSubstitution is AWS's limit on a certificate value substituted for a variable.
const maxSubstitution = 1024

// substitute resolves k as a variable: a single value, with AWS's rule that a
// certificate value containing any of `* $ + ? #` or longer than 1024 characters
// is not substituted.
func (c *bindCtx) substitute(k *keySpec) (string, string) {
	vals, why := c.values(k)
	if why != "" {
		return "", why
	}
	if len(vals) == 0 {
		return "", "no value"
	}
	v := vals[0]
	if k.isCert() {
		if strings.ContainsAny(v, "*$+?#") {
			return "", fmt.Sprintf("certificate value %q contains one of * $ + ? # and is not substituted", v)
		}
		if len(v) > maxSubstitution {
			return "", fmt.Sprintf("certificate value is longer than %d characters and is not substituted", maxSubstitution)
		}
	}
	return v, ""
}

// evalConds evaluates a statement's conditions; all must hold.
func evalConds(conds []*condition, c *bindCtx) (bool, string) {
	for _, cd := range conds {
		ok, why := cd.eval(c)
		if !ok {
			if why == "" {
				why = fmt.Sprintf("Condition %s %s does not hold", cd.op, cd.key.name)
			}
			return false, why
		}
	}
	return true, ""
}

func (cd *condition) eval(c *bindCtx) (bool, string) {
	kv, absent := c.values(cd.key)
	present := absent == ""
	if cd.base == opNull {
		want := strings.EqualFold(cd.vals[0].raw, "true")
		return !present == want, ""
	}
	if !present || len(kv) == 0 {
		switch {
		case cd.set == setAll:
			return true, ""
		case cd.set == setAny:
			return false, ""
		case cd.ifExists:
			return true, ""
		case cd.base.negated():
			return true, ""
		}
		return false, fmt.Sprintf("Condition %s %s: key absent: %s", cd.op, cd.key.name, absent)
	}
	// Resolve the condition values (variables substituted).
	var strs []string
	var globs []glob
	for i := range cd.vals {
		t := &cd.vals[i]
		switch cd.base {
		case opStringLike, opStringNotLike, opArnLike, opArnNotLike:
			g, why := t.glob(c)
			if why != "" {
				return false, fmt.Sprintf("Condition %s %s value %q: %s", cd.op, cd.key.name, t.raw, why)
			}
			globs = append(globs, g)
		case opIPAddress, opNotIPAddress:
		default:
			s, why := t.str(c)
			if why != "" {
				return false, fmt.Sprintf("Condition %s %s value %q: %s", cd.op, cd.key.name, t.raw, why)
			}
			strs = append(strs, s)
		}
	}
	matchOne := func(v string) bool {
		switch cd.base {
		case opStringLike, opStringNotLike, opArnLike, opArnNotLike:
			for i := range globs {
				if globs[i].match("", v) {
					return true
				}
			}
		case opIPAddress, opNotIPAddress:
			a, err := parseIPOrCIDR(v)
			if err != nil {
				return false
			}
			for _, n := range cd.nets {
				if n.Contains(a.Addr().Unmap()) {
					return true
				}
			}
		case opStringEqualsIgnoreCase, opStringNotEqualsIgnoreCase, opBool:
			for _, s := range strs {
				if strings.EqualFold(s, v) {
					return true
				}
			}
		default:
			for _, s := range strs {
				if s == v {
					return true
				}
			}
		}
		return false
	}
	neg := cd.base.negated()
	if cd.set == setAll {
		for _, v := range kv {
			if matchOne(v) == neg {
				return false, ""
			}
		}
		return true, ""
	}
	for _, v := range kv {
		if matchOne(v) != neg {
			return true, ""
		}
	}
	return false, ""
}
