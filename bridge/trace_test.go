package bridge

import (
	"sync"
	"time"
)

// ackTrace wraps a queue and records when each seq was acknowledged, to
// tell a loss in the bridge from a loss downstream of the upstream's PUBACK.
type ackTrace struct {
	testQueue
	mu    sync.Mutex
	acked map[uint64]time.Time
}

func newAckTrace(q testQueue) *ackTrace {
	return &ackTrace{testQueue: q, acked: map[uint64]time.Time{}}
}

func (a *ackTrace) Ack(seq uint64) error {
	a.mu.Lock()
	a.acked[seq] = time.Now()
	a.mu.Unlock()
	return a.testQueue.Ack(seq)
}

func (a *ackTrace) when(seq uint64) (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.acked[seq]
	return t, ok
}
