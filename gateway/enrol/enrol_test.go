package enrol

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/pki"
)

// The whole claim flow of the fleet-provisioning API (pageFleetAPI): CreateCertificateFromCsr
// answers with certificateId, certificatePem and certificateOwnershipToken; the certificate
// is pending (AWS: PENDING_ACTIVATION) until RegisterThing, which answers thingName and
// deviceConfiguration and writes the registry entry; the token is single use.
func TestClaimEnrolment(t *testing.T) {
	s := newSite(t, Config{})
	key := newKey(t)
	var cr CreateCertificateFromCSRResponse
	accepted(t, s.call(TopicCreateFromCSR, CreateCertificateFromCSRRequest{CertificateSigningRequest: csrPEM(t, key, "sensor-00AB")}, s.claim), TopicCreateFromCSR, &cr)

	cert := parseCert(t, cr.CertificatePem)
	if h := sha256.Sum256(cert.Raw); cr.CertificateID != hex.EncodeToString(h[:]) {
		t.Errorf("certificateId = %s; want the SHA-256 of the certificate (%s)", cr.CertificateID, pageFleetAPI)
	}
	if cert.Subject.CommonName != "sensor-00AB" || !cert.PublicKey.(*ecdsa.PublicKey).Equal(key.Public()) {
		t.Errorf("certificate CN %q or key is not the CSR's", cert.Subject.CommonName)
	}
	if IsClaimCert(cert) {
		t.Error("an enrolled device certificate is marked as a claim")
	}
	if !IsClaimCert(s.claim.Cert) {
		t.Error("the claim certificate is not recognised as a claim")
	}
	if len(cr.CertificateOwnershipToken) < 40 {
		t.Errorf("token %q is too short to be unguessable", cr.CertificateOwnershipToken)
	}
	serial := pki.SerialHex(cert.SerialNumber)
	if e := s.entry(serial); e.Status != pki.StatusPending {
		t.Errorf("after CreateCertificateFromCsr the certificate is %s; want %s", e.Status, pki.StatusPending)
	}
	if strings.Contains(s.registry(), "sensor-00AB") {
		t.Error("the registry has the thing before RegisterThing")
	}
	st, _ := os.ReadFile(filepath.Join(s.pki.Dir, StateFile))
	if strings.Contains(string(st), cr.CertificateOwnershipToken) {
		t.Error("the ownership token itself is stored in enrol.json")
	}

	prov := ProvisionTopic("sensors")
	reg := RegisterThingRequest{CertificateOwnershipToken: cr.CertificateOwnershipToken, Parameters: map[string]string{"SerialNumber": "00AB", "Floor": "3"}}
	var rr RegisterThingResponse
	accepted(t, s.call(prov, reg, s.claim), prov, &rr)
	if rr.ThingName != "sensor-00AB" || rr.DeviceConfiguration["reportInterval"] != "60" {
		t.Errorf("RegisterThing accepted = %+v; want thingName sensor-00AB and the template's deviceConfiguration (%s)", rr, pageTemplates)
	}
	if e := s.entry(serial); e.Status != pki.StatusActive || e.Type != "temperature" {
		t.Errorf("after RegisterThing: status %s type %q; want active, temperature", e.Status, e.Type)
	}
	for _, want := range []string{"name: sensor-00AB", "type: temperature", `floor: "3"`, `serial: "00AB"`, "temperature]"} {
		if !strings.Contains(s.registry(), want) {
			t.Errorf("registry lacks %q:\n%s", want, s.registry())
		}
	}
	// Single use.
	before := s.snapshot()
	rejected(t, s.call(prov, reg, s.claim), prov, 400, CodeInvalidToken)
	s.unchanged(before)
	if got, want := strings.Join(s.kinds(), " "), "enrol_issued: enrol_registered: enrol_refused:"+CodeInvalidToken; got != want {
		t.Errorf("events = %s; want %s", got, want)
	}
}

