package enrol

import (
	"fmt"
	"sync"
	"time"

	"github.com/edgegw/edgegw/gateway/pki"
)

// Stats are the enrolment figures of `edgegw status`: counters since the service started, and
// what the state file and the CA's issued.json say now.
type Stats struct {
	Templates []string // the provisioning templates a sensor may name
	// ClaimRequests counts requests from claim certificates; Claims the distinct claim
	// certificates that made them (at most maxClaimsSeen are told apart).
	ClaimRequests uint64
	Claims        int
	Issued        uint64 // certificates signed from a claim's CSR
	Renewed       uint64 // certificates signed for a device renewing itself
	Registered    uint64 // RegisterThing calls accepted
	Superseded    uint64 // old certificates revoked after their renewal
	Abandoned     uint64 // pending certificates revoked because nobody registered them
	// Rejected counts refused requests by errorCode (CodeInvalidCSR, CodeThrottled, ...).
	Rejected map[string]uint64
	// AwaitingRevocation is the renewals whose old certificate is still valid: the next Sweep
	// after the new one connects (or after renewal_grace) revokes it.
	AwaitingRevocation int
	// Nearest is the active device certificate that expires first, leaving out the old
	// certificates of renewals (they are on their way out); nil when there is none.
	Nearest *pki.Entry
	// ExpiringSoon counts those certificates that expire within SoonWindow of now.
	ExpiringSoon int
}

// SoonWindow is the window of Stats.ExpiringSoon (the status command's RENEW SOON).
const SoonWindow = 30 * 24 * time.Hour

// maxClaimsSeen bounds the set of claim serials Stats tells apart. Only claim certificates of
// this CA reach the service, so a site has a handful; the bound is for the worst case.
const maxClaimsSeen = 4096

// counters are the Stats counters; their own lock, since events are emitted both under s.mu
// and outside it.
type counters struct {
	mu            sync.Mutex
	claimRequests uint64
	claims        map[string]struct{}
	events        map[string]uint64
	rejected      map[string]uint64
}

func (c *counters) request(r Request) {
	if !r.Caller.Claim {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.claimRequests++
	if c.claims == nil {
		c.claims = map[string]struct{}{}
	}
	if len(c.claims) < maxClaimsSeen {
		c.claims[r.Caller.Serial] = struct{}{}
	}
}

func (c *counters) event(e Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.events == nil {
		c.events, c.rejected = map[string]uint64{}, map[string]uint64{}
	}
	kind := e.Kind
	if kind == EventIssued && e.Renewal {
		kind = "renewed"
	}
	c.events[kind]++
	if e.Kind == EventRefused {
		c.rejected[e.Code]++
	}
}

// Stats returns the figures at now. It reads the CA's issued.json (no lock: it is replaced
// atomically), so it costs one file read; the status command asks for it, the message path
// never does.
func (s *Service) Stats(now time.Time) (Stats, error) {
	st := Stats{Rejected: map[string]uint64{}}
	for _, t := range s.o.Config.Templates {
		st.Templates = append(st.Templates, t.Name)
	}
	c := &s.counters
	c.mu.Lock()
	st.ClaimRequests, st.Claims = c.claimRequests, len(c.claims)
	st.Issued, st.Renewed, st.Registered = c.events[EventIssued], c.events["renewed"], c.events[EventRegistered]
	st.Superseded, st.Abandoned = c.events[EventSuperseded], c.events[EventAbandoned]
	for k, v := range c.rejected {
		st.Rejected[k] = v
	}
	c.mu.Unlock()

	s.mu.Lock()
	old := map[string]bool{}
	for _, r := range s.st.Renewals {
		old[r.Old] = true
	}
	s.mu.Unlock()
	st.AwaitingRevocation = len(old)

	certs, err := pki.List(s.o.PKI)
	if err != nil {
		return st, fmt.Errorf("enrolment status: %w", err)
	}
	for i, e := range certs {
		if e.Kind != pki.KindDevice || e.Status != pki.StatusActive || old[e.Serial] {
			continue
		}
		if st.Nearest == nil || e.NotAfter.Before(st.Nearest.NotAfter) {
			st.Nearest = &certs[i]
		}
		if e.NotAfter.Sub(now) < SoonWindow {
			st.ExpiringSoon++
		}
	}
	return st, nil
}
