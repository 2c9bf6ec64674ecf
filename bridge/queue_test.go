package bridge

import (
	"context"
	"sort"
	"sync"
	"testing"

	"github.com/edgegw/edgegw/store"
)

// testQueue is what the tests need: the bridge's Queue plus Enqueue.
type testQueue interface {
	Queue
	Enqueue(ctx context.Context, m store.Message) (uint64, error)
}

// memQueue is a small in-memory queue with the store's semantics (FIFO by
// sequence, hand-out cursor, Rewind), used by unit tests and as a stand-in
// until the tests run against store.Queue.
type memQueue struct {
	mu   sync.Mutex
	msgs []store.Message // unacknowledged, ascending Seq
	next int             // index of the next message to hand out
	seq  uint64
	wake chan struct{}
	dead map[uint64]string
}

var _ testQueue = (*memQueue)(nil)

func newMemQueue(testing.TB) *memQueue {
	return &memQueue{wake: make(chan struct{}), dead: map[uint64]string{}}
}

func (q *memQueue) Enqueue(_ context.Context, m store.Message) (uint64, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.seq++
	m.Seq = q.seq
	q.msgs = append(q.msgs, m)
	close(q.wake)
	q.wake = make(chan struct{})
	return m.Seq, nil
}

func (q *memQueue) Next(ctx context.Context) (store.Message, error) {
	for {
		q.mu.Lock()
		if q.next < len(q.msgs) {
			m := q.msgs[q.next]
			q.next++
			q.mu.Unlock()
			return m, nil
		}
		w := q.wake
		q.mu.Unlock()
		select {
		case <-w:
		case <-ctx.Done():
			return store.Message{}, ctx.Err()
		}
	}
}

func (q *memQueue) remove(seq uint64) bool {
	i := sort.Search(len(q.msgs), func(i int) bool { return q.msgs[i].Seq >= seq })
	if i == len(q.msgs) || q.msgs[i].Seq != seq {
		return false
	}
	if i == 0 {
		q.msgs = q.msgs[1:]
	} else {
		q.msgs = append(q.msgs[:i], q.msgs[i+1:]...)
	}
	if i < q.next {
		q.next--
	}
	return true
}

func (q *memQueue) Ack(seq uint64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.remove(seq)
	return nil
}

func (q *memQueue) DeadLetter(seq uint64, reason string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.remove(seq) {
		q.dead[seq] = reason
	}
	return nil
}

func (q *memQueue) Rewind() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.next = 0
	close(q.wake)
	q.wake = make(chan struct{})
}