// A token expires after Config.TokenTTL (AWS: one hour, pageFleetAPI); the pending
// certificate is then revoked by Sweep, as AWS deletes it.
func TestTokenExpires(t *testing.T) {
	s := newSite(t, Config{})
	cr := s.enrolCSR("sensor-1234", Caller{})
	serial := pki.SerialHex(parseCert(t, cr.CertificatePem).SerialNumber)
	s.clock.Advance(DefaultTokenTTL)
	prov := ProvisionTopic("sensors")
	rejected(t, s.call(prov, RegisterThingRequest{CertificateOwnershipToken: cr.CertificateOwnershipToken, Parameters: map[string]string{"SerialNumber": "1234"}}, s.claim), prov, 400, CodeInvalidToken)

	res, err := s.svc.Sweep(context.Background(), s.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if res.ExpiredTokens != 1 || len(res.Abandoned) != 1 || res.Abandoned[0] != serial {
		t.Fatalf("Sweep = %+v; want one expired token and %s abandoned", res, serial)
	}
	if e := s.entry(serial); e.Status != pki.StatusRevoked {
		t.Errorf("abandoned certificate is %s; want revoked", e.Status)
	}
	crl, err := pki.LoadCRL(filepath.Join(s.pki.Dir, pki.CRLFile), filepath.Join(s.pki.Dir, pki.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	if !crl.Revoked(parseCert(t, cr.CertificatePem).SerialNumber) {
		t.Error("the abandoned certificate is not on the CRL")
	}
}

// A token is bound to the connection that asked for it, and survives a restart.
func TestTokenBinding(t *testing.T) {
	s := newSite(t, Config{})
	cr := s.enrolCSR("sensor-5678", Caller{})
	prov := ProvisionTopic("sensors")
	reg := RegisterThingRequest{CertificateOwnershipToken: cr.CertificateOwnershipToken, Parameters: map[string]string{"SerialNumber": "5678"}}
	other := s.claim
	other.ClientID = "claim1-0043"
	before := s.snapshot()
	rejected(t, s.call(prov, reg, other), prov, 400, CodeInvalidToken)
	s.unchanged(before)

	s.svc = s.open() // restart: the token is in enrol.json
	var rr RegisterThingResponse
	accepted(t, s.call(prov, reg, s.claim), prov, &rr)
	if rr.ThingName != "sensor-5678" {
		t.Errorf("thingName = %q; want sensor-5678", rr.ThingName)
	}
}

// Every CSR refusal answers InvalidCSR (or InvalidPayload for what is no CSR at all) and writes
// nothing: not the registry, not issued.json, not the CRL, not enrol.json.
func TestCSRRefusals(t *testing.T) {
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	bcCA, _ := asn1.Marshal(struct {
		IsCA bool `asn1:"optional"`
	}{true})
	kuCertSign, _ := asn1.Marshal(asn1.BitString{Bytes: []byte{0x04}, BitLength: 6}) // keyCertSign
	good := csrPEM(t, newKey(t), "sensor-00AB")
	blk, _ := pem.Decode([]byte(good))
	tampered := append([]byte(nil), blk.Bytes...)
	tampered[len(tampered)-3] ^= 0xff // inside the signature
	badSig := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: tampered}))

	s := newSite(t, Config{})
	// A registered device for the renewal cases.
	dev, err := pki.Issue(context.Background(), s.pki, "", pki.IssueRequest{Thing: "sensor-0001"})
	if err != nil {
		t.Fatal(err)
	}
	device := Caller{ClientID: "sensor-0001", ThingName: "sensor-0001", Serial: dev.Bundles[0].Serial}

	for _, tc := range []struct {
		name   string
		caller Caller
		csr    string
		code   string
		msg    string
	}{
		{"claim: CN no template gives", s.claim, csrPEM(t, newKey(t), "pump-7"), CodeInvalidCSR, `CN "pump-7" is no thing name`},
		{"claim: CN not a thing name", s.claim, csrPEM(t, newKey(t), "sensor 1"), CodeInvalidCSR, "must be the thing name"},
		{"claim: CN of a thing in use", s.claim, csrPEM(t, newKey(t), "sensor-0001"), CodeConflict, "already has an active certificate"},
		{"renewal: CN of another thing", device, csrPEM(t, newKey(t), "sensor-0002"), CodeInvalidCSR, `its subject CN is "sensor-0002" but this certificate's thing is "sensor-0001"`},
		{"RSA-1024", s.claim, csrPEM(t, rsa1024, "sensor-00AB"), CodeInvalidCSR, "RSA key of 1024 bits is not accepted"},
		{"Ed25519", s.claim, csrPEM(t, ed, "sensor-00AB"), CodeInvalidCSR, "Ed25519 keys are not accepted"},
		{"CA:true", s.claim, csrPEM(t, newKey(t), "sensor-00AB", pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Critical: true, Value: bcCA}), CodeInvalidCSR, "basicConstraints CA:TRUE"},
		{"keyCertSign", s.claim, csrPEM(t, newKey(t), "sensor-00AB", pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 15}, Critical: true, Value: kuCertSign}), CodeInvalidCSR, "keyCertSign"},
		{"bad signature", s.claim, badSig, CodeInvalidCSR, "signature does not verify"},
		{"not a CSR", s.claim, "hello", CodeInvalidCSR, "not a readable PKCS#10 request"},
		{"a certificate instead", s.claim, string(dev.Bundles[0].CertPEM), CodeInvalidCSR, `PEM block is "CERTIFICATE"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := s.snapshot()
			status := 400
			if tc.code == CodeConflict {
				status = 409
			}
			e := rejected(t, s.call(TopicCreateFromCSR, CreateCertificateFromCSRRequest{CertificateSigningRequest: tc.csr}, tc.caller), TopicCreateFromCSR, status, tc.code)
			if !strings.Contains(e.ErrorMessage, tc.msg) {
				t.Errorf("errorMessage = %q; want it to say %q", e.ErrorMessage, tc.msg)
			}
			s.unchanged(before)
			s.clock.Advance(time.Minute) // stay inside the rate limit
		})
	}
}

// RegisterThing refusals after a good CreateCertificateFromCsr write nothing either.
func TestRegisterThingRefusals(t *testing.T) {
	s := newSite(t, Config{})
	cr := s.enrolCSR("sensor-00AB", Caller{})
	prov := ProvisionTopic("sensors")
	for _, tc := range []struct {
		name    string
		topic   string
		payload any
		status  int
		code    string
		msg     string
	}{
		{"thing name is not the CN", prov, RegisterThingRequest{CertificateOwnershipToken: cr.CertificateOwnershipToken, Parameters: map[string]string{"SerialNumber": "00AC"}}, 400, CodeInvalidParameters, `gives the thing name "sensor-00AC" but the certificate's CN is "sensor-00AB"`},
		{"unknown parameter", prov, RegisterThingRequest{CertificateOwnershipToken: cr.CertificateOwnershipToken, Parameters: map[string]string{"SerialNumber": "00AB", "Room": "1"}}, 400, CodeInvalidParameters, `"Room" is not one of`},
		{"missing parameter", prov, RegisterThingRequest{CertificateOwnershipToken: cr.CertificateOwnershipToken}, 400, CodeInvalidParameters, `"SerialNumber" is required`},
		{"parameter off its pattern", prov, RegisterThingRequest{CertificateOwnershipToken: cr.CertificateOwnershipToken, Parameters: map[string]string{"SerialNumber": "00ab"}}, 400, CodeInvalidParameters, "does not match"},
		{"unknown template", ProvisionTopic("pumps"), RegisterThingRequest{CertificateOwnershipToken: cr.CertificateOwnershipToken}, 404, CodeNotFound, `"pumps"`},
		{"unknown token", prov, RegisterThingRequest{CertificateOwnershipToken: "x" + cr.CertificateOwnershipToken}, 400, CodeInvalidToken, "unknown"},
		{"no token", prov, map[string]any{"parameters": map[string]string{}}, 400, CodeInvalidPayload, "certificateOwnershipToken is missing"},
		{"not JSON", prov, []byte("{"), 400, CodeInvalidPayload, "not the request's JSON"},
		{"parameters not strings", prov, []byte(`{"certificateOwnershipToken":"a","parameters":{"a":1}}`), 400, CodeInvalidPayload, "not the request's JSON"},
		{"CreateKeysAndCertificate", TopicCreateKeys, map[string]any{}, 400, CodeNotSupported, "never makes a device's private key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := s.snapshot()
			e := rejected(t, s.call(tc.topic, tc.payload, s.claim), tc.topic, tc.status, tc.code)
			if !strings.Contains(e.ErrorMessage, tc.msg) {
				t.Errorf("errorMessage = %q; want it to say %q", e.ErrorMessage, tc.msg)
			}
			s.unchanged(before)
			s.clock.Advance(time.Minute)
		})
	}
	// The token was not spent by the refusals.
	var rr RegisterThingResponse
	accepted(t, s.call(prov, RegisterThingRequest{CertificateOwnershipToken: cr.CertificateOwnershipToken, Parameters: map[string]string{"SerialNumber": "00AB"}}, s.claim), prov, &rr)
}

