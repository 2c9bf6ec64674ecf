package enrol

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegw/edgegw/gateway/pki"
)

// Caller is who published a request, as the broker established it at CONNECT.
type Caller struct {
	ClientID string
	// ThingName is the thing name the broker derived from the client certificate; for a
	// claim certificate it is the claim's name.
	ThingName string
	// Claim: the client certificate is a claim certificate (IsClaimCert).
	Claim bool
	// Serial is the client certificate's serial in hex, as pki.SerialHex prints it.
	Serial string
	// Cert is the client certificate (optional: it gives the hook its claimCertificateId).
	Cert *x509.Certificate
	// Source is the remote address, for the log.
	Source string
}

// Request is one PUBLISH to a request topic (see Filters).
type Request struct {
	Topic   string
	Payload []byte
	Caller  Caller
}

// Response is one message to publish to the requesting connection only (never fanned out to
// other subscribers: it can carry an ownership token).
type Response struct {
	Topic   string
	Payload []byte
}

// Options configure a Service.
type Options struct {
	PKI    pki.Options // the site CA; PKI.Devices is the registry RegisterThing writes to
	Config Config      // validated by New, which keeps a copy with the defaults filled in
	Logger *slog.Logger
	Now    func() time.Time // default time.Now
	// OnEvent, when set, is called for every outcome the audit log and metrics want (after
	// the state is written; never with a token or payload). It must not block.
	OnEvent func(Event)
}

// Event kinds.
const (
	EventIssued     = "enrol_issued"     // a certificate was signed from a CSR (claim or renewal)
	EventRegistered = "enrol_registered" // RegisterThing activated a thing (or confirmed a renewal)
	EventRefused    = "enrol_refused"    // a request was rejected; Code says why
	EventSuperseded = "enrol_superseded" // Sweep revoked a renewed (or unused) certificate
	EventAbandoned  = "enrol_abandoned"  // Sweep revoked a pending certificate whose token expired
)

// Event is one enrolment outcome, for the audit log and metrics.
type Event struct {
	Kind     string
	Device   string // thing name (the claim's name for a refused claim request)
	ClientID string
	Serial   string // the certificate concerned (issued, registered or revoked)
	Caller   string // serial of the calling certificate, for requests
	Renewal  bool
	Code     string // errorCode of a refusal
	Reason   string // errorMessage of a refusal
}

func (s *Service) emit(e Event) {
	s.counters.event(e) // stats.go
	if s.o.OnEvent != nil {
		s.o.OnEvent(e)
	}
}

// Service answers the device provisioning MQTT API. It does no MQTT I/O: the broker hands it
// requests and publishes what it returns. Safe for concurrent use: requests are checked
// concurrently, CreateCertificateFromCsr is signed in batches (batch.go), RegisterThing and
// Sweep one at a time (each is a CA operation under the PKI directory's lock anyway).
type Service struct {
	o         Options
	log       *slog.Logger
	statePath string

	mu    sync.Mutex
	st    state
	byNew map[string]int // renewal's new serial -> index in st.Renewals

	bmu     sync.Mutex // after mu when both are held
	buckets map[string]*bucket

	// CreateCertificateFromCsr requests wait in queue; one of them at a time (leading) signs
	// everything queued in one batch (batch.go).
	qmu      sync.Mutex
	queue    []*csrJob
	leading  bool
	queued   atomic.Int64 // requests queued so far
	signings atomic.Int64 // pki.Issue calls
	// renewing is byNew's key set, read without mu: Connected runs on every CONNECT and must
	// not wait behind a request (a CA write, a pre-provisioning hook).
	renewing atomic.Pointer[map[string]struct{}]
	late     sync.Map // renewals' new serials Connected saw, for the next Sweep

	counters counters // Stats (stats.go)
}

// New validates the configuration and loads the state file from the PKI directory.
func New(o Options) (*Service, error) {
	if o.PKI.Dir == "" {
		return nil, errors.New("enrolment: no PKI directory")
	}
	cfg, err := o.Config.prepared("enrolment") // a copy: the caller's Config is not written
	if err != nil {
		return nil, err
	}
	o.Config = cfg
	if o.Now == nil {
		o.Now = time.Now
	}
	lg := o.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	s := &Service{o: o, log: lg.With("component", "enrol"), statePath: filepath.Join(o.PKI.Dir, StateFile),
		buckets: map[string]*bucket{}}
	st, err := loadState(s.statePath)
	if err != nil {
		return nil, err
	}
	s.st = st
	s.reindex()
	return s, nil
}

