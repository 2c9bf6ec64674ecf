package store

import (
	"context"
	"fmt"
)

// Ticket is a message handed to the committer by Submit whose group commit
// has not been waited for yet. Wait it exactly once (its state is recycled
// after Wait); a Ticket that is never waited is only garbage.
type Ticket struct {
	q *Queue
	p *pending
}

// Submit hands m to the committer and returns without waiting for the
// fsync: the caller may submit more messages while this one is syncing
// (a publisher's pipeline) and learns the outcome from Ticket.Wait. The
// checks that need no commit (route name, size, closed) fail here; limits,
// ErrFull and ErrQuota are decided by the commit and come from Wait, exactly
// as for Enqueue.
//
// Order: the committer takes submissions in the order they were made, so the
// messages one goroutine submits get increasing sequence numbers in Submit
// order (a refused one gets none). ctx bounds only the hand-over (the
// committer's intake is full while a commit of many messages syncs).
func (q *Queue) Submit(ctx context.Context, m Message) (Ticket, error) {
	if m.Route == "" || len(m.Route) > 255 {
		return Ticket{}, fmt.Errorf("enqueue: %w: route name must be 1..255 bytes", ErrInvalid)
	}
	size := encodedLen(&m)
	if size > MaxMessageBytes {
		return Ticket{}, fmt.Errorf("enqueue: %w: message of %d bytes exceeds %d", ErrInvalid, size, MaxMessageBytes)
	}
	if q.closed.Load() {
		return Ticket{}, ErrClosed
	}
	p := pendingPool.Get().(*pending)
	p.m, p.size, p.seq, p.err = m, size, 0, nil
	p.est = 13 + size + 10 // est(key, value)
	if size >= valueThreshold {
		p.est = 13 + 12 + 10
	}
	select {
	case q.reqs <- p:
	case <-q.closing:
		p.m = Message{}
		pendingPool.Put(p)
		return Ticket{}, ErrClosed
	case <-ctx.Done():
		p.m = Message{}
		pendingPool.Put(p)
		return Ticket{}, ctx.Err()
	}
	return Ticket{q: q, p: p}, nil
}

// Ready reports whether the group commit holding the message has finished,
// so that Wait would return at once. It does not consume the outcome: call
// Wait once, as always, to learn it (and release the ticket). A caller that
// acknowledges in batches uses it to take every already-synced message
// before blocking on the next commit.
func (t Ticket) Ready() bool {
	return t.p != nil && len(t.p.done) > 0
}

// Wait returns the message's sequence number once the group commit holding
// it is synced, or why it was not stored: ErrFull, ErrQuota, a write or sync
// error, ErrClosed (the queue closed before committing it: Close commits
// what was submitted before it, so this is only a Submit racing Close), or
// ctx.Err(). In every error case the caller must not acknowledge the message.
// After ctx ends the message may still be committed: the caller withholds
// the acknowledgement and the sensor resends (at-least-once).
func (t Ticket) Wait(ctx context.Context) (uint64, error) {
	q, p := t.q, t.p
	if p == nil {
		return 0, fmt.Errorf("enqueue: %w: zero Ticket", ErrInvalid)
	}
	select {
	case <-p.done:
	case <-q.stopped:
		select {
		case <-p.done:
		default:
			return 0, ErrClosed // never committed; p is abandoned
		}
	case <-ctx.Done():
		return 0, ctx.Err() // p is abandoned: the committer may still use it
	}
	seq, err := p.seq, p.err
	p.m = Message{}
	pendingPool.Put(p)
	return seq, err
}

// Enqueue stores m durably and returns its sequence number only after the
// fsync of a batch containing it (group commit: concurrent callers share one
// sync). It is Submit followed by Wait. Errors: ErrFull, ErrQuota,
// ErrClosed, ErrInvalid, or a write error; in every error case the caller
// must not acknowledge the message.
func (q *Queue) Enqueue(ctx context.Context, m Message) (uint64, error) {
	t, err := q.Submit(ctx, m)
	if err != nil {
		return 0, err
	}
	return t.Wait(ctx)
}