// Renewal: a device with its own certificate gets a new one for the same thing; both are active
// (pki list shows both) until the new one connects, then the next Sweep revokes the old one as
// superseded.
func TestRenewalRevokesOldAfterConnected(t *testing.T) {
	s := newSite(t, Config{})
	dev, err := pki.Issue(context.Background(), s.pki, "", pki.IssueRequest{Thing: "sensor-0001", Type: "temperature"})
	if err != nil {
		t.Fatal(err)
	}
	old := dev.Bundles[0]
	device := Caller{ClientID: "sensor-0001", ThingName: "sensor-0001", Serial: old.Serial, Cert: old.Cert}
	regBefore := s.registry()
	cr := s.enrolCSR("sensor-0001", device)
	newCert := parseCert(t, cr.CertificatePem)
	ns := pki.SerialHex(newCert.SerialNumber)
	if e := s.entry(ns); e.Status != pki.StatusActive || e.Renews != old.Serial || e.Type != "temperature" {
		t.Errorf("new entry = %+v; want active, renewing %s, type temperature", e, old.Serial)
	}
	if e := s.entry(old.Serial); e.Status != pki.StatusActive {
		t.Errorf("old certificate is %s before the new one connected; want active", e.Status)
	}
	if s.registry() != regBefore {
		t.Error("a renewal changed the registry")
	}
	// Connections of other certificates change nothing.
	if err := s.svc.Connected(context.Background(), old.Serial); err != nil {
		t.Fatal(err)
	}
	if e := s.entry(old.Serial); e.Status != pki.StatusActive {
		t.Fatalf("old certificate is %s after the old one reconnected; want active", e.Status)
	}
	// RegisterThing after a renewal (as AWS SDK samples do) answers without changing anything.
	prov := ProvisionTopic("sensors")
	var rr RegisterThingResponse
	accepted(t, s.call(prov, RegisterThingRequest{CertificateOwnershipToken: cr.CertificateOwnershipToken, Parameters: map[string]string{"SerialNumber": "0001"}}, device), prov, &rr)
	if rr.ThingName != "sensor-0001" {
		t.Errorf("thingName = %q", rr.ThingName)
	}

	s.svc = s.open() // the renewal waiting for its new certificate survives a restart
	if err := s.svc.Connected(context.Background(), strings.ToUpper(ns)); err != nil {
		t.Fatal(err)
	}
	if e := s.entry(old.Serial); e.Status != pki.StatusActive {
		t.Fatalf("old certificate is %s before the sweep; want active", e.Status)
	}
	res, err := s.svc.Sweep(context.Background(), s.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Superseded) != 1 || res.Superseded[0] != old.Serial {
		t.Fatalf("Sweep = %+v; want %s superseded", res, old.Serial)
	}
	if e := s.entry(old.Serial); e.Status != pki.StatusRevoked || e.Reason != "superseded" {
		t.Errorf("old certificate = %s (%s) after the new one connected; want revoked (superseded)", e.Status, e.Reason)
	}
	crl, err := pki.LoadCRL(filepath.Join(s.pki.Dir, pki.CRLFile), filepath.Join(s.pki.Dir, pki.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	if code, ok := crl.Reason(old.Cert.SerialNumber); !ok || code != pki.Reasons["superseded"] {
		t.Errorf("CRL reason for the old serial = %d, %v; want %d (superseded)", code, ok, pki.Reasons["superseded"])
	}
	if crl.Revoked(newCert.SerialNumber) {
		t.Error("the new certificate is on the CRL")
	}
}

// Without a connection of the new certificate, the old one is revoked after the grace period.
func TestRenewalGrace(t *testing.T) {
	s := newSite(t, Config{RenewalGrace: 48 * time.Hour})
	dev, err := pki.Issue(context.Background(), s.pki, "", pki.IssueRequest{Thing: "sensor-0002"})
	if err != nil {
		t.Fatal(err)
	}
	old := dev.Bundles[0]
	device := Caller{ClientID: "sensor-0002", ThingName: "sensor-0002", Serial: old.Serial}
	s.enrolCSR("sensor-0002", device)
	s.clock.Advance(47 * time.Hour)
	if res, err := s.svc.Sweep(context.Background(), s.clock.Now()); err != nil || len(res.Superseded) != 0 {
		t.Fatalf("Sweep before the grace period = %+v, %v; want nothing revoked", res, err)
	}
	s.clock.Advance(time.Hour)
	res, err := s.svc.Sweep(context.Background(), s.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Superseded) != 1 || res.Superseded[0] != old.Serial {
		t.Fatalf("Sweep after the grace period = %+v; want %s superseded", res, old.Serial)
	}
	if e := s.entry(old.Serial); e.Status != pki.StatusRevoked || e.Reason != "superseded" {
		t.Errorf("old certificate = %s (%s); want revoked (superseded)", e.Status, e.Reason)
	}
	// A revoked certificate cannot renew.
	before := s.snapshot()
	rejected(t, s.call(TopicCreateFromCSR, CreateCertificateFromCSRRequest{CertificateSigningRequest: csrPEM(t, newKey(t), "sensor-0002")}, device), TopicCreateFromCSR, 403, CodeAccessDenied)
	s.unchanged(before)
}

// Each certificate has its own token bucket.
func TestRateLimit(t *testing.T) {
	s := newSite(t, Config{RateLimit: RateLimit{Burst: 2, Every: time.Minute}})
	bad := CreateCertificateFromCSRRequest{CertificateSigningRequest: "x"}
	for range 2 {
		rejected(t, s.call(TopicCreateFromCSR, bad, s.claim), TopicCreateFromCSR, 400, CodeInvalidCSR)
	}
	rejected(t, s.call(TopicCreateFromCSR, bad, s.claim), TopicCreateFromCSR, 429, CodeThrottled)
	other := s.claim
	other.Serial = "ab" + other.Serial // another claim certificate has its own bucket
	rejected(t, s.call(TopicCreateFromCSR, bad, other), TopicCreateFromCSR, 400, CodeInvalidCSR)
	s.clock.Advance(time.Minute)
	rejected(t, s.call(TopicCreateFromCSR, bad, s.claim), TopicCreateFromCSR, 400, CodeInvalidCSR)
	rejected(t, s.call(TopicCreateFromCSR, bad, s.claim), TopicCreateFromCSR, 429, CodeThrottled)
}

// The pre-provisioning hook (pageHook) reads the Lambda's input on stdin and answers with
// allowProvisioning and parameterOverrides; a refusal, a failure or a timeout refuses the
// device with nothing written.
func TestPreProvisioningHook(t *testing.T) {
	dir := t.TempDir()
	script := func(name, body string) []string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return []string{p}
	}
	input := filepath.Join(dir, "input.json")
	for _, tc := range []struct {
		name    string
		cmd     []string
		allowed bool
		floor   string
	}{
		{"allows and overrides", script("allow.sh", `cat > `+input+`; echo '{"allowProvisioning": true, "parameterOverrides": {"Floor": "9"}}'`), true, "9"},
		{"refuses", script("deny.sh", `cat >/dev/null; echo '{"allowProvisioning": false}'`), false, ""},
		{"says nothing", script("silent.sh", `cat >/dev/null`), false, ""},
		{"fails", script("fail.sh", `echo '{"allowProvisioning": true}'; exit 3`), false, ""},
		{"too slow", script("slow.sh", `sleep 30; echo '{"allowProvisioning": true}'`), false, ""},
		{"bad override", script("badover.sh", `cat >/dev/null; echo '{"allowProvisioning": true, "parameterOverrides": {"Floor": "a b"}}'`), false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmpl := sensorsTemplate()
			tmpl.PreProvisioningHook = &Hook{Command: tc.cmd, Timeout: 2 * time.Second} // generous: the machine is shared
			s := newSite(t, Config{Templates: []Template{tmpl}})
			cr := s.enrolCSR("sensor-00AB", Caller{})
			prov := ProvisionTopic("sensors")
			req := RegisterThingRequest{CertificateOwnershipToken: cr.CertificateOwnershipToken, Parameters: map[string]string{"SerialNumber": "00AB"}}
			before := s.snapshot()
			r := s.call(prov, req, s.claim)
			if !tc.allowed {
				code, status := CodeAccessDenied, 403
				if tc.name == "bad override" {
					code, status = CodeInvalidParameters, 400
				}
				rejected(t, r, prov, status, code)
				s.unchanged(before)
				return
			}
			var rr RegisterThingResponse
			accepted(t, r, prov, &rr)
			if !strings.Contains(s.registry(), `floor: "`+tc.floor+`"`) {
				t.Errorf("registry does not carry the hook's override floor %s:\n%s", tc.floor, s.registry())
			}
			var in HookInput
			b, err := os.ReadFile(input)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &in); err != nil {
				t.Fatal(err)
			}
			claimID := sha256.Sum256(s.claim.Cert.Raw)
			if in.CertificateID != cr.CertificateID || in.ClaimCertificateID != hex.EncodeToString(claimID[:]) || in.ClientID != "claim1-0042" ||
				in.Parameters["SerialNumber"] != "00AB" || !strings.HasSuffix(in.TemplateArn, ":provisioningtemplate/sensors") || !strings.Contains(in.CertificatePem, "BEGIN CERTIFICATE") {
				t.Errorf("hook input = %+v; want the Lambda's input fields (%s)", in, pageHook)
			}
		})
	}
}

