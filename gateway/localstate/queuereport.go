package localstate

import (
	"fmt"

	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/store"
)

// Auditor records what was repaired; *audit.Log satisfies it.
type Auditor interface{ Record(audit.Event) }

var _ Auditor = (*audit.Log)(nil)

// ReportQueueOpen audits what store.Open had to repair or salvage to open
// the queue: a record per repaired file, one for a queue moved aside with
// the salvage counts. store logs each at Warn itself (component=store), and
// observe reads the same report from the queue for the metrics and `edgegw
// status`. Nothing is written for a queue found as it was left.
func ReportQueueOpen(aud Auditor, r store.OpenReport) {
	for _, rep := range r.Repairs {
		aud.Record(audit.Event{Event: audit.EventQueueRepair, Resource: "queue/" + rep.File,
			Reason: fmt.Sprintf("%s (%d bytes): %s", rep.Kind, rep.Size, rep.Did)})
	}
	if r.MovedTo == "" {
		return
	}
	s := r.Salvage
	reason := fmt.Sprintf("moved aside to %s; salvaged %d messages, %d dead letters; %d records lost", r.MovedTo,
		s.Messages, s.DeadLetters, s.Lost)
	if s.Err != "" {
		reason += ": " + s.Err
	}
	aud.Record(audit.Event{Event: audit.EventQueueSalvage, Resource: "queue", Reason: reason, Count: int64(s.Messages)})
}
