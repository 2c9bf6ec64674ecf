package localstate

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/store"
)

func TestReportQueueOpen(t *testing.T) {
	for _, tc := range []struct {
		name   string
		report store.OpenReport
		want   []string // event resource reason count, one per record
	}{
		{name: "as left"},
		{name: "repair", report: store.OpenReport{Repairs: []store.Repair{{Kind: store.RepairEmptyLog, File: "000002.vlog", Did: "removed"}}},
			want: []string{"queue_repair queue/000002.vlog empty-log (0 bytes): removed 0"}},
		{name: "moved aside", report: store.OpenReport{
			Repairs: []store.Repair{{Kind: store.RepairManifest, File: "MANIFEST", Size: 3, Did: "removed"}},
			MovedTo: "/q.corrupt-1", Salvage: store.SalvageReport{Messages: 7, DeadLetters: 1, Lost: 2, Err: "damaged"}},
			want: []string{"queue_repair queue/MANIFEST manifest-cut-short (3 bytes): removed 0",
				"queue_salvage queue moved aside to /q.corrupt-1; salvaged 7 messages, 1 dead letters; 2 records lost: damaged 7"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "audit.log")
			aud, err := audit.New(audit.Options{File: file})
			if err != nil {
				t.Fatal(err)
			}
			ReportQueueOpen(aud, tc.report)
			aud.Close()
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				var ev audit.Event
				if l == "" {
					continue
				}
				if err := json.Unmarshal([]byte(l), &ev); err != nil {
					t.Fatalf("audit line %q: %v", l, err)
				}
				got = append(got, strings.Join([]string{ev.Event, ev.Resource, ev.Reason, strconv.FormatInt(ev.Count, 10)}, " "))
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got records\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}