func TestHandlesOnlyItsTopics(t *testing.T) {
	s := newSite(t, Config{})
	for _, topic := range []string{"a/b", "$aws/certificates/create-from-csr/xml", "$aws/provisioning-templates/x/provision", "$aws/provisioning-templates//provision/json", TopicCreateFromCSR + SuffixAccepted, CBOR(TopicCreateFromCSR) + SuffixAccepted} {
		if Handles(topic) {
			t.Errorf("Handles(%q) = true; want false", topic)
		}
		if rs := s.svc.Handle(context.Background(), Request{Topic: topic, Caller: s.claim}); rs != nil {
			t.Errorf("Handle(%q) = %v; want nil", topic, rs)
		}
	}
	for _, topic := range []string{TopicCreateFromCSR, TopicCreateKeys, ProvisionTopic("sensors"), CBOR(TopicCreateFromCSR), CBOR(TopicCreateKeys), CBOR(ProvisionTopic("sensors"))} {
		if !Handles(topic) {
			t.Errorf("Handles(%q) = false; want true", topic)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	def := "x y"
	for _, tc := range []struct {
		name string
		tmpl Template
		want string
	}{
		{"no name", Template{ThingName: "a"}, "templates[0].name"},
		{"no thing name", Template{Name: "t"}, "thing_name: empty"},
		{"unknown reference", Template{Name: "t", ThingName: "s-${Serial}"}, "${Serial} is neither a parameter"},
		{"bad pattern", Template{Name: "t", ThingName: "a", Parameters: []Parameter{{Name: "p", Pattern: "("}}}, "parameters[0].pattern"},
		{"default off pattern", Template{Name: "t", ThingName: "a", Parameters: []Parameter{{Name: "p", Default: &def}}}, "default"},
		{"reserved parameter", Template{Name: "t", ThingName: "a", Parameters: []Parameter{{Name: "AWS::X"}}}, "AWS:: names are built in"},
		{"hook without command", Template{Name: "t", ThingName: "a", PreProvisioningHook: &Hook{}}, "pre_provisioning_hook.command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{Templates: []Template{tc.tmpl}}
			err := c.Validate("enrolment")
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "enrolment.") {
				t.Fatalf("Validate = %v; want an error about %q under enrolment.", err, tc.want)
			}
		})
	}
	hooked := sensorsTemplate()
	hooked.Name, hooked.PreProvisioningHook = "hooked", &Hook{Command: []string{"/bin/true"}}
	orig := Config{Templates: []Template{sensorsTemplate(), hooked}}
	if err := orig.Validate("enrolment"); err != nil {
		t.Fatal(err)
	}
	// Validate writes nothing into the caller's section (a parsed config file), not even
	// through the templates and hooks it shares with it.
	if orig.TokenTTL != 0 || orig.RateLimit.Burst != 0 || orig.Templates[0].thingRE != nil || orig.Templates[0].params != nil ||
		orig.Templates[1].PreProvisioningHook.Timeout != 0 {
		t.Errorf("Validate changed its receiver's section: %+v", orig)
	}
	c, err := orig.prepared("enrolment")
	if err != nil {
		t.Fatal(err)
	}
	if c.TokenTTL != DefaultTokenTTL || c.Templates[1].PreProvisioningHook.Timeout != DefaultHookTimeout || c.RenewalGrace != DefaultRenewalGrace || c.RateLimit.Burst != DefaultBurst {
		t.Errorf("defaults not filled: %+v", c)
	}
	for cn, want := range map[string]bool{"sensor-00AB": true, "sensor-00ab": false, "sensor-": false, "xsensor-0000": false, "sensor-0000x": false} {
		if got := c.Templates[0].thingRE.MatchString(cn); got != want {
			t.Errorf("template accepts CN %q = %v; want %v", cn, got, want)
		}
	}
}

