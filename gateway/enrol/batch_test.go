package enrol

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/pki"
)

// Requests that arrive while a batch is being signed are signed together in the next one (one
// pki.Issue), and each gets its own answer. A batch pki refuses as a whole (a device whose
// certificate was revoked meanwhile, a device that asked twice) is signed one by one: the
// revoked device is refused, the others get their certificates. Every token and renewal is
// recorded.
func TestCreateFromCSRBatch(t *testing.T) {
	s := newSite(t, Config{})
	ctx := context.Background()
	const n = 12
	reqs := make([]pki.IssueRequest, n)
	for i := range reqs {
		reqs[i] = pki.IssueRequest{Thing: fmt.Sprintf("sensor-%04X", i)}
	}
	res, err := pki.Issue(ctx, s.pki, "", reqs...)
	if err != nil {
		t.Fatal(err)
	}
	devs := res.Bundles
	revoked := devs[n-1]
	if _, err := pki.RevokeSerials(ctx, s.pki, []string{revoked.Serial}, "keyCompromise"); err != nil {
		t.Fatal(err)
	}
	// Round 1: 8 devices at once: the first request's batch, then one batch of 7.
	first := batchRound(t, s, devs[:8])
	if got := s.svc.signings.Load(); got > 2 {
		t.Errorf("8 requests took %d pki.Issue calls; want at most 2 (the first batch, then all queued behind it)", got)
	}
	// Round 2: sensor-0000 again (it lost its answer), 3 more and the revoked one.
	second := batchRound(t, s, append([]pki.Bundle{devs[0]}, devs[8:]...))
	calls := append(first, second...)

	serials := map[string]bool{}
	for i, c := range calls {
		if c.dev.Serial == revoked.Serial {
			rejected(t, c.resp, TopicCreateFromCSR, 403, CodeAccessDenied)
			continue
		}
		var cr CreateCertificateFromCSRResponse
		accepted(t, c.resp, TopicCreateFromCSR, &cr)
		cert := parseCert(t, cr.CertificatePem)
		sn := pki.SerialHex(cert.SerialNumber)
		if cert.Subject.CommonName != c.dev.Thing || serials[sn] {
			t.Errorf("call %d: certificate %s for %q; want a new one for %q", i, sn, cert.Subject.CommonName, c.dev.Thing)
		}
		serials[sn] = true
		if e := s.entry(sn); e.Status != pki.StatusActive || e.Renews != c.dev.Serial {
			t.Errorf("call %d: entry %+v; want active, renewing %s", i, e, c.dev.Serial)
		}
		// The token is recorded: RegisterThing takes it.
		prov := ProvisionTopic("sensors")
		var rr RegisterThingResponse
		accepted(t, s.call(prov, RegisterThingRequest{CertificateOwnershipToken: cr.CertificateOwnershipToken,
			Parameters: map[string]string{"SerialNumber": c.dev.Thing[len("sensor-"):]}},
			Caller{ClientID: c.dev.Thing, ThingName: c.dev.Thing, Serial: c.dev.Serial}), prov, &rr)
	}
	if len(serials) != n {
		t.Errorf("%d certificates issued; want %d (11 devices, one of them twice)", len(serials), n)
	}
	s.svc = s.open() // the renewals were saved
	for sn := range serials {
		if err := s.svc.Connected(ctx, sn); err != nil {
			t.Fatal(err)
		}
	}
	sw, err := s.svc.Sweep(ctx, s.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(sw.Superseded) != n-1 {
		t.Errorf("Sweep superseded %d old certificates; want %d", len(sw.Superseded), n-1)
	}
}

type batchCall struct {
	dev  pki.Bundle
	resp Response
}

// batchRound has each of devs renew at once while the Service is busy, so all but the first
// request queue, and returns the answers.
func batchRound(t *testing.T, s *site, devs []pki.Bundle) []batchCall {
	t.Helper()
	ctx := context.Background()
	calls := make([]batchCall, len(devs))
	payloads := make([][]byte, len(devs))
	for i, d := range devs {
		calls[i].dev = d
		payloads[i] = marshal(CreateCertificateFromCSRRequest{CertificateSigningRequest: csrPEM(t, newKey(t), d.Thing)})
	}
	want := s.svc.queued.Load() + int64(len(calls))
	s.svc.mu.Lock() // the first request's batch waits here; the others queue behind it
	var wg sync.WaitGroup
	for i := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := calls[i].dev
			calls[i].resp = s.svc.Handle(ctx, Request{Topic: TopicCreateFromCSR, Payload: payloads[i],
				Caller: Caller{ClientID: d.Thing, ThingName: d.Thing, Serial: d.Serial}})[0]
		}()
	}
	for i := 0; i < 500 && s.svc.queued.Load() < want; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	queued := s.svc.queued.Load()
	s.svc.mu.Unlock()
	wg.Wait()
	if queued != want {
		t.Fatalf("%d of %d requests queued while the Service was busy", len(calls)-int(want-queued), len(calls))
	}
	leading := true
	for i := 0; i < 500 && leading; i++ { // the last leader lets go just after answering
		s.svc.qmu.Lock()
		leading = s.svc.leading || len(s.svc.queue) > 0
		s.svc.qmu.Unlock()
		time.Sleep(time.Millisecond)
	}
	if leading {
		t.Error("a leader or a queued request is left after every request was answered")
	}
	return calls
}
