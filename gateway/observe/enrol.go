package observe

// Enrolment over MQTT in the metrics: the audit events of gateway/enrol (audit.EnrolEvents)
// counted in Record, exported only when the config has an enrolment section.
//
//	edgegw_enrol_events_total{event="enrol_issued|enrol_renewed|enrol_registered|enrol_refused|enrol_superseded|enrol_abandoned"}
//	edgegw_enrol_requests_total                      requests the broker handed to the service
//	edgegw_enrol_responses_total{outcome="delivered|undelivered"}   undelivered: the client had no
//	                                                 matching subscription, may not Receive, or went away
//
// And in GET /status (EnrolStatus, from Sources.Enrol): the templates, claims seen, certificates
// issued and renewed, refusals by errorCode, renewals waiting for the old certificate's
// revocation and the nearest device-certificate expiry.

import (
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/gateway/broker"
	"github.com/edgegw/edgegw/gateway/enrol"
)

var (
	descEnrolEvents    = desc("enrol_events_total", "Enrolment over MQTT: certificates issued from a claim, renewed, things registered, requests refused, old certificates superseded, pending ones abandoned.", "event")
	descEnrolRequests  = desc("enrol_requests_total", "Enrolment requests the broker handed to the enrolment service.")
	descEnrolResponses = desc("enrol_responses_total", "Enrolment responses: delivered to the requesting client, or not (no matching subscription, iot:Receive denied, connection gone).", "outcome")
)

// enrolBroker is what the collector reads from a broker serving enrolment (*broker.Broker).
type enrolBroker interface{ EnrolMetrics() *broker.EnrolMetrics }

var _ enrolBroker = (*broker.Broker)(nil)

// enrolCollector exports the enrolment counters.
type enrolCollector struct{ o *Observer }

func (c enrolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descEnrolEvents
	ch <- descEnrolRequests
	ch <- descEnrolResponses
}

func (c enrolCollector) Collect(ch chan<- prometheus.Metric) {
	if c.o.cfg == nil || c.o.cfg.Enrolment == nil {
		return
	}
	if eb, ok := c.o.broker.(enrolBroker); ok {
		if m := eb.EnrolMetrics(); m != nil {
			ch <- prometheus.MustNewConstMetric(descEnrolRequests, prometheus.CounterValue, float64(m.Requests.Load()))
			ch <- prometheus.MustNewConstMetric(descEnrolResponses, prometheus.CounterValue, float64(m.Responses.Load()), "delivered")
			ch <- prometheus.MustNewConstMetric(descEnrolResponses, prometheus.CounterValue, float64(m.Undelivered.Load()), "undelivered")
		}
	}
	c.o.mu.Lock()
	defer c.o.mu.Unlock()
	for _, ev := range audit.EnrolEvents {
		ch <- prometheus.MustNewConstMetric(descEnrolEvents, prometheus.CounterValue, float64(c.o.enrol[ev]), ev)
	}
}

// countEnrolLocked counts ev when it is an enrolment event; o.mu is held.
func (o *Observer) countEnrolLocked(ev string) {
	if slices.Contains(audit.EnrolEvents, ev) {
		o.enrol[ev]++
	}
}

// EnrolSource gives the enrolment figures of `edgegw status` (*enrol.Service).
type EnrolSource interface {
	Stats(now time.Time) (enrol.Stats, error)
}

var _ EnrolSource = (*enrol.Service)(nil)

// EnrolStatus is the enrolment section of GET /status: counters since the daemon started, and
// what the site CA's issued.json and the enrolment state say now.
type EnrolStatus struct {
	Templates     []string `json:"templates"`
	ClaimRequests uint64   `json:"claim_requests"`
	ClaimsSeen    int      `json:"claims_seen"` // distinct claim certificates that made a request
	Issued        uint64   `json:"issued"`      // from a claim's CSR
	Renewed       uint64   `json:"renewed"`
	Registered    uint64   `json:"registered"`
	Superseded    uint64   `json:"superseded"` // old certificates revoked after their renewal
	Abandoned     uint64   `json:"abandoned"`  // pending certificates nobody registered, revoked
	// Rejected counts refused requests by errorCode (the fleet-provisioning API's codes).
	Rejected map[string]uint64 `json:"rejected"`
	// AwaitingRevocation: renewed devices whose old certificate is still valid (revoked once the
	// new one connects, or after enrolment.renewal_grace).
	AwaitingRevocation int `json:"renewals_awaiting_revocation"`
	// Nearest is the active device certificate that expires first (old certificates of
	// renewals left out); nil when there is none.
	Nearest *EnrolExpiry `json:"nearest_expiry,omitempty"`
	// ExpiringSoon counts active device certificates that expire within 30 days.
	ExpiringSoon int    `json:"expiring_within_30_days"`
	Error        string `json:"error,omitempty"` // issued.json could not be read
}

// EnrolExpiry is one device certificate's expiry.
type EnrolExpiry struct {
	Thing    string    `json:"thing"`
	Serial   string    `json:"serial"`
	NotAfter time.Time `json:"not_after"`
	Days     float64   `json:"days"` // days left (negative: expired)
}

// enrolStatus is the enrolment section (nil without an enrolment section or source).
func (o *Observer) enrolStatus() *EnrolStatus {
	if o.cfg == nil || o.cfg.Enrolment == nil || o.enrolSrc == nil {
		return nil
	}
	now := o.clock.Now()
	st, err := o.enrolSrc.Stats(now)
	s := &EnrolStatus{Templates: st.Templates, ClaimRequests: st.ClaimRequests, ClaimsSeen: st.Claims,
		Issued: st.Issued, Renewed: st.Renewed, Registered: st.Registered, Superseded: st.Superseded,
		Abandoned: st.Abandoned, Rejected: st.Rejected, AwaitingRevocation: st.AwaitingRevocation,
		ExpiringSoon: st.ExpiringSoon}
	if s.Templates == nil {
		s.Templates = []string{}
	}
	if s.Rejected == nil {
		s.Rejected = map[string]uint64{}
	}
	if err != nil {
		s.Error = err.Error()
	}
	if n := st.Nearest; n != nil {
		s.Nearest = &EnrolExpiry{Thing: n.Thing, Serial: n.Serial, NotAfter: n.NotAfter.UTC(), Days: n.NotAfter.Sub(now).Hours() / 24}
	}
	return s
}
