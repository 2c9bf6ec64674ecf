package observe

import (
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/gateway/broker"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/enrol"
	"github.com/edgegw/edgegw/gateway/pki"
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

// fakeEnrol is an enrolment service's figures.
type fakeEnrol struct {
	st  enrol.Stats
	err error
}

func (f fakeEnrol) Stats(time.Time) (enrol.Stats, error) { return f.st, f.err }

// GET /status has the enrolment section exactly when the config has one and the service runs;
// the nearest expiry carries its days left, an unreadable issued.json its error.
func TestEnrolStatus(t *testing.T) {
	o := testObserver(t, &config.Config{Site: "t"})
	o.enrolSrc = fakeEnrol{}
	if s := o.status(nil); s.Enrolment != nil {
		t.Errorf("status without an enrolment section has %+v; want none", s.Enrolment)
	}

	o = testObserver(t, &config.Config{Site: "t", Enrolment: &config.Enrolment{}})
	if s := o.status(nil); s.Enrolment != nil {
		t.Errorf("status without the service (not started) has %+v; want none", s.Enrolment)
	}
	notAfter := time.Now().Add(10 * 24 * time.Hour)
	o.enrolSrc = fakeEnrol{st: enrol.Stats{Templates: []string{"sensors"}, ClaimRequests: 4, Claims: 1, Issued: 2, Renewed: 3,
		Rejected: map[string]uint64{enrol.CodeInvalidCSR: 2}, AwaitingRevocation: 3, ExpiringSoon: 1,
		Nearest: &pki.Entry{Thing: "sensor-1", Serial: "ab", NotAfter: notAfter}}}
	e := o.status(nil).Enrolment
	if e == nil {
		t.Fatal("status with an enrolment section and its service has no enrolment figures")
	}
	if e.ClaimRequests != 4 || e.ClaimsSeen != 1 || e.Issued != 2 || e.Renewed != 3 || e.AwaitingRevocation != 3 || e.Rejected[enrol.CodeInvalidCSR] != 2 {
		t.Errorf("enrolment status = %+v; want the service's figures", e)
	}
	if e.Nearest == nil || e.Nearest.Thing != "sensor-1" || e.Nearest.Days < 9.9 || e.Nearest.Days > 10 {
		t.Errorf("nearest expiry = %+v; want sensor-1 in 10 days", e.Nearest)
	}

	o.enrolSrc = fakeEnrol{err: errors.New("reading registry of issued certificates: boom")}
	e = o.status(nil).Enrolment
	if e == nil || !strings.Contains(e.Error, "boom") || e.Rejected == nil || e.Templates == nil {
		t.Errorf("enrolment status with a failing issued.json = %+v; want its error, and [] and {} rather than null", e)
	}
}
