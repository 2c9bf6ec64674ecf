package observe

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/gateway/config"
)

func TestEnrolMetrics(t *testing.T) {
	tests := []struct {
		name      string
		enrolment *config.Enrolment
		want      int // series of edgegw_enrol_events_total
	}{
		{"without an enrolment section", nil, 0},
		{"with one", &config.Enrolment{}, len(audit.EnrolEvents)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := testObserver(t, &config.Config{Site: "t", Enrolment: tt.enrolment})
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
				for _, s := range mf.GetMetric() {
					got[s.GetLabel()[0].GetValue()] = value(s)
				}
			}
			if len(got) != tt.want {
				t.Fatalf("got %d series %v; want %d", len(got), got, tt.want)
			}
			if tt.want == 0 {
				return
			}
			for ev, want := range map[string]float64{audit.EventEnrolRefused: 2, audit.EventEnrolIssued: 1, audit.EventEnrolRenewed: 1, audit.EventEnrolRegistered: 0} {
				if got[ev] != want {
					t.Errorf("edgegw_enrol_events_total{event=%q} = %v; want %v", ev, got[ev], want)
				}
			}
		})
	}
}