func (s *Service) reindex() {
	s.byNew = make(map[string]int, len(s.st.Renewals))
	set := make(map[string]struct{}, len(s.st.Renewals))
	for i, r := range s.st.Renewals {
		s.byNew[r.New] = i
		set[r.New] = struct{}{}
	}
	s.renewing.Store(&set)
}

func (s *Service) template(name string) *Template {
	for i := range s.o.Config.Templates {
		if s.o.Config.Templates[i].Name == name {
			return &s.o.Config.Templates[i]
		}
	}
	return nil
}

// IsClaimCert reports whether cert is a claim certificate from `edgegw pki claim`: its SAN URI
// is urn:edgegw:claim:<name>.
func IsClaimCert(cert *x509.Certificate) bool {
	for _, u := range cert.URIs {
		if strings.HasPrefix(u.String(), pki.ClaimURIPrefix) {
			return true
		}
	}
	return false
}

// certificateID is AWS IoT's certificate ID: the hex SHA-256 of the certificate's DER.
func certificateID(der []byte) string {
	h := sha256.Sum256(der)
	return hex.EncodeToString(h[:])
}

func tokenHash(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

// Handle answers one request with its accepted or rejected response. It returns nil for a
// topic that is not a request topic (Handles is false).
func (s *Service) Handle(ctx context.Context, r Request) []Response {
	if !Handles(r.Topic) {
		return nil
	}
	s.counters.request(r)
	reqTopic := r.Topic
	topic, isCBOR := asJSON(r.Topic)
	var (
		payload []byte
		err     error
	)
	if isCBOR {
		if r.Payload, err = cborToJSON(r.Payload); err != nil {
			err = reject(400, CodeInvalidPayload, "%v", err)
		}
	}
	r.Topic = topic
	switch {
	case err != nil:
	case topic == TopicCreateFromCSR:
		payload, err = s.createFromCSR(ctx, r)
	case topic == TopicCreateKeys:
		err = reject(400, CodeNotSupported, "CreateKeysAndCertificate is not offered: this gateway never makes a device's private key, so it never travels over MQTT; make a key and CSR on the device and publish to %s", TopicCreateFromCSR)
	default:
		name, _ := templateOf(topic)
		payload, err = s.registerThing(ctx, r, name)
	}
	out := Response{Topic: reqTopic + SuffixAccepted, Payload: payload}
	if err != nil {
		log := s.log.With("topic", reqTopic, "device", r.Caller.ThingName, "client_id", r.Caller.ClientID, "serial", r.Caller.Serial)
		var re *RejectError
		if errors.As(err, &re) && re.Status < 500 {
			log.Warn("enrolment request refused", "err", err)
		} else {
			log.Error("enrolment request failed", "err", err)
		}
		out, re = rejectedResponse(reqTopic, err)
		s.emit(Event{Kind: EventRefused, Device: r.Caller.ThingName, ClientID: r.Caller.ClientID, Caller: r.Caller.Serial, Code: re.Code, Reason: re.Message})
	}
	if isCBOR {
		b, cerr := jsonToCBOR(out.Payload)
		if cerr != nil {
			panic(cerr) // our own documents: objects of strings and integers
		}
		out.Payload = b
	}
	return []Response{out}
}

// admit lets a request of createFromCSR or registerThing in: the caller must have a client
// certificate, and one token of its bucket is spent. It returns the time of the request.
func (s *Service) admit(r Request) (time.Time, error) {
	now := s.o.Now()
	if r.Caller.Serial == "" {
		return now, reject(403, CodeAccessDenied, "enrolment needs a client certificate")
	}
	return now, s.allow(r.Caller.Serial, now)
}

// allow spends one token of the caller's bucket.
func (s *Service) allow(serial string, now time.Time) error {
	s.bmu.Lock()
	defer s.bmu.Unlock()
	b := s.buckets[serial]
	if b == nil {
		b = &bucket{}
		s.buckets[serial] = b
	}
	if !b.take(now, s.o.Config.RateLimit) {
		return reject(429, CodeThrottled, "too many requests from this certificate: at most %d at once, then one every %s", s.o.Config.RateLimit.Burst, s.o.Config.RateLimit.Every)
	}
	return nil
}

func newToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("making an ownership token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func (s *Service) registerThing(ctx context.Context, r Request, name string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now, err := s.admit(r)
	if err != nil {
		return nil, err
	}
	req, err := parseRegisterThing(r.Payload)
	if err != nil {
		return nil, err
	}
	t := s.template(name)
	if t == nil {
		return nil, reject(404, CodeNotFound, "no provisioning template %q on this gateway", name)
	}
	ti, tok, err := s.ownToken(r.Caller, req.CertificateOwnershipToken, now)
	if err != nil {
		return nil, err
	}
	params, err := t.parameters(req.Parameters, tok)
	if err != nil {
		return nil, err
	}
	if h := t.PreProvisioningHook; h != nil {
		if params, err = t.hookParameters(ctx, h, r.Caller, req.Parameters, tok); err != nil {
			return nil, err
		}
	}
	thing := expand(t.ThingName, params)
	if err := pki.ValidThing(thing); err != nil {
		return nil, reject(400, CodeInvalidParameters, "template %q gives the thing name %q: %v", t.Name, thing, err)
	}
	if thing != tok.Thing {
		return nil, reject(400, CodeInvalidParameters, "template %q gives the thing name %q but the certificate's CN is %q: send the parameters the CSR was made for", t.Name, thing, tok.Thing)
	}
	if !tok.Renewal {
		if err := s.activate(ctx, t, tok, thing, params); err != nil {
			return nil, err
		}
	}
	next := s.st
	next.Tokens = slices.Delete(slices.Clone(s.st.Tokens), ti, ti+1) // single use
	if err := next.save(s.statePath); err != nil {
		return nil, err
	}
	s.st = next
	s.log.Info("thing registered", "device", thing, "serial", tok.Serial, "template", t.Name, "renewal", tok.Renewal)
	s.emit(Event{Kind: EventRegistered, Device: thing, ClientID: r.Caller.ClientID, Serial: tok.Serial, Caller: r.Caller.Serial, Renewal: tok.Renewal})
	cfg := t.DeviceConfiguration
	if cfg == nil {
		cfg = map[string]string{}
	}
	return marshal(RegisterThingResponse{DeviceConfiguration: cfg, ThingName: thing}), nil
}

// ownToken finds the open token whose hash is token's and checks that it is the caller's and
// not expired at now. It returns its index in s.st.Tokens. s.mu is held.
func (s *Service) ownToken(c Caller, token string, now time.Time) (int, tokenRec, error) {
	h := tokenHash(token)
	ti := slices.IndexFunc(s.st.Tokens, func(k tokenRec) bool { return k.Hash == h })
	if ti < 0 {
		return 0, tokenRec{}, reject(400, CodeInvalidToken, "the certificateOwnershipToken is unknown or was used already; call CreateCertificateFromCsr again")
	}
	tok := s.st.Tokens[ti]
	switch {
	case !now.Before(tok.Expires):
		return 0, tok, reject(400, CodeInvalidToken, "the certificateOwnershipToken expired at %s; call CreateCertificateFromCsr again", tok.Expires.UTC().Format(time.RFC3339))
	case !strings.EqualFold(tok.CallerSerial, c.Serial) || tok.ClientID != c.ClientID:
		return 0, tok, reject(400, CodeInvalidToken, "the certificateOwnershipToken belongs to another connection: call RegisterThing on the connection that called CreateCertificateFromCsr")
	}
	return ti, tok, nil
}

// hookParameters runs the template's pre-provisioning hook with the request's parameters and
// returns the parameters checked again after its parameterOverrides.
func (t *Template) hookParameters(ctx context.Context, h *Hook, c Caller, reqParams map[string]string, tok tokenRec) (map[string]string, error) {
	in := HookInput{ClaimCertificateID: c.Serial, CertificateID: tok.CertificateID, CertificatePem: tok.CertPEM,
		TemplateArn: templateArn(t.Name), ClientID: c.ClientID, Parameters: maps.Clone(reqParams)}
	if c.Cert != nil {
		in.ClaimCertificateID = certificateID(c.Cert.Raw)
	}
	if in.Parameters == nil {
		in.Parameters = map[string]string{}
	}
	over, err := runHook(ctx, h, in)
	if err != nil {
		return nil, err
	}
	merged := maps.Clone(reqParams)
	if merged == nil {
		merged = map[string]string{}
	}
	maps.Copy(merged, over)
	params, err := t.parameters(merged, tok)
	if err != nil {
		return nil, fmt.Errorf("%w (after the pre-provisioning hook's parameterOverrides)", err)
	}
	return params, nil
}

// activate makes the pending certificate of a claim's token active for thing, with the
// template's type, attributes and policies in the registry.
func (s *Service) activate(ctx context.Context, t *Template, tok tokenRec, thing string, params map[string]string) error {
	attrs := map[string]string{}
	for k, v := range t.Attributes {
		attrs[k] = expand(v, params)
	}
	_, err := pki.Activate(ctx, s.o.PKI, tok.Serial, pki.ThingUpdate{Name: thing, Type: t.ThingType, Attributes: attrs, Policies: t.Policies})
	switch {
	case errors.Is(err, pki.ErrThingActive):
		return reject(409, CodeConflict, "thing %q already has an active certificate: revoke it before enrolling the thing again", thing)
	case errors.Is(err, pki.ErrNotPending) || errors.Is(err, pki.ErrNotFound):
		return reject(400, CodeInvalidToken, "the certificate of this token is no longer pending (revoked?): call CreateCertificateFromCsr again")
	case err != nil:
		return fmt.Errorf("activating %s for %q: %w", tok.Serial, thing, err)
	}
	return nil
}

// parameters checks a RegisterThing request's parameters against the template: only declared
// names, each matching its pattern; missing ones take their default or are an error. The
// built-in AWS::IoT::Certificate::* references are added.
func (t *Template) parameters(in map[string]string, tok tokenRec) (map[string]string, error) {
	out := map[string]string{RefCommonName: tok.Thing, RefCertificateID: tok.CertificateID}
	for k, v := range in {
		p := t.params[k]
		if p == nil {
			names := slices.Sorted(maps.Keys(t.params))
			return nil, reject(400, CodeInvalidParameters, "parameter %q is not one of template %q's: %s", k, t.Name, strings.Join(names, ", "))
		}
		if !p.re.MatchString(v) {
			return nil, reject(400, CodeInvalidParameters, "parameter %q: %q does not match %s", k, v, strings.TrimSuffix(strings.TrimPrefix(p.re.String(), "^(?:"), ")$"))
		}
		out[k] = v
	}
	for name, p := range t.params {
		if _, ok := out[name]; ok {
			continue
		}
		if p.Default == nil {
			return nil, reject(400, CodeInvalidParameters, "parameter %q is required by template %q", name, t.Name)
		}
		out[name] = *p.Default
	}
	return out, nil
}

// Connected is called by the broker when a client certificate with serial has connected and
// passed authorization. When serial is the new certificate of a renewal, the next Sweep marks
// the renewal done (in enrol.json) and revokes the old certificate, and any other certificate
// issued for the same renewal that was never used, with reason superseded: one CRL and one
// enrol.json write for every renewal since the last Sweep, instead of one of each per device.
//
// It never blocks the connect path: it takes no lock and writes nothing (a crash before the
// next Sweep falls back to the grace period for the renewals it had seen).
func (s *Service) Connected(_ context.Context, serial string) error {
	serial = strings.ToLower(serial)
	if _, ok := (*s.renewing.Load())[serial]; ok {
		s.late.Store(serial, struct{}{})
	}
	return nil
}

// markConnected marks the renewals whose new certificate is in serials and saves the state.
// s.mu is held.
func (s *Service) markConnected(serials []string) error {
	next := s.st
	next.Renewals = slices.Clone(s.st.Renewals)
	var marked []renewal
	for _, sn := range serials {
		if i, ok := s.byNew[sn]; ok && !next.Renewals[i].Connected {
			next.Renewals[i].Connected = true
			marked = append(marked, next.Renewals[i])
		}
	}
	if len(marked) == 0 {
		return nil
	}
	if err := next.save(s.statePath); err != nil {
		return fmt.Errorf("recording that %d renewed certificates connected: %w", len(marked), err)
	}
	s.st = next
	s.reindex()
	for _, r := range marked {
		s.log.Info("renewed certificate in use; the old one is revoked at the next sweep", "device", r.Thing, "serial", r.New, "old", r.Old)
	}
	return nil
}

// revoke puts serials on the CRL as superseded; certificates revoked meanwhile are fine.
func (s *Service) revoke(ctx context.Context, serials []string) error {
	_, err := pki.RevokeSerials(ctx, s.o.PKI, serials, "superseded")
	if errors.Is(err, pki.ErrAlreadyRevoked) {
		return nil
	}
	return err
}

// SweepResult says what Sweep did.
type SweepResult struct {
	// Superseded are old certificates revoked (reason superseded) because their renewal
	// connected or its grace period ended; Unused are certificates of a renewal that another
	// certificate of the same renewal won (the device asked twice), revoked the same way.
	Superseded []string
	Unused     []string
	// Abandoned are pending certificates whose ownership token expired unused (revoked,
	// reason cessationOfOperation).
	Abandoned     []string
	ExpiredTokens int
}

// Sweep finishes what is due at now, in one CRL: renewals whose new certificate connected
// (see Connected) or whose grace period ended (the old certificate is revoked as superseded;
// the new one stays), ownership tokens past their expiry (a pending claim certificate that was
// never registered is revoked, as AWS deletes it), and rate-limit buckets that have refilled.
// The broker calls it every few seconds: that is how long an old certificate outlives the
// connection of its successor.
func (s *Service) Sweep(ctx context.Context, now time.Time) (*SweepResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var late []string
	s.late.Range(func(k, _ any) bool {
		late = append(late, k.(string))
		s.late.Delete(k)
		return true
	})
	if err := s.markConnected(late); err != nil {
		return nil, err
	}
	res := &SweepResult{}
	next := state{Version: 1}
	for _, t := range s.st.Tokens {
		if now.Before(t.Expires) {
			next.Tokens = append(next.Tokens, t)
			continue
		}
		res.ExpiredTokens++
		if !t.Renewal {
			res.Abandoned = append(res.Abandoned, t.Serial)
		}
	}
	next.Renewals = dueRenewals(s.st.Renewals, now, res)
	if err := s.revokeDue(ctx, res); err != nil {
		return nil, err
	}
	if res.ExpiredTokens > 0 || len(res.Superseded) > 0 {
		if err := next.save(s.statePath); err != nil {
			return nil, err
		}
		s.st = next
		s.reindex()
	}
	s.bmu.Lock()
	for k, b := range s.buckets {
		if b.full(now, s.o.Config.RateLimit) {
			delete(s.buckets, k)
		}
	}
	s.bmu.Unlock()
	for _, sn := range append(slices.Clone(res.Superseded), res.Unused...) {
		s.emit(Event{Kind: EventSuperseded, Serial: sn, Renewal: true})
	}
	for _, sn := range res.Abandoned {
		s.emit(Event{Kind: EventAbandoned, Serial: sn})
	}
	if len(res.Superseded)+len(res.Abandoned) > 0 {
		s.log.Info("enrolment sweep", "superseded", len(res.Superseded), "unused", len(res.Unused), "abandoned", len(res.Abandoned), "expired_tokens", res.ExpiredTokens)
	}
	return res, nil
}

// dueRenewals puts in res the renewals that are done at now (grouped by old certificate: a
// device that asked twice has two): the old certificate is superseded when one of the group
// connected or the grace period ended, and the group's unused new certificates with it. It
// returns the renewals still waiting.
func dueRenewals(renewals []renewal, now time.Time, res *SweepResult) []renewal {
	groups := map[string][]renewal{} // by old serial, in order
	var olds []string
	for _, r := range renewals {
		if groups[r.Old] == nil {
			olds = append(olds, r.Old)
		}
		groups[r.Old] = append(groups[r.Old], r)
	}
	var waiting []renewal
	for _, old := range olds {
		g := groups[old]
		connected := slices.ContainsFunc(g, func(r renewal) bool { return r.Connected })
		expired := slices.ContainsFunc(g, func(r renewal) bool { return !now.Before(r.Deadline) })
		switch {
		case connected:
			res.Superseded = append(res.Superseded, old)
			for _, r := range g {
				if !r.Connected {
					res.Unused = append(res.Unused, r.New)
				}
			}
		case expired:
			res.Superseded = append(res.Superseded, old)
		default:
			waiting = append(waiting, g...)
		}
	}
	return waiting
}

// revokeDue revokes what res says is due: abandoned pending certificates (reason
// cessationOfOperation), superseded and unused ones (reason superseded).
func (s *Service) revokeDue(ctx context.Context, res *SweepResult) error {
	if len(res.Abandoned) > 0 {
		// Pending only: RevokeSerials skips one that was activated (tokens are deleted on
		// activation, so this is a certificate nobody registered).
		if _, err := pki.RevokeSerials(ctx, s.o.PKI, res.Abandoned, "cessationOfOperation"); err != nil && !errors.Is(err, pki.ErrAlreadyRevoked) {
			return fmt.Errorf("revoking abandoned enrolment certificates: %w", err)
		}
	}
	if len(res.Superseded) > 0 {
		if err := s.revoke(ctx, append(slices.Clone(res.Superseded), res.Unused...)); err != nil {
			return fmt.Errorf("revoking renewed certificates: %w", err)
		}
	}
	return nil
}
