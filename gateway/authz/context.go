package authz

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strconv"
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
	case k.kind == kWillTopic:
		switch {
		case !c.connect:
			return nil, "present on CONNECT only"
		case !c.id.HasWill:
			return nil, "the CONNECT carries no will"
		}
		return []string{"topic/" + c.id.WillTopic}, ""
	case k.kind == kDomainName:
		if c.id.ServerName == "" {
			return nil, "the client sent no TLS server name (SNI)"
		}
		return []string{c.id.ServerName}, ""
	case k.kind == kSecureTransport:
		return []string{strconv.FormatBool(c.id.TLS)}, ""
	case k.kind == kAbsent:
		return nil, "edgegw has no value for this key in an MQTT request"
	case k.isThing():
		return c.thingValues(k)
	case k.isCert():
		return c.certValues(k)
	}
	return nil, "unsupported key"
}

// thingValues resolves an iot:Connection.Thing.* key from the attached registry thing.
func (c *bindCtx) thingValues(k *keySpec) ([]string, string) {
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
	}
	v, ok := c.thing.Attributes[k.attr]
	if !ok {
		return nil, fmt.Sprintf("thing %q has no attribute %q", c.thing.Name, k.attr)
	}
	return []string{v}, ""
}

// certValues resolves an iot:Certificate.* key from the client certificate.
// Single-valued keys (Id, SerialNumber) return directly; multi-valued ones
// (subject and issuer attributes, SANs) go through pickCertValue for .List or .N.
func (c *bindCtx) certValues(k *keySpec) ([]string, string) {
	cert := c.id.Cert
	if cert == nil {
		return nil, "no client certificate"
	}
	var all []string
	switch k.kind {
	case kCertID:
		sum := sha256.Sum256(cert.Raw)
		return []string{hex.EncodeToString(sum[:])}, ""
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
	return pickCertValue(k, all)
}

// pickCertValue applies a certificate key's selector to all of its values: .List
// keeps them all, .N (index) keeps the N-th, and either says why when there is none.
func pickCertValue(k *keySpec, all []string) ([]string, string) {
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
		return cd.evalAbsent(absent)
	}
	pv, why := cd.resolve(c)
	if why != "" {
		return false, why
	}
	// A negated operator holds for a value that matches none of the policy values;
	// with an empty policy list nothing matches, so StringEquals [] never holds and
	// StringNotEquals [] always does (IAM's set semantics).
	neg := cd.base.negated()
	if cd.set == setAll {
		for _, v := range kv {
			if cd.matchOne(v, pv) == neg {
				return false, ""
			}
		}
		return true, ""
	}
	for _, v := range kv {
		if cd.matchOne(v, pv) != neg {
			return true, ""
		}
	}
	return false, ""
}

// evalAbsent decides a condition whose key has no value in the request (why says
// why). IAM: ForAllValues holds when the request has no value for the key (the
// empty set), ForAnyValue does not; a plain operator on an absent key holds only
// with IfExists or when it is negated.
func (cd *condition) evalAbsent(why string) (bool, string) {
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
	return false, fmt.Sprintf("Condition %s %s: key absent: %s", cd.op, cd.key.name, why)
}

// policyVals are a condition's values with variables substituted, in the form its
// operator compares: strings, compiled globs, or numbers.
type policyVals struct {
	strs  []string
	globs []glob
	nums  []float64
}

// resolve substitutes the variables in the condition's values for connection c,
// or says which value does not resolve.
func (cd *condition) resolve(c *bindCtx) (policyVals, string) {
	var pv policyVals
	for i := range cd.vals {
		t := &cd.vals[i]
		switch {
		case cd.base.globbing():
			g, why := t.glob(c)
			if why != "" {
				return pv, fmt.Sprintf("Condition %s %s value %q: %s", cd.op, cd.key.name, t.raw, why)
			}
			pv.globs = append(pv.globs, g)
			if cd.key.kind == kWillTopic {
				s, _ := t.str(c)
				pv.strs = append(pv.strs, s)
			}
		case cd.base == opIPAddress, cd.base == opNotIPAddress:
		default:
			s, why := t.str(c)
			if why != "" {
				return pv, fmt.Sprintf("Condition %s %s value %q: %s", cd.op, cd.key.name, t.raw, why)
			}
			if cd.base.numeric() {
				f, err := strconv.ParseFloat(s, 64)
				if err != nil {
					return pv, fmt.Sprintf("Condition %s %s value %q: %q is not a number", cd.op, cd.key.name, t.raw, s)
				}
				pv.nums = append(pv.nums, f)
				continue
			}
			pv.strs = append(pv.strs, s)
		}
	}
	return pv, ""
}

// matchOne reports whether the request value v matches any of the policy values
// under the condition's operator (negation is applied by the caller).
func (cd *condition) matchOne(v string, pv policyVals) bool {
	if cd.key.kind == kWillTopic {
		return cd.matchWillTopic(v, pv.strs, pv.globs)
	}
	switch {
	case cd.base.globbing():
		for i := range pv.globs {
			if pv.globs[i].match("", v) {
				return true
			}
		}
	case cd.base == opIPAddress, cd.base == opNotIPAddress:
		a, err := parseIPOrCIDR(v)
		if err != nil {
			return false
		}
		for _, n := range cd.nets {
			if n.Contains(a.Addr().Unmap()) {
				return true
			}
		}
	case cd.base.numeric():
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return false
		}
		for _, n := range pv.nums {
			if compareNumber(cd.base, f, n) {
				return true
			}
		}
	case cd.base == opStringEqualsIgnoreCase, cd.base == opStringNotEqualsIgnoreCase, cd.base == opBool:
		for _, s := range pv.strs {
			if strings.EqualFold(s, v) {
				return true
			}
		}
	default:
		for _, s := range pv.strs {
			if s == v {
				return true
			}
		}
	}
	return false
}

func compareNumber(op condOp, key, val float64) bool {
	switch op {
	case opNumericEquals, opNumericNotEquals:
		return key == val
	case opNumericLessThan:
		return key < val
	case opNumericLessThanEquals:
		return key <= val
	case opNumericGreaterThan:
		return key > val
	case opNumericGreaterThanEquals:
		return key >= val
	}
	return false
}

// matchWillTopic compares the request's will topic ("topic/NAME") with the policy's
// topic ARNs. edgegw knows no region or account, so, as for Resource, only the
// service ("iot") and the resource part are checked: the request ARN is built with
// the policy value's own partition, region and account. vals are the substituted
// values; globs the same values compiled as patterns (globbing operators only).
func (cd *condition) matchWillTopic(res string, vals []string, globs []glob) bool {
	for i, v := range vals {
		if v == "*" && len(globs) > 0 {
			return true
		}
		parts := strings.SplitN(v, ":", 6)
		if len(parts) < 6 || parts[0] != "arn" || !globMatchString(parts[2], "iot") {
			continue
		}
		req := strings.Join(parts[:5], ":") + ":" + res
		switch {
		case len(globs) > 0:
			if globs[i].match("", req) {
				return true
			}
		case cd.base == opStringEqualsIgnoreCase || cd.base == opStringNotEqualsIgnoreCase:
			if strings.EqualFold(v, req) {
				return true
			}
		case v == req:
			return true
		}
	}
	return false
}
