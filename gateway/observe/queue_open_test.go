package observe

import (
	"testing"

	"github.com/edgegw/edgegw/store"
)

// openReportQueue is a queue with a fixed open report.
type openReportQueue struct{ r store.OpenReport }

func (q openReportQueue) Stats() store.Stats           { return store.Stats{} }
func (q openReportQueue) OpenReport() store.OpenReport { return q.r }

func TestQueueOpenStatus(t *testing.T) {
	for _, tc := range []struct {
		name   string
		report store.OpenReport
		want   string // "" = no status (nil)
	}{
		{name: "as left", want: ""},
		{name: "one repair", report: store.OpenReport{Repairs: []store.Repair{{Kind: store.RepairEmptyLog, File: "000002.vlog"}}},
			want: "repaired 1 file (empty-log 1)"},
		{name: "two kinds", report: store.OpenReport{Repairs: []store.Repair{
			{Kind: store.RepairManifestTail, File: "MANIFEST"}, {Kind: store.RepairEmptyLog, File: "00003.mem"}, {Kind: store.RepairEmptyLog, File: "000004.vlog"}}},
			want: "repaired 3 files (empty-log 2, manifest-torn-record 1)"},
		{name: "salvaged", report: store.OpenReport{MovedTo: "/q.corrupt-1", Salvage: store.SalvageReport{Messages: 7, DeadLetters: 1, Lost: 2, Err: "damaged"}},
			want: "moved aside to /q.corrupt-1: salvaged 7 messages, 1 dead letters, 2 records lost (damaged)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := New(nil, nil)
			o.queue = openReportQueue{tc.report}
			s := o.queueOpenStatus()
			got := ""
			if s != nil {
				got = s.String()
			}
			if got != tc.want {
				t.Errorf("got %q; want %q", got, tc.want)
			}
		})
	}
}
