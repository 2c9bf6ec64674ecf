package observe

// Enrolment over MQTT in the metrics: the audit events of gateway/enrol (audit.EnrolEvents)
// counted in Record, exported only when the config has an enrolment section.
//
//	edgegw_enrol_events_total{event="enrol_issued|enrol_renewed|enrol_registered|enrol_refused|enrol_superseded|enrol_abandoned"}
//	edgegw_enrol_requests_total                      requests the broker handed to the service
//	edgegw_enrol_responses_total{outcome="delivered|undelivered"}   undelivered: the client had no
//	                                                 matching subscription, may not Receive, or went away

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/gateway/broker"
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
