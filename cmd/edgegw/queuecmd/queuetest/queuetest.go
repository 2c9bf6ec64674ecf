// Package queuetest holds what the tests of the queue commands share with
// the binary's tests (cmd/edgegw): a real queue with known contents. Only
// tests import it; it imports nothing of ours but store.
package queuetest

import (
	"context"
	"fmt"
	"testing"

	"github.com/edgegw/edgegw/store"
)

// Fill makes a queue with opts holding 3 telemetry messages (temp=20..22
// from temp-01), 1 alarm ("smoke" from det-01) and 1 dead letter ("poison",
// reason "upstream refused").
func Fill(t *testing.T, opts store.Options) {
	t.Helper()
	q, err := store.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := q.Enqueue(context.Background(), store.Message{Route: "telemetry", Topic: "building/t", Payload: fmt.Appendf(nil, "temp=%d", 20+i), QoS: 1, Device: "temp-01"}); err != nil {
			t.Fatal(err)
		}
	}
	q.Enqueue(context.Background(), store.Message{Route: "alarms", Topic: "building/a", Payload: []byte("smoke"), QoS: 1, Device: "det-01"})
	seq, _ := q.Enqueue(context.Background(), store.Message{Route: "alarms", Topic: "building/a", Payload: []byte("poison"), QoS: 1, Device: "det-01"})
	q.DeadLetter(seq, "upstream refused")
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
}
