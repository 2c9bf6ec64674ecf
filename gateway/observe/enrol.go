package observe

// Enrolment over MQTT in the metrics: the audit events of gateway/enrol (audit.EnrolEvents)
// counted in Record, exported only when the config has an enrolment section.
//
//	edgegw_enrol_events_total{event="enrol_issued|enrol_renewed|enrol_registered|enrol_refused|enrol_superseded|enrol_abandoned"}

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgegw/edgegw/gateway/audit"
)

var descEnrolEvents = desc("enrol_events_total", "Enrolment over MQTT: certificates issued from a claim, renewed, things registered, requests refused, old certificates superseded, pending ones abandoned.", "event")

// enrolCollector exports the enrolment counters.
type enrolCollector struct{ o *Observer }

func (c enrolCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descEnrolEvents }

func (c enrolCollector) Collect(ch chan<- prometheus.Metric) {
	if c.o.cfg == nil || c.o.cfg.Enrolment == nil {
		return
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