// Outside input: the request payloads must never panic the parser, and anything accepted
// has its required fields.
func FuzzParseRequests(f *testing.F) {
	f.Add([]byte(`{"certificateSigningRequest":"-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"}`))
	f.Add([]byte(`{"certificateOwnershipToken":"abc","parameters":{"SerialNumber":"00AB"}}`))
	f.Add([]byte(`{"parameters":{"a":1}}`))
	f.Add([]byte(`{} {}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if r, err := parseCreateFromCSR(data); err == nil && r.CertificateSigningRequest == "" {
			t.Fatal("accepted a CreateCertificateFromCsr request without a CSR")
		}
		if r, err := parseRegisterThing(data); err == nil && (r.CertificateOwnershipToken == "" || len(r.Parameters) > 64) {
			t.Fatalf("accepted a RegisterThing request %+v", r)
		}
	})
}

// A device that asked twice (it lost the first answer) and connects with the second
// certificate: the old one and the unused first answer are both revoked as superseded, in one
// sweep with another device's renewal.
func TestRenewalAskedTwice(t *testing.T) {
	s := newSite(t, Config{})
	ctx := context.Background()
	res, err := pki.Issue(ctx, s.pki, "", pki.IssueRequest{Thing: "sensor-0003"}, pki.IssueRequest{Thing: "sensor-0004"})
	if err != nil {
		t.Fatal(err)
	}
	a, b := res.Bundles[0], res.Bundles[1]
	ca := Caller{ClientID: a.Thing, ThingName: a.Thing, Serial: a.Serial}
	cb := Caller{ClientID: b.Thing, ThingName: b.Thing, Serial: b.Serial}
	first := pki.SerialHex(parseCert(t, s.enrolCSR(a.Thing, ca).CertificatePem).SerialNumber)
	second := pki.SerialHex(parseCert(t, s.enrolCSR(a.Thing, ca).CertificatePem).SerialNumber)
	bNew := pki.SerialHex(parseCert(t, s.enrolCSR(b.Thing, cb).CertificatePem).SerialNumber)
	for _, sn := range []string{second, bNew} {
		if err := s.svc.Connected(ctx, sn); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := pki.LoadCRL(filepath.Join(s.pki.Dir, pki.CRLFile), filepath.Join(s.pki.Dir, pki.CACertFile))
	sw, err := s.svc.Sweep(ctx, s.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(sw.Superseded) != 2 || len(sw.Unused) != 1 || sw.Unused[0] != first {
		t.Fatalf("Sweep = %+v; want 2 superseded and %s unused", sw, first)
	}
	after, _ := pki.LoadCRL(filepath.Join(s.pki.Dir, pki.CRLFile), filepath.Join(s.pki.Dir, pki.CACertFile))
	if n := after.Number.Int64() - before.Number.Int64(); n != 1 {
		t.Errorf("the sweep signed %d CRLs; want 1", n)
	}
	want := map[string]pki.Status{a.Serial: pki.StatusRevoked, first: pki.StatusRevoked, second: pki.StatusActive, b.Serial: pki.StatusRevoked, bNew: pki.StatusActive}
	for sn, st := range want {
		if e := s.entry(sn); e.Status != st {
			t.Errorf("%s (%s) is %s; want %s", sn, e.Thing, e.Status, st)
		}
	}
	if k := s.kinds(); len(k) != 6 || k[3] != EventSuperseded+":" || k[5] != EventSuperseded+":" {
		t.Errorf("events = %v; want 3 issued, then 3 superseded", k)
	}
	if sw, _ := s.svc.Sweep(ctx, s.clock.Now()); len(sw.Superseded) != 0 {
		t.Errorf("a second sweep revoked %v again", sw.Superseded)
	}
}

// Connected never waits for a request in progress: the mark is kept for the next Sweep.
func TestConnectedDoesNotBlock(t *testing.T) {
	s := newSite(t, Config{})
	ctx := context.Background()
	dev, err := pki.Issue(ctx, s.pki, "", pki.IssueRequest{Thing: "sensor-0005"})
	if err != nil {
		t.Fatal(err)
	}
	old := dev.Bundles[0]
	ns := pki.SerialHex(parseCert(t, s.enrolCSR(old.Thing, Caller{ClientID: old.Thing, ThingName: old.Thing, Serial: old.Serial}).CertificatePem).SerialNumber)
	s.svc.mu.Lock() // a request in progress (a slow pre-provisioning hook)
	done := make(chan error, 1)
	go func() { done <- s.svc.Connected(ctx, ns) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Connected waited for the Service's lock")
	}
	s.svc.mu.Unlock()
	res, err := s.svc.Sweep(ctx, s.clock.Now())
	if err != nil || len(res.Superseded) != 1 || res.Superseded[0] != old.Serial {
		t.Fatalf("Sweep = %+v, %v; want %s superseded", res, err, old.Serial)
	}
}
