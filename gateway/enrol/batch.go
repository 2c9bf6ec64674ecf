package enrol

// CreateCertificateFromCsr in batches. Signing one certificate rewrites issued.json and
// enrol.json (each read, marshalled, written and fsynced whole), so a site of 2,000 sensors
// renewing within a minute cannot afford one commit per request. Requests are checked by
// their own goroutines at once (payload, CSR signature, CN), then queued; the first of them
// to find no batch running leads: it takes everything queued, signs it with one pki.Issue
// (one issued.json commit), saves enrol.json once, and answers every request of the batch.
// When more requests queued meanwhile it hands the next batch to a new goroutine, so no
// client's own connection waits behind others' batches for long.

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/edgegw/edgegw/gateway/pki"
)

// maxBatch bounds one batch (one pki.Issue): its last request waits for all of it.
const maxBatch = 256

// csrJob is one admitted, checked CreateCertificateFromCsr request.
type csrJob struct {
	r        Request
	ir       pki.IssueRequest
	cn       string
	renewing bool
	done     chan csrResult // buffered: the leader never waits for the requester
}

type csrResult struct {
	payload []byte
	err     error
	ev      *Event // emitted by the requester, outside every lock
}

func (s *Service) createFromCSR(ctx context.Context, r Request) ([]byte, error) {
	job, err := s.checkCSR(r)
	if err != nil {
		return nil, err
	}
	s.qmu.Lock()
	s.queue = append(s.queue, job)
	s.queued.Add(1)
	lead := !s.leading
	s.leading = true
	s.qmu.Unlock()
	if lead {
		s.lead(ctx)
	}
	res := <-job.done
	if res.ev != nil {
		s.emit(*res.ev)
	}
	return res.payload, res.err
}

// checkCSR admits r and checks what needs no lock: the payload, the CSR, its CN against the
// caller (a claim: a thing name a template gives; a device: its own thing).
func (s *Service) checkCSR(r Request) (*csrJob, error) {
	if _, err := s.admit(r); err != nil {
		return nil, err
	}
	req, err := parseCreateFromCSR(r.Payload)
	if err != nil {
		return nil, err
	}
	csr, err := pki.ParseCSR([]byte(req.CertificateSigningRequest))
	if err != nil {
		return nil, reject(400, CodeInvalidCSR, "%v", err)
	}
	cn := csr.Subject.CommonName
	job := &csrJob{r: r, cn: cn, done: make(chan csrResult, 1),
		ir: pki.IssueRequest{Thing: cn, CSR: []byte(req.CertificateSigningRequest), Days: s.o.Config.Days}}
	if r.Caller.Claim {
		if err := pki.ValidThing(cn); err != nil {
			return nil, reject(400, CodeInvalidCSR, "CSR refused: its subject CN must be the thing name: %v", err)
		}
		if !slices.ContainsFunc(s.o.Config.Templates, func(t Template) bool { return t.thingRE.MatchString(cn) }) {
			return nil, reject(400, CodeInvalidCSR, "CSR refused: its subject CN %q is no thing name a provisioning template gives; make the CSR with the thing name as CN", cn)
		}
		job.ir.Pending = true
		return job, nil
	}
	if cn != r.Caller.ThingName {
		return nil, reject(400, CodeInvalidCSR, "CSR refused: its subject CN is %q but this certificate's thing is %q; a renewal keeps the thing name", cn, r.Caller.ThingName)
	}
	job.ir.Overlap, job.ir.RenewSerial, job.renewing = true, r.Caller.Serial, true
	return job, nil
}

// lead signs one batch of the queue and answers it; when more is queued it hands the next
// batch to a new goroutine. The batch holds others' requests, so the leader's ctx (its
// client's) does not cancel it.
func (s *Service) lead(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	s.qmu.Lock()
	n := min(len(s.queue), maxBatch)
	jobs := slices.Clone(s.queue[:n])
	s.queue = slices.Delete(s.queue, 0, n)
	s.qmu.Unlock()
	for i, res := range s.issueBatch(ctx, jobs) {
		jobs[i].done <- res
	}
	s.qmu.Lock()
	more := len(s.queue) > 0
	s.leading = more
	s.qmu.Unlock()
	if more {
		go s.lead(ctx)
	}
}

