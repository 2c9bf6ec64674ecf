package observe

import (
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/store"
)

func TestReplayFilterMismatch(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	dl := func(reason string, age time.Duration) store.DeadLetter {
		return store.DeadLetter{Reason: reason, At: now.Add(-age).UnixNano()}
	}
	acl := "upstream refused: 0x87 not authorized"
	tests := []struct {
		name   string
		dls    []store.DeadLetter
		older  time.Duration
		reason string
		miss   string // "" = all match; else a substring of the reason
	}{
		{name: "no filters", dls: []store.DeadLetter{dl(acl, time.Minute), dl("other", time.Hour)}},
		{name: "reason matches all", dls: []store.DeadLetter{dl(acl, time.Minute), dl(acl, time.Hour)}, reason: acl},
		{name: "reason matches some", dls: []store.DeadLetter{dl(acl, time.Minute), dl("other", time.Hour)}, reason: acl, miss: "1 of its 2"},
		{name: "all older", dls: []store.DeadLetter{dl(acl, 2*time.Hour), dl(acl, 3*time.Hour)}, older: time.Hour},
		{name: "one too young", dls: []store.DeadLetter{dl(acl, time.Minute), dl(acl, 3*time.Hour)}, older: time.Hour, miss: "1 of its 2"},
		{name: "unknown time is not old", dls: []store.DeadLetter{{Reason: acl}}, older: time.Hour, miss: "1 of its 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := filterMismatch(tt.dls, tt.older, tt.reason, now)
			if (tt.miss == "") != (got == "") || !strings.Contains(got, tt.miss) {
				t.Errorf("got %q; want %q", got, tt.miss)
			}
		})
	}
}
