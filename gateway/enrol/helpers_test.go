package enrol

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
	"github.com/edgegw/edgegw/gateway/pki"
)

// The AWS pages the API shape and the behaviours below come from.
const (
	pageFleetAPI  = "https://docs.aws.amazon.com/iot/latest/developerguide/fleet-provision-api.html"
	pageTemplates = "https://docs.aws.amazon.com/iot/latest/developerguide/provision-template.html"
	pageHook      = "https://docs.aws.amazon.com/iot/latest/developerguide/pre-provisioning-hook.html"
)

// site is a site CA in a temp dir with a devices.yaml, a claim certificate and a Service.
type site struct {
	t     *testing.T
	pki   pki.Options
	clock *gatewaytest.Clock
	svc   *Service
	cfg   Config
	claim Caller

	evMu   sync.Mutex
	events []Event
}

// kinds lists the kinds of the events so far, and forgets them.
func (s *site) kinds() []string {
	s.evMu.Lock()
	defer s.evMu.Unlock()
	var k []string
	for _, e := range s.events {
		k = append(k, e.Kind+":"+e.Code)
	}
	s.events = nil
	return k
}

func sensorsTemplate() Template {
	floor := "0"
	return Template{
		Name:                "sensors",
		ThingName:           "sensor-${SerialNumber}",
		Parameters:          []Parameter{{Name: "SerialNumber", Pattern: "[0-9A-F]{4,8}"}, {Name: "Floor", Default: &floor}},
		ThingType:           "temperature",
		Attributes:          map[string]string{"floor": "${Floor}", "serial": "${SerialNumber}"},
		Policies:            []string{"temperature"},
		DeviceConfiguration: map[string]string{"reportInterval": "60"},
	}
}

func newSite(t *testing.T, cfg Config) *site {
	t.Helper()
	root := t.TempDir()
	clk := gatewaytest.NewClock(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC))
	o := pki.Options{Dir: filepath.Join(root, "pki"), Devices: filepath.Join(root, "devices.yaml"), Now: clk.Now}
	if _, err := pki.Init(context.Background(), o, pki.InitOptions{Hosts: []string{"localhost"}}); err != nil {
		t.Fatalf("pki.Init: %v", err)
	}
	res, err := pki.Issue(context.Background(), o, "", pki.IssueRequest{Thing: "claim1", Kind: pki.KindClaim, Type: "claim", Policies: []string{ClaimPolicyName}})
	if err != nil {
		t.Fatalf("issuing the claim: %v", err)
	}
	if len(cfg.Templates) == 0 {
		cfg.Templates = []Template{sensorsTemplate()}
	}
	s := &site{t: t, pki: o, clock: clk, cfg: cfg}
	s.claim = Caller{ClientID: "claim1-0042", ThingName: "claim1", Claim: true, Serial: res.Bundles[0].Serial, Cert: res.Bundles[0].Cert, Source: "127.0.0.1:50000"}
	s.svc = s.open()
	return s
}

// open starts a Service on the site (again: a restart).
func (s *site) open() *Service {
	s.t.Helper()
	svc, err := New(Options{PKI: s.pki, Config: s.cfg, Now: s.clock.Now, OnEvent: func(e Event) {
		s.evMu.Lock()
		s.events = append(s.events, e)
		s.evMu.Unlock()
	}})
	if err != nil {
		s.t.Fatalf("New: %v", err)
	}
	return svc
}

// call publishes one request and returns the single response.
func (s *site) call(topic string, payload any, c Caller) Response {
	s.t.Helper()
	var b []byte
	switch p := payload.(type) {
	case []byte:
		b = p
	default:
		b, _ = json.Marshal(p)
	}
	rs := s.svc.Handle(context.Background(), Request{Topic: topic, Payload: b, Caller: c})
	if len(rs) != 1 {
		s.t.Fatalf("Handle(%s) gave %d responses; want 1", topic, len(rs))
	}
	return rs[0]
}

// accepted decodes an accepted response into v, failing on a rejected one.
func accepted(t *testing.T, r Response, request string, v any) {
	t.Helper()
	if r.Topic != request+SuffixAccepted {
		t.Fatalf("response on %s: %s; want %s", r.Topic, r.Payload, request+SuffixAccepted)
	}
	if err := json.Unmarshal(r.Payload, v); err != nil {
		t.Fatalf("accepted payload %s: %v", r.Payload, err)
	}
}

// rejected decodes a rejected response and checks its status and code.
func rejected(t *testing.T, r Response, request string, status int, code string) ErrorResponse {
	t.Helper()
	if r.Topic != request+SuffixRejected {
		t.Fatalf("response on %s: %s; want %s", r.Topic, r.Payload, request+SuffixRejected)
	}
	var e ErrorResponse
	if err := json.Unmarshal(r.Payload, &e); err != nil {
		t.Fatalf("rejected payload %s: %v", r.Payload, err)
	}
	if e.StatusCode != status || e.ErrorCode != code || e.ErrorMessage == "" {
		t.Fatalf("rejected = %+v; want statusCode %d, errorCode %s and a message", e, status, code)
	}
	return e
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func csrPEM(t testing.TB, key crypto.Signer, cn string, exts ...pkix.Extension) string {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}, ExtraExtensions: exts}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func parseCert(t testing.TB, p string) *x509.Certificate {
	t.Helper()
	blk, _ := pem.Decode([]byte(p))
	if blk == nil {
		t.Fatalf("no PEM certificate in %q", p)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (s *site) entry(serial string) pki.Entry {
	s.t.Helper()
	es, err := pki.List(s.pki)
	if err != nil {
		s.t.Fatal(err)
	}
	for _, e := range es {
		if e.Serial == serial {
			return e
		}
	}
	s.t.Fatalf("serial %s not in issued.json", serial)
	return pki.Entry{}
}

func (s *site) registry() string {
	b, err := os.ReadFile(s.pki.Devices)
	if err != nil {
		s.t.Fatal(err)
	}
	return string(b)
}

// snapshot maps every file of the PKI directory and the registry to its hash, to prove that a
// refusal wrote nothing.
func (s *site) snapshot() map[string]string {
	s.t.Helper()
	m := map[string]string{}
	files, _ := filepath.Glob(filepath.Join(s.pki.Dir, "*"))
	files = append(files, s.pki.Devices)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			m[f] = "absent"
			continue
		}
		m[f] = fmt.Sprintf("%x", sha256.Sum256(b))
	}
	return m
}

func (s *site) unchanged(before map[string]string) {
	s.t.Helper()
	after := s.snapshot()
	for f, h := range after {
		if before[f] != h {
			s.t.Errorf("%s changed (a refused request must write nothing)", f)
		}
	}
	for f := range before {
		if _, ok := after[f]; !ok {
			s.t.Errorf("%s disappeared", f)
		}
	}
}

// enrolCSR runs CreateCertificateFromCsr for cn with a new key and returns the answer.
func (s *site) enrolCSR(cn string, c Caller) CreateCertificateFromCSRResponse {
	s.t.Helper()
	var res CreateCertificateFromCSRResponse
	accepted(s.t, s.call(TopicCreateFromCSR, CreateCertificateFromCSRRequest{CertificateSigningRequest: csrPEM(s.t, newKey(s.t), cn)}, s.claimOr(c)), TopicCreateFromCSR, &res)
	return res
}

func (s *site) claimOr(c Caller) Caller {
	if c.Serial == "" {
		return s.claim
	}
	return c
}

func mustUnmarshal(t testing.TB, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}