// issueBatch signs jobs, records their tokens and renewals with one save of enrol.json and
// returns each one's answer.
func (s *Service) issueBatch(ctx context.Context, jobs []*csrJob) []csrResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]csrResult, len(jobs))
	bundles := s.sign(ctx, jobs, out)
	next := s.st
	next.Tokens = slices.Clone(s.st.Tokens)
	next.Renewals = slices.Clone(s.st.Renewals)
	toks := make([]string, len(jobs))
	var issued []string
	for i, j := range jobs {
		b := bundles[i]
		if b == nil {
			continue
		}
		tok, err := newToken()
		if err != nil {
			out[i].err = err
			continue
		}
		toks[i] = tok
		issued = append(issued, b.Serial)
		now := s.o.Now()
		next.Tokens = append(next.Tokens, tokenRec{Hash: tokenHash(tok), CertificateID: certificateID(b.Cert.Raw), Serial: b.Serial,
			Thing: j.cn, CallerSerial: j.r.Caller.Serial, ClientID: j.r.Caller.ClientID, Renewal: j.renewing,
			Expires: now.Add(s.o.Config.TokenTTL), CertPEM: string(b.CertPEM)})
		if j.renewing {
			next.Renewals = append(next.Renewals, renewal{Old: b.Renews, New: b.Serial, Thing: j.cn, Deadline: now.Add(s.o.Config.RenewalGrace)})
		}
	}
	if len(issued) == 0 {
		return out
	}
	if err := next.save(s.statePath); err != nil {
		// The certificates exist but no tokens do: take them back so they cannot be used.
		if _, rerr := pki.RevokeSerials(ctx, s.o.PKI, issued, "cessationOfOperation"); rerr != nil {
			err = errors.Join(err, rerr)
		}
		for i := range out {
			if bundles[i] != nil {
				out[i].err = err
			}
		}
		return out
	}
	s.st = next
	s.reindex()
	for i, j := range jobs {
		b := bundles[i]
		if b == nil || out[i].err != nil {
			continue
		}
		kind := "claim"
		if j.renewing {
			kind = "renewal"
		}
		s.log.Info("certificate issued from CSR", "device", j.cn, "serial", b.Serial, "by", kind, "caller_serial", j.r.Caller.Serial)
		out[i].ev = &Event{Kind: EventIssued, Device: j.cn, ClientID: j.r.Caller.ClientID, Serial: b.Serial, Caller: j.r.Caller.Serial, Renewal: j.renewing}
		out[i].payload = marshal(CreateCertificateFromCSRResponse{CertificateID: certificateID(b.Cert.Raw), CertificatePem: string(b.CertPEM), CertificateOwnershipToken: toks[i]})
	}
	return out
}

// sign issues the jobs' certificates with one pki.Issue. When the batch fails (one request
// pki refuses, or a device that asked twice in one batch), it signs them one by one, so each
// gets its own answer. A refused job gets its error in out and a nil bundle.
func (s *Service) sign(ctx context.Context, jobs []*csrJob, out []csrResult) []*pki.Bundle {
	bundles := make([]*pki.Bundle, len(jobs))
	reqs := make([]pki.IssueRequest, len(jobs))
	for i, j := range jobs {
		reqs[i] = j.ir
	}
	s.signings.Add(1)
	if res, err := pki.Issue(ctx, s.o.PKI, "", reqs...); err == nil {
		for i := range res.Bundles {
			bundles[i] = &res.Bundles[i]
		}
		return bundles
	} else if len(jobs) == 1 {
		out[0].err = issueError(err, jobs[0])
		return bundles
	}
	for i, j := range jobs {
		s.signings.Add(1)
		res, err := pki.Issue(ctx, s.o.PKI, "", j.ir)
		if err != nil {
			out[i].err = issueError(err, j)
			continue
		}
		bundles[i] = &res.Bundles[0]
	}
	return bundles
}

// issueError is the answer to a request pki.Issue refused.
func issueError(err error, j *csrJob) error {
	switch {
	case errors.Is(err, pki.ErrBadCSR):
		return reject(400, CodeInvalidCSR, "%v", err)
	case errors.Is(err, pki.ErrThingActive):
		return reject(409, CodeConflict, "thing %q already has an active certificate: it renews with its own certificate, or its certificate is revoked first", j.cn)
	case errors.Is(err, pki.ErrNotRenewable):
		return reject(403, CodeAccessDenied, "certificate %s cannot renew itself: only an active device certificate of this site's CA can (enrol by claim instead)", j.r.Caller.Serial)
	}
	return fmt.Errorf("signing the CSR for %q: %w", j.cn, err)
}
