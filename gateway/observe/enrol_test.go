package observe

import (
	"maps"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/gateway/broker"
	"github.com/edgegw/edgegw/gateway/config"
)

// enrolFakeBroker is a broker serving enrolment.
type enrolFakeBroker struct {
	fakeBroker
	em broker.EnrolMetrics
}

func (f *enrolFakeBroker) EnrolMetrics() *broker.EnrolMetrics { return &f.em }

func TestEnrolMetrics(t *testing.T) {
	events := map[string]float64{
		"edgegw_enrol_events_total{event=enrol_issued}": 1, "edgegw_enrol_events_total{event=enrol_renewed}": 1,
		"edgegw_enrol_events_total{event=enrol_registered}": 0, "edgegw_enrol_events_total{event=enrol_refused}": 2,
		"edgegw_enrol_events_total{event=enrol_superseded}": 0, "edgegw_enrol_events_total{event=enrol_abandoned}": 0,
	}
	withBroker := maps.Clone(events)
	withBroker["edgegw_enrol_requests_total"] = 7
	withBroker["edgegw_enrol_responses_total{outcome=delivered}"] = 6
	withBroker["edgegw_enrol_responses_total{outcome=undelivered}"] = 1
	tests := []struct {
		name      string
		enrolment *config.Enrolment
		broker    Broker
		want      map[string]float64
	}{
		{"without an enrolment section", nil, nil, map[string]float64{}},
		{"with one, no broker yet", &config.Enrolment{}, nil, events},
		{"with one and its broker", &config.Enrolment{}, &enrolFakeBroker{}, withBroker},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := testObserver(t, &config.Config{Site: "t", Enrolment: tt.enrolment})
			if eb, ok := tt.broker.(*enrolFakeBroker); ok {
				eb.em.Requests.Store(7)
				eb.em.Responses.Store(6)
				eb.em.Undelivered.Store(1)
				o.broker = eb
			}
			for _, ev := range []string{audit.EventEnrolRefused, audit.EventEnrolRefused, audit.EventEnrolIssued, audit.EventEnrolRenewed, audit.EventConnect} {
				o.Record(audit.Event{Event: ev})
			}
			reg := prometheus.NewRegistry()
			reg.MustRegister(enrolCollector{o: o})
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]float64{}
			for _, mf := range mfs {
				for _, m := range mf.GetMetric() {
					key := mf.GetName()
					var ls []string
					for _, lp := range m.GetLabel() {
						ls = append(ls, lp.GetName()+"="+lp.GetValue())
					}
					if len(ls) > 0 {
						key += "{" + strings.Join(ls, ",") + "}"
					}
					got[key] = value(m)
				}
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("got %v; want %v", got, tt.want)
			}
		})
	}
}
