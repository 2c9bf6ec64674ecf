package observe

import (
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgegw/edgegw/store"
)

// queueOpenReporter is what a queue may offer to say what its open had to
// repair or salvage (*store.Queue). It is optional: a queue without it
// reports nothing repaired.
type queueOpenReporter interface{ OpenReport() store.OpenReport }

var _ queueOpenReporter = (*store.Queue)(nil)

// queueOpenReport is the running queue's open report (empty without a queue
// or when the queue does not offer one).
func (o *Observer) queueOpenReport() store.OpenReport { return queueOpenReportOf(o.queue) }

// queueOpenReportOf is q's open report (empty when q keeps none).
func queueOpenReportOf(q any) store.OpenReport {
	if r, ok := q.(queueOpenReporter); ok {
		return r.OpenReport()
	}
	return store.OpenReport{}
}

var (
	descQueueRepairs = desc("queue_open_repairs_total",
		"Files of the durable queue repaired when it was opened after a crash, by kind of repair.", "kind")
	descQueueSalvaged = desc("queue_salvaged_messages_total",
		"Messages copied out of a queue that could not be read (moved aside) into a new one.")
	descQueueLost = desc("queue_salvage_lost_records_total",
		"Records of a queue moved aside that could not be read and were lost.")
)

// queueOpenCollector exports the queue's open report: counters from 0 at
// every start, counted once when the queue opened. Every repair kind is
// exported, at 0 when it did not happen.
type queueOpenCollector struct{ o *Observer }

func (c queueOpenCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descQueueRepairs
	ch <- descQueueSalvaged
	ch <- descQueueLost
}

func (c queueOpenCollector) Collect(ch chan<- prometheus.Metric) {
	if c.o.queue == nil {
		return
	}
	r := c.o.queueOpenReport()
	n := map[store.RepairKind]int{}
	for _, rep := range r.Repairs {
		n[rep.Kind]++
	}
	for _, k := range store.RepairKinds {
		ch <- prometheus.MustNewConstMetric(descQueueRepairs, counter, float64(n[k]), string(k))
	}
	ch <- prometheus.MustNewConstMetric(descQueueSalvaged, counter, float64(r.Salvage.Messages))
	ch <- prometheus.MustNewConstMetric(descQueueLost, counter, float64(r.Salvage.Lost))
}

// QueueOpenStatus is what the queue's open had to do after a crash (nil in
// the status when it found the queue as it was left).
type QueueOpenStatus struct {
	Repairs      map[string]int `json:"repairs,omitempty"` // by kind
	MovedTo      string         `json:"moved_to,omitempty"`
	Salvaged     int            `json:"salvaged_messages,omitempty"`
	DeadLetters  int            `json:"salvaged_dead_letters,omitempty"`
	Lost         int            `json:"lost_records,omitempty"`
	SalvageError string         `json:"salvage_error,omitempty"`
}

// String is the status line's text, e.g. "repaired 1 file (empty-log 1)".
func (s *QueueOpenStatus) String() string {
	var parts []string
	if len(s.Repairs) > 0 {
		total := 0
		var kinds []string
		for _, k := range store.RepairKinds {
			if n := s.Repairs[string(k)]; n > 0 {
				total += n
				kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
			}
		}
		files := "files"
		if total == 1 {
			files = "file"
		}
		parts = append(parts, fmt.Sprintf("repaired %d %s (%s)", total, files, strings.Join(kinds, ", ")))
	}
	if s.MovedTo != "" {
		p := fmt.Sprintf("moved aside to %s: salvaged %d messages, %d dead letters, %d records lost",
			s.MovedTo, s.Salvaged, s.DeadLetters, s.Lost)
		if s.SalvageError != "" {
			p += " (" + s.SalvageError + ")"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "; ")
}

// queueOpenStatus is the status's view of the open report (nil: nothing to
// say).
func (o *Observer) queueOpenStatus() *QueueOpenStatus { return queueOpenStatusOf(o.queue) }

// queueOpenStatusOf is what q's open repaired or salvaged, for the status
// (nil: nothing).
func queueOpenStatusOf(q any) *QueueOpenStatus {
	r := queueOpenReportOf(q)
	if r.Empty() {
		return nil
	}
	s := &QueueOpenStatus{MovedTo: r.MovedTo, Salvaged: r.Salvage.Messages, DeadLetters: r.Salvage.DeadLetters,
		Lost: r.Salvage.Lost, SalvageError: r.Salvage.Err}
	if len(r.Repairs) > 0 {
		s.Repairs = map[string]int{}
		for _, rep := range r.Repairs {
			s.Repairs[string(rep.Kind)]++
		}
	}
	return s
}
